"""The embedded queue: NSQ's delivery semantics for the greenlets of one process.

Topics copy each message to every channel; a channel hands each message to one consumer with a
free in-flight slot; held messages time out and are redelivered; requeues may be delayed. Like
nsqd, a topic keeps messages published before any channel exists and gives them to its first.
"""
from __future__ import annotations

import collections
import itertools
import logging
import time
import uuid
from typing import Sequence

import gevent
import gevent.pool

from mr.queue.base import Consumer, Message, MessageHandler, Queue, run_handler

log = logging.getLogger(__name__)

DEFAULT_MESSAGE_TIMEOUT_S = 60.0
_SWEEP_INTERVAL_S = 0.02


class _Entry:
    """A message as a channel holds it, across deliveries."""

    def __init__(self, body: bytes):
        self.id = uuid.uuid4().hex[:16]
        self.body = body
        self.attempts = 0


class _MemoryMessage(Message):
    def __init__(self, channel: "_Channel", entry: _Entry, delivery: int):
        self._channel = channel
        self._entry = entry
        self._delivery = delivery
        self._responded = False
        self.id = entry.id
        self.body = entry.body
        self.attempts = entry.attempts

    def _respond(self) -> None:
        if self._responded:
            raise RuntimeError(f"message {self.id} has already been responded to")
        self._responded = True

    def finish(self) -> None:
        self._respond()
        self._channel.finish(self._entry, self._delivery)

    def requeue(self, delay_s: float = 0.0) -> None:
        self._respond()
        self._channel.requeue(self._entry, self._delivery, delay_s)

    def touch(self) -> None:
        self._channel.touch(self._entry, self._delivery)

    @property
    def has_responded(self) -> bool:
        return self._responded


class _MemoryConsumer(Consumer):
    def __init__(self, channel: "_Channel", handler: MessageHandler, max_in_flight: int):
        self.channel = channel
        self.handler = handler
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.running = True
        self._greenlets = gevent.pool.Group()

    @property
    def has_capacity(self) -> bool:
        return self.running and self.in_flight < self.max_in_flight

    def deliver(self, message: _MemoryMessage) -> None:
        self.in_flight += 1
        self._greenlets.spawn(self._handle, message)

    def _handle(self, message: _MemoryMessage) -> None:
        try:
            run_handler(self.handler, message)
        finally:
            self.in_flight -= 1
            self.channel.dispatch()

    def stop(self, timeout: float | None = None) -> None:
        self.running = False
        self.channel.remove_consumer(self)
        self._greenlets.join(timeout=timeout)


