"""Transactions made at the same time by one process, sent to etcd together.

etcd's cost of a transaction is mostly per call, not per operation: its JSON gateway, a raft
proposal and a disk sync each time (docs/benchmarks.rst, "Transactions sent together"). So while
a process waits for one transaction, the ones its other greenlets make meanwhile wait too, and
then go in one call, each as a nested transaction of it (etcd 3.3 and later).

etcd evaluates every nested transaction's compares against the state before any of them ran,
then applies their operations in order; and it refuses two puts of one key in a call. So only
transactions that share no key one of them writes go together (comparing or reading the same
key is no conflict): each then has the outcome it would have had alone, whichever order they
are taken in. The others go in other calls, sent at the same time: no transaction waits behind
one it conflicts with for more than the call in flight when it came.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Generic, Sequence, TypeVar

import gevent
import gevent.event

from mr.kv.base import Compare, Delete, Get, Operation, Put, prefix_range_end

#: Transactions per call at most: etcd refuses a call of more than --max-txn-ops operations at
#: any level (its default is 128).
MAX_TOGETHER = 64
#: A transaction that writes more bytes than this goes alone: with MAX_TOGETHER of them, a call
#: stays well under the 1.5 MiB etcd accepts.
MAX_SIZE_TOGETHER = 8 * 1024
#: Calls in flight before the next transaction waits to go with others.
CALLS_IN_FLIGHT = 1

Request = TypeVar("Request")
Result = TypeVar("Result")

#: A half-open interval of keys, as bytes; an end of None: every key from the start on.
KeyInterval = tuple[bytes, "bytes | None"]


@dataclasses.dataclass
class TouchedKeys:
    """The keys a transaction reads (compares or gets) and writes, in either branch."""
    reads: list[KeyInterval]
    writes: list[KeyInterval]

    @classmethod
    def of(cls, compare: Sequence[Compare], operations: Sequence[Operation]) -> "TouchedKeys":
        reads = [_interval(item) for item in (*compare, *operations)
                 if isinstance(item, (Compare, Get))]
        writes = [_interval(item) for item in operations if isinstance(item, (Put, Delete))]
        return cls(reads, writes)

    def conflict(self, other: "TouchedKeys") -> bool:
        """One writes a key the other reads or writes (reading the same keys is no conflict)."""
        return (_any_overlap(self.writes, other.writes) or _any_overlap(self.writes, other.reads)
                or _any_overlap(self.reads, other.writes))

    def add(self, other: "TouchedKeys") -> None:
        self.reads.extend(other.reads)
        self.writes.extend(other.writes)


def _interval(item: Compare | Operation) -> KeyInterval:
    start = item.key.encode()
    if getattr(item, "prefix", False):
        end = prefix_range_end(item.key)
        return start, None if end == b"\0" else end
    return start, start + b"\0"


def _any_overlap(first: list[KeyInterval], second: list[KeyInterval]) -> bool:
    return any((theirs[1] is None or mine[0] < theirs[1])
               and (mine[1] is None or theirs[0] < mine[1])
               for mine in first for theirs in second)


@dataclasses.dataclass(eq=False)
class _Waiting(Generic[Request, Result]):
    request: Request
    keys: TouchedKeys
    answer: gevent.event.AsyncResult = dataclasses.field(
        default_factory=gevent.event.AsyncResult)


class TxnBatcher(Generic[Request, Result]):
    """Sends transactions one by one while few are in flight, and together past that.

    ``send_one(request)`` runs one transaction; ``send_together(requests)`` runs several in one
    call and returns their results in order, or raises, with nothing applied, when the store
    refused that call: each then goes again alone, so that it gets its own answer.
    """

    def __init__(self, send_one: Callable[[Request], Result],
                 send_together: Callable[[list[Request]], list[Result]],
                 refused: type[Exception] | tuple[type[Exception], ...]):
        self._send_one = send_one
        self._send_together = send_together
        self._refused = refused
        self._in_flight = 0
        self._waiting: list[_Waiting] = []

    def run(self, request: Request, keys: TouchedKeys, size: int) -> Result:
        """The transaction's result, as ``send_one`` would give it. ``size``: its request's
        bytes, a large one goes alone."""
        if self._in_flight < CALLS_IN_FLIGHT or size > MAX_SIZE_TOGETHER:
            self._in_flight += 1
            try:
                return self._send_one(request)
            finally:
                self._call_ended()
        waiting = _Waiting(request, keys)
        self._waiting.append(waiting)
        try:
            return waiting.answer.get()
        except BaseException:
            if waiting in self._waiting:  # the caller was stopped before it was sent: never
                self._waiting.remove(waiting)
            raise

    def _call_ended(self) -> None:
        self._in_flight -= 1
        if self._waiting:
            waiting, self._waiting = self._waiting, []
            for group in _conflict_free_groups(waiting):
                self._in_flight += 1
                gevent.spawn(self._send_group, group)

    def _send_group(self, group: list[_Waiting]) -> None:
        try:
            if len(group) == 1:
                self._answer(group[0], self._send_one)
                return
            try:
                results = self._send_together([waiting.request for waiting in group])
            except self._refused:  # nothing applied: each alone, for its own answer
                for waiting in group:
                    self._answer(waiting, self._send_one)
            except BaseException as error:  # noqa: BLE001 — each caller gets it as its own
                for waiting in group:
                    waiting.answer.set_exception(error)
            else:
                for waiting, result in zip(group, results):
                    waiting.answer.set(result)
        finally:
            self._call_ended()

    @staticmethod
    def _answer(waiting: _Waiting, send: Callable) -> None:
        try:
            waiting.answer.set(send(waiting.request))
        except BaseException as error:  # noqa: BLE001 — raised in the caller's greenlet
            waiting.answer.set_exception(error)


def _conflict_free_groups(waiting: list[_Waiting]) -> list[list[_Waiting]]:
    """The transactions in groups that share no key, in order of arrival within each."""
    groups: list[tuple[list[_Waiting], TouchedKeys]] = []
    for item in waiting:
        for members, keys in groups:
            if len(members) < MAX_TOGETHER and not keys.conflict(item.keys):
                members.append(item)
                keys.add(item.keys)
                break
        else:
            groups.append(([item], TouchedKeys(list(item.keys.reads), list(item.keys.writes))))
    return [members for members, _ in groups]
