"""mr on several hosts: two nsqd behind nsqlookupd (on loopback), and the whole deployment on
hosts played by network namespaces (``tests/faults/multinode.py``, shorter; needs root)."""
import os
import signal
from pathlib import Path

import gevent
import pytest

from mr import devservers
from mr.queue.base import QueueError
from mr.queue.nsq import PUBLISH_ANSWER_TIMEOUT_S, NsqQueue
from tests.conftest import TEST_MESSAGE_TIMEOUT_S
from tests.contract.test_queue_contract import Inbox
from tests.faults import multinode
from tests.integration.test_nsqd_durability import wait_for_each


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


#: A guard for a SIGSTOP to reach every thread of a server, far above what it takes.
STOP_GUARD_S = 10


def hang(server: devservers.ServerProcess) -> None:
    """SIGSTOP ``server`` and return once it has taken effect: kill() returns before every
    thread of the process has stopped, and a loaded nsqd still answers a publish meanwhile."""
    os.kill(server.pid, signal.SIGSTOP)
    with gevent.Timeout(STOP_GUARD_S):
        while not all(state == "T" for state in thread_states(server.pid)):
            gevent.sleep(0.01)


def thread_states(pid: int) -> list[str]:
    """The state letter of each thread of a process, from /proc (T: stopped by a signal)."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
        except FileNotFoundError:  # a thread that has just exited
            continue
    return states


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
        # Connects the producer to both nsqd. Which of the two it goes to depends on string
        # hashing (gnsq keeps the addresses in a set), so the consumer may receive it too.
        publisher.multi_publish(topic, [b"connected"])
        inbox = Inbox()
        consumer.consume(topic, "workers", inbox, max_in_flight=10)
        hang(first)  # its connections stay open, and nothing answers
        bodies = [b"while-hung-%d" % index for index in range(20)]
        # Only the first publish that meets the hung nsqd waits for its answer: then its
        # connection is dropped, and the others go to the nsqd that answers.
        with gevent.Timeout(3 * PUBLISH_ANSWER_TIMEOUT_S):
            for body in bodies:
                publisher.publish(topic, body)
        assert set(bodies) <= set(wait_for_each(inbox, set(bodies)))
    finally:
        os.kill(first.pid, signal.SIGCONT)
        publisher.close()
        consumer.close()


def test_a_publish_only_a_hung_nsqd_has_fails_and_is_delivered_once_it_resumes(
        two_nsqd_behind_a_lookupd, topic):
    """A publish succeeds on an nsqd's answer, never on a write that a hung nsqd's socket took
    in; and the message given up on may still be delivered: at least once, not at most once."""
    _, first, _ = two_nsqd_behind_a_lookupd
    # Gives up after the first unanswered publish, with no other nsqd to try.
    publisher = NsqQueue([first.addresses["tcp"]], publish_timeout_s=PUBLISH_ANSWER_TIMEOUT_S + 1)
    consumer = NsqQueue([first.addresses["tcp"]])
    try:
        inbox = Inbox()
        consumer.consume(topic, "workers", inbox, max_in_flight=10)
        publisher.publish(topic, b"before")  # both are connected before the hang
        assert b"before" in wait_for_each(inbox, {b"before"})
        try:
            hang(first)
            with pytest.raises(QueueError):
                publisher.publish(topic, b"while-hung")
        finally:
            os.kill(first.pid, signal.SIGCONT)
        assert b"while-hung" in wait_for_each(inbox, {b"while-hung"})
    finally:
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