class _Channel:
    def __init__(self, queue: "MemoryQueue"):
        self._queue = queue
        self.ready: collections.deque[_Entry] = collections.deque()
        self.deferred: list[tuple[float, _Entry]] = []
        self.in_flight: dict[str, tuple[_Entry, int, float]] = {}  # id -> entry, delivery, deadline
        self.consumers: list[_MemoryConsumer] = []
        self._next_consumer = itertools.count()

    def put(self, entry: _Entry, delay_s: float = 0.0) -> None:
        if delay_s > 0:
            self.deferred.append((time.monotonic() + delay_s, entry))
        else:
            self.ready.append(entry)
            self.dispatch()

    def dispatch(self) -> None:
        while self.ready:
            consumer = self._free_consumer()
            if consumer is None:
                return
            entry = self.ready.popleft()
            entry.attempts += 1
            delivery = next(self._queue.deliveries)
            self.in_flight[entry.id] = (entry, delivery, self._deadline())
            consumer.deliver(_MemoryMessage(self, entry, delivery))

    def _free_consumer(self) -> _MemoryConsumer | None:
        count = len(self.consumers)
        start = next(self._next_consumer)
        for offset in range(count):
            consumer = self.consumers[(start + offset) % count]
            if consumer.has_capacity:
                return consumer
        return None

    def _holds(self, entry: _Entry, delivery: int) -> bool:
        held = self.in_flight.get(entry.id)
        if held is None or held[1] != delivery:
            log.warning("message %s: response to a delivery that timed out; ignored", entry.id)
            return False
        return True

    def finish(self, entry: _Entry, delivery: int) -> None:
        if self._holds(entry, delivery):
            del self.in_flight[entry.id]

    def requeue(self, entry: _Entry, delivery: int, delay_s: float) -> None:
        if self._holds(entry, delivery):
            del self.in_flight[entry.id]
            self.put(entry, delay_s)

    def touch(self, entry: _Entry, delivery: int) -> None:
        if self._holds(entry, delivery):
            self.in_flight[entry.id] = (entry, delivery, self._deadline())

    def _deadline(self) -> float:
        return time.monotonic() + self._queue.message_timeout_s

    def sweep(self, now: float) -> None:
        """Redeliver timed-out messages and release deferred ones that are due."""
        for message_id, (entry, _, deadline) in list(self.in_flight.items()):
            if deadline <= now:
                log.info("message %s timed out; delivering it again", message_id)
                del self.in_flight[message_id]
                self.ready.append(entry)
        due = [entry for at, entry in self.deferred if at <= now]
        if due:
            self.deferred = [(at, entry) for at, entry in self.deferred if at > now]
            self.ready.extend(due)
        if self.ready:
            self.dispatch()

    def remove_consumer(self, consumer: _MemoryConsumer) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)


class MemoryQueue(Queue):
    def __init__(self, message_timeout_s: float = DEFAULT_MESSAGE_TIMEOUT_S):
        self.message_timeout_s = message_timeout_s
        self.deliveries = itertools.count(1)
        self._topics: dict[str, dict[str, _Channel]] = {}
        self._unclaimed: dict[str, list[tuple[_Entry, float]]] = collections.defaultdict(list)
        self._consumers: list[_MemoryConsumer] = []
        self._sweeper = gevent.spawn(self._sweep_forever)

    def publish(self, topic: str, body: bytes, delay_s: float = 0.0) -> None:
        self._put(topic, body, delay_s)

    def multi_publish(self, topic: str, bodies: Sequence[bytes]) -> None:
        for body in bodies:
            self._put(topic, body, 0.0)

    def _put(self, topic: str, body: bytes, delay_s: float) -> None:
        if not isinstance(body, bytes):
            raise TypeError(f"message bodies are bytes, got {type(body).__name__}")
        channels = self._topics.setdefault(topic, {})
        if not channels:
            self._unclaimed[topic].append((_Entry(body), delay_s))
            return
        for channel in channels.values():
            channel.put(_Entry(body), delay_s)

    def consume(self, topic, channel, handler, *, max_in_flight=1):
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        channels = self._topics.setdefault(topic, {})
        target = channels.get(channel)
        if target is None:
            target = channels[channel] = _Channel(self)
            for entry, delay_s in self._unclaimed.pop(topic, []):
                target.put(entry, delay_s)
        consumer = _MemoryConsumer(target, handler, max_in_flight)
        target.consumers.append(consumer)
        self._consumers.append(consumer)
        target.dispatch()
        return consumer

    def depth(self, topic: str, channel: str) -> int:
        """Messages of ``topic`` waiting for ``channel``, ready or deferred, or for a first
        channel while the topic has none."""
        held = self._topics.get(topic, {}).get(channel)
        waiting = len(held.ready) + len(held.deferred) if held is not None else 0
        return waiting + len(self._unclaimed.get(topic, ()))

    def _sweep_forever(self) -> None:
        while True:
            gevent.sleep(_SWEEP_INTERVAL_S)
            now = time.monotonic()
            for channels in list(self._topics.values()):
                for channel in list(channels.values()):
                    channel.sweep(now)

    def close(self) -> None:
        for consumer in self._consumers:
            consumer.stop(timeout=0)
        self._sweeper.kill()
