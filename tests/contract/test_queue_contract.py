"""The queue contract: every test runs against the embedded queue and a real nsqd.

The message timeout of both is TEST_MESSAGE_TIMEOUT_S (1 s), set in conftest.
"""
import time

import gevent
import gevent.event
import pytest

from tests.conftest import TEST_MESSAGE_TIMEOUT_S

CHANNEL = "workers"
#: nsqd looks for timed-out messages only in the channels it listed at its last refresh, every
#: 5 s: in a channel as new as a test's, a message may time out that much late.
NSQD_CHANNEL_LISTING_S = 5.0


class Inbox:
    """Collects what a consumer's handler receives, and waits for it."""

    def __init__(self, action=None):
        self.received = []
        self.changed = gevent.event.Event()
        self.action = action

    def __call__(self, message):
        self.received.append((message.body, message.attempts, time.monotonic()))
        self.changed.set()
        if self.action is not None:
            self.action(message)

    def wait_for(self, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            self.changed.clear()
            self.changed.wait(timeout=0.1)
        return [body for body, _, _ in self.received]


def test_published_message_is_delivered_with_its_body_intact(queue, topic):
    inbox = Inbox()
    queue.consume(topic, CHANNEL, inbox)
    body = bytes(range(256)) * 4096  # 1 MiB, every byte value
    queue.publish(topic, body)
    assert inbox.wait_for(1) == [body]
    assert inbox.received[0][1] == 1


def test_messages_published_before_any_consumer_are_kept(queue, topic):
    queue.multi_publish(topic, [b"early-1", b"early-2"])
    gevent.sleep(0.2)
    inbox = Inbox()
    queue.consume(topic, CHANNEL, inbox)
    assert sorted(inbox.wait_for(2)) == [b"early-1", b"early-2"]


def test_multi_publish_delivers_every_message(queue, topic):
    inbox = Inbox()
    queue.consume(topic, CHANNEL, inbox, max_in_flight=10)
    bodies = [b"m%d" % index for index in range(200)]
    queue.multi_publish(topic, bodies)
    assert sorted(inbox.wait_for(200)) == sorted(bodies)
    gevent.sleep(TEST_MESSAGE_TIMEOUT_S + 0.5)
    assert len(inbox.received) == 200, "finished messages must not come back"


def test_every_channel_gets_a_copy_and_consumers_of_one_channel_share(queue, topic):
    first, second, audit = Inbox(), Inbox(), Inbox()
    queue.consume(topic, CHANNEL, first, max_in_flight=5)
    queue.consume(topic, CHANNEL, second, max_in_flight=5)
    queue.consume(topic, "audit", audit, max_in_flight=5)
    gevent.sleep(0.3)
    bodies = [b"%d" % index for index in range(100)]
    for body in bodies:
        queue.publish(topic, body)
    assert sorted(audit.wait_for(100)) == sorted(bodies)
    deadline = time.monotonic() + 10
    while len(first.received) + len(second.received) < 100 and time.monotonic() < deadline:
        gevent.sleep(0.05)
    shared = [body for body, _, _ in first.received + second.received]
    assert sorted(shared) == sorted(bodies)  # each message exactly once on the channel
    assert first.received and second.received


def test_max_in_flight_bounds_concurrent_handlers(queue, topic):
    running = {"now": 0, "peak": 0}

    def slow(message):
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        gevent.sleep(0.1)
        running["now"] -= 1

    inbox = Inbox(slow)
    queue.consume(topic, CHANNEL, inbox, max_in_flight=3)
    queue.multi_publish(topic, [b"%d" % index for index in range(12)])
    assert sorted(inbox.wait_for(12), key=int) == [b"%d" % index for index in range(12)]
    assert running["peak"] == 3


def test_a_fresh_consumer_takes_others_while_its_first_message_is_held(queue, topic):
    others_arrived = gevent.event.Event()

    def hold_the_first(message):
        if message.body == b"first":
            assert others_arrived.wait(timeout=5), "the others waited behind the first"
        elif len(inbox.received) == 5:
            others_arrived.set()

    inbox = Inbox(hold_the_first)
    queue.publish(topic, b"first")
    queue.consume(topic, CHANNEL, inbox, max_in_flight=8)
    gevent.sleep(0.2)
    queue.multi_publish(topic, [b"other-%d" % index for index in range(4)])
    inbox.wait_for(5)
    assert others_arrived.wait(timeout=5)
    gevent.sleep(0.2)
    assert [attempts for _, attempts, _ in inbox.received] == [1] * 5


def test_requeue_with_delay_redelivers_later_with_more_attempts(queue, topic):
    def requeue_first_delivery(message):
        if message.attempts == 1:
            message.requeue(delay_s=0.5)

    inbox = Inbox(requeue_first_delivery)
    queue.consume(topic, CHANNEL, inbox)
    queue.publish(topic, b"again")
    inbox.wait_for(2)
    (_, first_attempt, first_at), (_, second_attempt, second_at) = inbox.received
    assert (first_attempt, second_attempt) == (1, 2)
    assert second_at - first_at >= 0.45


def test_a_raising_handler_gets_the_message_again(queue, topic):
    def fail_twice(message):
        if message.attempts <= 2:
            raise RuntimeError("transient failure")

    inbox = Inbox(fail_twice)
    queue.consume(topic, CHANNEL, inbox)
    queue.publish(topic, b"flaky")
    inbox.wait_for(3)
    assert [attempts for _, attempts, _ in inbox.received] == [1, 2, 3]
    gevent.sleep(TEST_MESSAGE_TIMEOUT_S + 0.5)
    assert len(inbox.received) == 3, "the third, successful attempt finished the message"


def test_an_unanswered_message_is_redelivered_after_the_timeout(queue, topic):
    longest_wait_s = TEST_MESSAGE_TIMEOUT_S * 3 + NSQD_CHANNEL_LISTING_S
    released = gevent.event.Event()

    def hold_first_delivery(message):
        if message.attempts == 1:
            released.wait(timeout=longest_wait_s)

    inbox = Inbox(hold_first_delivery)
    queue.consume(topic, CHANNEL, inbox, max_in_flight=2)
    queue.publish(topic, b"stuck")
    inbox.wait_for(2, timeout=longest_wait_s)
    released.set()
    assert [attempts for _, attempts, _ in inbox.received] == [1, 2]
    assert inbox.received[1][2] - inbox.received[0][2] >= TEST_MESSAGE_TIMEOUT_S * 0.9


def test_touch_keeps_a_long_job_from_being_redelivered(queue, topic):
    def long_job(message):
        for _ in range(6):
            gevent.sleep(TEST_MESSAGE_TIMEOUT_S / 2)
            message.touch()

    inbox = Inbox(long_job)
    queue.consume(topic, CHANNEL, inbox, max_in_flight=2)
    queue.publish(topic, b"long")
    inbox.wait_for(1)
    gevent.sleep(TEST_MESSAGE_TIMEOUT_S * 4)
    assert [attempts for _, attempts, _ in inbox.received] == [1]


def test_delayed_publish_is_not_delivered_early(queue, topic):
    inbox = Inbox()
    queue.consume(topic, CHANNEL, inbox)
    gevent.sleep(0.2)
    published_at = time.monotonic()
    queue.publish(topic, b"later", delay_s=0.6)
    assert inbox.wait_for(1) == [b"later"]
    assert inbox.received[0][2] - published_at >= 0.55


def test_stopped_consumer_receives_nothing_more(queue, topic):
    inbox = Inbox()
    consumer = queue.consume(topic, CHANNEL, inbox)
    queue.publish(topic, b"one")
    inbox.wait_for(1)
    consumer.stop(timeout=2)
    queue.publish(topic, b"two")
    gevent.sleep(0.5)
    assert [body for body, _, _ in inbox.received] == [b"one"]
    successor = Inbox()
    queue.consume(topic, CHANNEL, successor)
    assert successor.wait_for(1) == [b"two"]


def test_bodies_must_be_bytes(queue, topic):
    with pytest.raises(TypeError):
        queue.publish(topic, "text")
