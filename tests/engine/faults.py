"""Deterministic faults for the engine tests: queues that crash, drop or replay, a KV that
interleaves, a data store that breaks, and handlers whose every run leaves a trace.

A *crash* is a :class:`SimulatedCrash` raised inside a worker's handling of a message: it is not
an ``Exception``, so nothing in mr catches it, the message is never answered, and the queue
delivers it again after its timeout — what a worker process killed at that point leaves behind.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import gevent

from mr.engine.engine import Engine
from mr.engine.messages import InvocationMessage
from mr.kv.base import KV
from mr.queue.base import Message, run_handler


class SimulatedCrash(BaseException):
    """The worker "dies" here: its message stays unanswered."""


def intercept_publishes(monkeypatch, engine: Engine,
                       on_publish: Callable[[InvocationMessage], bool]) -> list[list[bytes]]:
    """Route every publish of the engine's queue through ``on_publish``, which sees each
    invocation message and returns True to publish it, False to lose it, or raises
    (SimulatedCrash). Returns the batches as published, for checks on their size."""
    queue = engine.queue
    publish, multi_publish = queue.publish, queue.multi_publish
    batches: list[list[bytes]] = []

    def kept(bodies: Sequence[bytes]) -> list[bytes]:
        return [body for body in bodies
                if on_publish(InvocationMessage.decode(engine.signer.verified(body)))]

    def publish_one(topic, body, delay_s=0.0):
        if kept([body]):
            batches.append([body])
            publish(topic, body, delay_s)

    def publish_many(topic, bodies):
        bodies = kept(bodies)
        if bodies:
            batches.append(list(bodies))
            multi_publish(topic, bodies)

    monkeypatch.setattr(queue, "publish", publish_one)
    monkeypatch.setattr(queue, "multi_publish", publish_many)
    return batches


def signed(engine: Engine, message: InvocationMessage) -> bytes:
    """The body the engine publishes for ``message``: signed when it has a secret."""
    return engine.signer.sign(message.encode())


class Redelivery(Message):
    """A second delivery of a message that was already handled (and finished)."""

    def __init__(self, original: Message):
        self.id, self.body, self.attempts = original.id, original.body, original.attempts + 1
        self.responses: list[str] = []

    def finish(self):
        self.responses.append("finish")

    def requeue(self, delay_s=0.0):
        self.responses.append("requeue")

    def touch(self):
        pass

    @property
    def has_responded(self):
        return bool(self.responses)


def answers_of(redeliveries: list[Redelivery], timeout_s: float = 10.0) -> list[list[str]]:
    """How each redelivery was answered, once each was (a request may finish while the copy of
    its last message still runs)."""
    with gevent.Timeout(timeout_s, False):
        while not all(again.has_responded for again in redeliveries):
            gevent.sleep(0.01)
    return [again.responses for again in redeliveries]


def redeliver_after_handling(monkeypatch, cluster) -> list[Redelivery]:
    """Make the cluster's worker handle every message a second time, as a redelivery, right
    after the first handling: a worker that committed, then died before finishing it."""
    redeliveries: list[Redelivery] = []
    handle = cluster.engine.handle

    def handle_twice(message: Message) -> None:
        handle(message)
        again = Redelivery(message)
        redeliveries.append(again)
        run_handler(handle, again)

    monkeypatch.setattr(cluster.engine, "handle", handle_twice)
    cluster.restart_worker()
    return redeliveries


class InterleavingKV(KV):
    """The embedded KV, but every call first lets other greenlets run, so that a read and the
    transaction that follows it interleave with other invocations as they do over a network."""

    def __init__(self, inner: KV):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _yield_then(self, name, *args, **kwargs):
        gevent.sleep(0)
        result = getattr(self._inner, name)(*args, **kwargs)
        gevent.sleep(0)
        return result

    def range(self, *args, **kwargs):
        return self._yield_then("range", *args, **kwargs)

    def put(self, *args, **kwargs):
        return self._yield_then("put", *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._yield_then("delete", *args, **kwargs)

    def txn(self, *args, **kwargs):
        return self._yield_then("txn", *args, **kwargs)

    def watch(self, *args, **kwargs):
        return self._inner.watch(*args, **kwargs)

    def compact(self, revision):
        return self._inner.compact(revision)

    def grant_lease(self, ttl):
        return self._inner.grant_lease(ttl)

    def refresh_lease(self, lease_id):
        return self._inner.refresh_lease(lease_id)

    def revoke_lease(self, lease_id):
        return self._inner.revoke_lease(lease_id)

    def lease_time_to_live(self, lease_id):
        return self._inner.lease_time_to_live(lease_id)

    def close(self):
        return self._inner.close()


def run_log_handler(directory: str, input_name: str, body: str) -> str:
    """A handler body that first appends one line to a file of ``directory`` per run, named by
    the keys of its input (``arguments`` or ``results``): how often each invocation ran."""
    return f"""
import os as _os
_keys = '-'.join(sorted(str(pair[0]) for pair in {input_name}))
with open(_os.path.join({directory!r}, _keys or 'empty'), 'a') as _log:
    _log.write('run\\n')
{body}"""


def runs_per_key(directory: str) -> dict[str, int]:
    return {name: len(open(os.path.join(directory, name)).read().splitlines())
            for name in os.listdir(directory)}
