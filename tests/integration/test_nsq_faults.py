"""Real nsqd under faults: a consumer process dies holding messages; nsqd itself restarts."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import gevent
import pytest

from mr import devservers
from mr.queue.nsq import NsqQueue
from tests.conftest import TEST_MESSAGE_TIMEOUT_S
from tests.contract.test_queue_contract import Inbox
from tests.integration.test_nsqd_durability import wait_for_first_sync

REPOSITORY = Path(__file__).resolve().parents[2]


def test_messages_held_by_a_killed_consumer_process_go_to_another(nsqd_server, topic):
    queue = NsqQueue([nsqd_server.addresses["tcp"]])
    bodies = [b"job-%d" % index for index in range(10)]
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.hold_messages", nsqd_server.addresses["tcp"],
         topic, "workers", str(len(bodies))],
        cwd=REPOSITORY, stdout=subprocess.PIPE, text=True)
    try:
        queue.multi_publish(topic, bodies)
        held = [holder.stdout.readline().strip() for _ in bodies]
        assert sorted(held) == sorted(body.decode() for body in bodies)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    killed_at = time.monotonic()
    inbox = Inbox()
    queue.consume(topic, "workers", inbox, max_in_flight=10)
    try:
        assert sorted(inbox.wait_for(len(bodies), timeout=TEST_MESSAGE_TIMEOUT_S + 10)) == \
            sorted(bodies)
        assert all(attempts == 2 for _, attempts, _ in inbox.received)
        assert inbox.received[0][2] - killed_at >= 0  # delivered again only after the kill
    finally:
        queue.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_producer_and_consumer_reconnect_after_nsqd_restarts(tmp_path, topic, stop_signal):
    server = devservers.nsqd(tmp_path, msg_timeout_s=TEST_MESSAGE_TIMEOUT_S,
                             tie_to_parent=True).start()
    queue = NsqQueue([server.addresses["tcp"]], publish_timeout_s=15)
    try:
        inbox = Inbox()
        queue.consume(topic, "workers", inbox, max_in_flight=5)
        queue.multi_publish(topic, [b"before-1", b"before-2"])
        assert sorted(inbox.wait_for(2)) == [b"before-1", b"before-2"]
        wait_for_first_sync(server, [topic, f"{topic}:workers"])

        server.stop(stop_signal)
        gevent.sleep(0.5)
        server.start()
        after = [b"after-%d" % index for index in range(20)]
        for body in after:
            queue.publish(topic, body)  # the first ones wait for the producer to reconnect
        deadline = time.monotonic() + 20
        while not set(after) <= set(inbox.wait_for(0)) and time.monotonic() < deadline:
            gevent.sleep(0.1)
        received = inbox.wait_for(0)
        assert set(after) <= set(received)
        # At least once: a message finished just before the stop may come again, nothing else.
        assert set(received) <= set(after) | {b"before-1", b"before-2"}
    finally:
        queue.close()
        server.stop()
