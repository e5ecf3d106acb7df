"""nsqd as mr starts it keeps queued messages on disk: a SIGKILL loses none of them.

nsqd writes a queue's position (its metadata file) at its first sync, up to ``--sync-timeout``
(2 s) after the queue's first message; from then on, a restart after a crash salvages every
message written past the recorded position. A queue killed before that first sync forgets its
first messages (docs/deploy.rst), so each test lets its queues reach it before the burst.
"""
import json
import urllib.request
from pathlib import Path

import gevent
import pytest

from mr import devservers
from mr.queue.nsq import NsqQueue
from tests.contract.test_queue_contract import Inbox
from tests.integration.test_etcd_space import mr_with

MESSAGES = 500
CHANNEL = "workers"
#: A guard for the first sync (nsqd's --sync-timeout is 2 s), far above what it takes.
FIRST_SYNC_GUARD_S = 30
#: A guard for the redelivery after the restart, far above what it takes.
DELIVERY_GUARD_S = 30


def create_channel(server: devservers.ServerProcess, topic: str) -> None:
    """What a worker's subscription leaves behind: the channel its messages are copied to."""
    for path in (f"/topic/create?topic={topic}",
                 f"/channel/create?topic={topic}&channel={CHANNEL}"):
        request = urllib.request.Request(f"http://{server.addresses['http']}{path}",
                                         method="POST")
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200


def wait_for_first_sync(server: devservers.ServerProcess, queues: list[str]) -> None:
    data_path = Path(server.data_dir) / "nsqd"
    with gevent.Timeout(FIRST_SYNC_GUARD_S):
        while not all((data_path / f"{queue}.diskqueue.meta.dat").exists() for queue in queues):
            gevent.sleep(0.1)


def wait_for_each(inbox: Inbox, expected: set[bytes]) -> list[bytes]:
    """What the inbox received once it has each expected body, or after a guard period."""
    with gevent.Timeout(DELIVERY_GUARD_S, False):
        while not expected <= set(inbox.wait_for(0)):
            inbox.changed.clear()
            inbox.changed.wait(timeout=0.1)
    return inbox.wait_for(0)


def publish(server: devservers.ServerProcess, topic: str, bodies: list[bytes]) -> None:
    publisher = NsqQueue([server.addresses["tcp"]])
    try:
        for start in range(0, len(bodies), 100):
            publisher.multi_publish(topic, bodies[start:start + 100])
    finally:
        publisher.close()


@pytest.mark.parametrize("channel_exists", [False, True], ids=["topic", "channel"])
def test_queued_messages_survive_a_sigkill(tmp_path, topic, channel_exists):
    server = devservers.nsqd(tmp_path, tie_to_parent=True).start()
    first = [b"first"]
    bodies = [b"message-%d" % number for number in range(MESSAGES)]
    try:
        if channel_exists:
            create_channel(server, topic)
        publish(server, topic, first)
        wait_for_first_sync(server, [topic, f"{topic}:{CHANNEL}"] if channel_exists else [topic])
        publish(server, topic, bodies)

        server.kill()
        server.start()

        consumer = NsqQueue([server.addresses["tcp"]])
        try:
            inbox = Inbox()
            consumer.consume(topic, CHANNEL, inbox, max_in_flight=100)
            # At least once: what the crash left unacknowledged comes again, nothing is lost.
            assert set(wait_for_each(inbox, set(first + bodies))) == set(first + bodies)
        finally:
            consumer.close()
    finally:
        server.stop()


def test_mr_servers_start_sizes_nsqd_from_the_settings(tmp_path):
    mr = mr_with({"MR_INVOCATION_TIMEOUT_S": "100", "MR_MESSAGE_TIMEOUT_S": "30"})
    try:
        mr.ok("servers", "start", "--data-dir", str(tmp_path), "--free-ports")
        argv = json.loads((tmp_path / "nsqd.pid").read_text())["argv"]
    finally:
        mr.ok("servers", "stop", "--data-dir", str(tmp_path))
    # A leaf's three handlers of 100 s each, and one message timeout for the rest.
    assert {"--msg-timeout=30000ms", "--max-msg-timeout=330000ms", "--mem-queue-size=0"} <= \
        set(argv)
