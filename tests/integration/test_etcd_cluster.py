"""A client of a three-member etcd cluster (on loopback) while one member is SIGKILLed under
concurrent writes with a watch open: requests move on to the members left, and the watch
resumes on one of them without losing or repeating an event."""
import socket

import gevent
import gevent.event
import pytest

from mr import devservers
from mr.kv import create_kv
from mr.kv.base import KVError
from mr.kv.etcd import EtcdKV
from mr.settings import Settings
from tests.integration.test_etcd_restart import assert_writes_and_a_watch_come_through


@pytest.fixture
def members(tmp_path):
    servers = devservers.etcd_cluster(
        tmp_path, {name: devservers.LOOPBACK for name in ("m1", "m2", "m3")}, tie_to_parent=True)
    try:
        for server in servers:
            server.start()
        with EtcdKV(endpoints=devservers.client_endpoints(servers), timeout_s=20) as kv:
            kv.current_revision()  # the cluster has elected a leader
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize("victim", ["leader in use", "follower in use", "leader, client elsewhere"])
def test_requests_and_a_watch_move_to_the_members_left_when_one_is_killed(members, victim):
    leader = devservers.etcd_leader(members)
    followers = [member for member in members if member is not leader]
    in_use, killed = {"leader in use": (leader, leader),
                      "follower in use": (followers[0], followers[0]),
                      "leader, client elsewhere": (followers[0], leader)}[victim]
    preference = [in_use, *(member for member in members if member is not in_use)]
    with EtcdKV(endpoints=devservers.client_endpoints(preference), timeout_s=15) as kv:
        assert_writes_and_a_watch_come_through(kv, "/cluster/", killed.kill)
        assert kv.base_url == (in_use.addresses["client"] if in_use is not killed
                               else preference[1].addresses["client"])


def test_settings_name_the_members_and_one_that_is_down_is_passed_over(members):
    down = f"{devservers.LOOPBACK}:{devservers.free_port()}"
    settings = Settings.load({
        "MR_KV_BACKEND": "etcd", "MR_ETCD_PORT": str(devservers.free_port()),
        "MR_ETCD_ENDPOINTS": ",".join([down, *devservers.client_endpoints(members)])})
    with create_kv(settings) as kv:
        kv.put("/cluster/settings", b"read back")
        assert kv.range("/cluster/settings").kvs[0].value == b"read back"
        assert kv.base_url == members[0].addresses["client"]


@pytest.fixture
def hanging_up_endpoint():
    """An endpoint that reads each request and closes the connection without an answer, as a
    member killed while a request is in flight does."""
    listener = socket.create_server((devservers.LOOPBACK, 0))

    def hang_up():
        while True:
            connection, _ = listener.accept()
            connection.recv(65536)
            connection.close()

    server = gevent.spawn(hang_up)
    yield f"{devservers.LOOPBACK}:{listener.getsockname()[1]}"
    server.kill()
    listener.close()


def test_a_write_cut_off_after_it_was_sent_is_reported_and_a_read_is_tried_again(
        members, hanging_up_endpoint):
    endpoints = [hanging_up_endpoint, *devservers.client_endpoints(members)]
    with EtcdKV(endpoints=endpoints) as kv:
        with pytest.raises(KVError, match="the write may or may not have been applied"):
            kv.put("/cluster/cut-off", b"x")
        assert kv.base_url == members[0].addresses["client"]  # the next request goes there
        kv.put("/cluster/cut-off", b"y")
    with EtcdKV(endpoints=endpoints) as kv:
        assert kv.range("/cluster/cut-off").kvs[0].value == b"y"
        assert kv.base_url == members[0].addresses["client"]
