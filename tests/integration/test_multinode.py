"""mr on several hosts: two nsqd behind nsqlookupd (on loopback), and the whole deployment on
hosts played by network namespaces (``tests/faults/multinode.py``, shorter; needs root)."""
import os
import signal

import gevent
import pytest

from mr import devservers
from mr.queue.nsq import PUBLISH_ANSWER_TIMEOUT_S, NsqQueue
from tests.conftest import TEST_MESSAGE_TIMEOUT_S
from tests.contract.test_queue_contract import Inbox
from tests.faults import multinode


@pytest.fixture
def two_nsqd_behind_a_lookupd(tmp_path):
    lookupd = devservers.nsqlookupd(tmp_path / "lookupd", tie_to_parent=True)
    servers = [lookupd] + [
        devservers.nsqd(tmp_path / name, msg_timeout_s=TEST_MESSAGE_TIMEOUT_S,
                        lookupd_tcp_address=lookupd.addresses["tcp"], tie_to_parent=True)
        for name in ("nsqd-1", "nsqd-2")]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in reversed(servers):
            server.stop()


def test_consumers_find_an_nsqd_they_were_not_told_of_once_it_has_their_topic(
        two_nsqd_behind_a_lookupd, topic):
    lookupd, first, second = two_nsqd_behind_a_lookupd
    consumer = NsqQueue([second.addresses["tcp"]], [lookupd.addresses["http"]])
    publisher = NsqQueue([first.addresses["tcp"]])
    try:
        inbox = Inbox()
        consumer.consume(topic, "workers", inbox, max_in_flight=10)
        bodies = [b"only-on-the-first-%d" % index for index in range(5)]
        publisher.multi_publish(topic, bodies)  # the topic is new to the first nsqd
        # Found at the consumer's next look-up (every few seconds; gnsq's default is a minute).
        assert sorted(inbox.wait_for(len(bodies), timeout=20)) == sorted(bodies)
    finally:
        publisher.close()
        consumer.close()


def test_publishers_move_to_the_nsqd_left_and_consumers_find_nsqd_through_the_lookupd(
        two_nsqd_behind_a_lookupd, topic):
    lookupd, first, second = two_nsqd_behind_a_lookupd
    publisher = NsqQueue([first.addresses["tcp"], second.addresses["tcp"]], publish_timeout_s=15)
    # This consumer is told of the second nsqd only: the first, it must find through the lookupd.
    consumer = NsqQueue([second.addresses["tcp"]], [lookupd.addresses["http"]])
    try:
        before = [b"before-%d" % index for index in range(10)]
        for body in before:
            publisher.publish(topic, body)  # in turn to each nsqd
        inbox = Inbox()
        consumer.consume(topic, "workers", inbox, max_in_flight=10)
        assert sorted(inbox.wait_for(len(before), timeout=20)) == sorted(before)

        first.kill()
        after = [b"after-%d" % index for index in range(30)]
        for body in after:
            publisher.publish(topic, body)  # raises QueueError if one is lost
        received = inbox.wait_for(len(before) + len(after), timeout=20)
        assert set(after) <= set(received)
        assert set(received) <= set(before) | set(after)
    finally:
        publisher.close()
        consumer.close()


def test_publishers_pass_over_an_nsqd_that_hangs(two_nsqd_behind_a_lookupd, topic):
    _, first, second = two_nsqd_behind_a_lookupd
    publisher = NsqQueue([first.addresses["tcp"], second.addresses["tcp"]], publish_timeout_s=15)
    consumer = NsqQueue([second.addresses["tcp"]])
    try:
        publisher.multi_publish(topic, [b"connected"])  # both connections are up
        inbox = Inbox()
        consumer.consume(topic, "workers", inbox, max_in_flight=10)
        os.kill(first.pid, signal.SIGSTOP)  # its connections stay open, and nothing answers
        bodies = [b"while-hung-%d" % index for index in range(20)]
        # Only the first publish that meets the hung nsqd waits for its answer: then its
        # connection is dropped, and the others go to the nsqd that answers.
        with gevent.Timeout(3 * PUBLISH_ANSWER_TIMEOUT_S):
            for body in bodies:
                publisher.publish(topic, body)
        assert set(bodies) <= set(inbox.wait_for(len(bodies), timeout=20))
    finally:
        os.kill(first.pid, signal.SIGCONT)
        publisher.close()
        consumer.close()


@pytest.fixture
def hosts_can_be_made():
    """Skips unless this process may make network namespaces and a bridge (root, iproute2)."""
    try:
        with devservers.HostNetwork() as network:
            network.add_host("probe")
    except (devservers.ServerError, OSError) as error:
        pytest.skip(f"cannot make network namespaces to play hosts: {error}")


def test_the_deployment_on_several_hosts_loses_nothing_when_an_etcd_member_and_an_nsqd_die(
        hosts_can_be_made, tmp_path, capsys):
    status = multinode.main(["--requests", "60", "--blocking-after", "5",
                             "--data-dir", str(tmp_path)])
    report = capsys.readouterr().out
    assert status == 0, report
    assert "outcomes: exact 60, " in report
    left = [name for name in os.listdir(devservers.NETNS_DIR)
            if name.startswith(f"mrnet{os.getpid()}")]
    assert left == [], "hosts were left behind"
