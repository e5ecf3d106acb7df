"""The queue interface: NSQ semantics, implemented by ``nsq`` (real nsqd) and ``memory``.

Semantics, as NSQ's: a message published to a topic is copied to every channel of that topic;
within a channel each message goes to one consumer. A consumer holds at most ``max_in_flight``
messages at once. A held message must be finished (done), requeued (again later) or touched
(still working) before the message timeout, or it is delivered again, to any consumer. Delivery
is therefore at least once: handlers must make redelivery harmless.

Handlers run each in their own greenlet. A handler that returns without responding finishes its
message; one that raises requeues it with a backoff that grows with the message's attempts.
"""
from __future__ import annotations

import abc
import logging
from typing import Callable, Sequence

log = logging.getLogger(__name__)

#: Requeue delay after a handler raised: 0.1 s doubled per attempt, at most this.
MAX_FAILURE_BACKOFF_S = 60.0


class QueueError(Exception):
    """The queue failed or could not be reached in time."""


def failure_backoff_s(attempts: int) -> float:
    return min(0.1 * 2 ** max(attempts - 1, 0), MAX_FAILURE_BACKOFF_S)


class Message(abc.ABC):
    """One delivery of a message; ``attempts`` counts deliveries, starting at 1."""

    id: str
    body: bytes
    attempts: int

    @abc.abstractmethod
    def finish(self) -> None:
        """Done: the message will not be delivered again."""

    @abc.abstractmethod
    def requeue(self, delay_s: float = 0.0) -> None:
        """Deliver the message again after ``delay_s``, to any consumer."""

    @abc.abstractmethod
    def touch(self) -> None:
        """Reset the message timeout: the work is still going on."""

    @property
    @abc.abstractmethod
    def has_responded(self) -> bool:
        """True once finished or requeued."""


MessageHandler = Callable[[Message], None]


def run_handler(handler: MessageHandler, message: Message) -> None:
    """Run a handler with the interface's contract: finish on return, requeue on exception."""
    try:
        handler(message)
    except Exception:
        log.exception("message handler failed on message %s (attempt %d); requeueing",
                      message.id, message.attempts)
        if not message.has_responded:
            message.requeue(failure_backoff_s(message.attempts))
        return
    if not message.has_responded:
        message.finish()


class Consumer(abc.ABC):
    @abc.abstractmethod
    def stop(self, timeout: float | None = None) -> None:
        """Stop taking messages; wait up to ``timeout`` for running handlers.

        Messages still held afterwards are redelivered by the queue after their timeout.
        """


class Queue(abc.ABC):
    @abc.abstractmethod
    def publish(self, topic: str, body: bytes, delay_s: float = 0.0) -> None:
        """Publish one message, delivered no earlier than ``delay_s`` from now."""

    @abc.abstractmethod
    def multi_publish(self, topic: str, bodies: Sequence[bytes]) -> None:
        """Publish several messages in one round trip."""

    @abc.abstractmethod
    def consume(self, topic: str, channel: str, handler: MessageHandler, *,
                max_in_flight: int = 1) -> Consumer:
        """Start delivering the topic's messages on ``channel`` to ``handler``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every consumer and release connections."""

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
