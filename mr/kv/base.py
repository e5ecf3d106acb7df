"""The KV interface: etcd v3 semantics, implemented by ``etcd`` (real server) and ``memory``.

Everything above this module speaks only these types. The semantics are etcd's: one revision
counter for the whole store, increased by every write (a transaction counts once); each key has a
``create_revision``, a ``mod_revision`` and a ``version`` (writes since creation); a watch from
revision R delivers every change with revision >= R, in order, each once; leases delete their keys
when they expire.
"""
from __future__ import annotations

import abc
import dataclasses
import logging
from typing import Iterator, Sequence, Union

import gevent
import gevent.queue

log = logging.getLogger(__name__)


class KVError(Exception):
    """The store failed or could not be reached in time."""


class CompactedError(KVError):
    """A watch asked for revisions that the store no longer keeps."""

    def __init__(self, compact_revision: int):
        super().__init__(f"revisions before {compact_revision} have been compacted")
        self.compact_revision = compact_revision


class TransactionTooLargeError(KVError, ValueError):
    """The store refuses transactions with this many operations (etcd: ``--max-txn-ops``)."""


class KVSpaceExceededError(KVError):
    """The store is out of space: it refuses writes (reads still work) until an operator frees
    some; for etcd, its NOSPACE alarm (``mr etcd maintain`` recovers)."""


class LeaseNotFoundError(KVError):
    """The lease expired or was revoked."""


@dataclasses.dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


@dataclasses.dataclass(frozen=True)
class RangeResult:
    kvs: list[KeyValue]
    count: int
    more: bool
    revision: int


@dataclasses.dataclass(frozen=True)
class PutResult:
    revision: int
    prev_kv: KeyValue | None = None


@dataclasses.dataclass(frozen=True)
class DeleteResult:
    deleted: int
    revision: int
    prev_kvs: list[KeyValue] = dataclasses.field(default_factory=list)


COMPARE_TARGETS = ("value", "version", "create_revision", "mod_revision")
COMPARE_OPERATORS = ("==", "!=", "<", ">")


@dataclasses.dataclass(frozen=True)
class Compare:
    """One condition of a transaction: ``<target of key> <operator> <operand>``.

    A key that does not exist has version, create_revision and mod_revision 0, so
    ``Compare(key, "create_revision", "==", 0)`` means "key is absent".
    """
    key: str
    target: str
    operator: str
    operand: Union[bytes, int]

    def __post_init__(self):
        if self.target not in COMPARE_TARGETS:
            raise ValueError(f"compare target must be one of {COMPARE_TARGETS}, got {self.target!r}")
        if self.operator not in COMPARE_OPERATORS:
            raise ValueError(f"compare operator must be one of {COMPARE_OPERATORS}, "
                             f"got {self.operator!r}")
        expected = bytes if self.target == "value" else int
        if not isinstance(self.operand, expected):
            raise TypeError(f"compare on {self.target} needs a {expected.__name__} operand")

    def holds_for(self, kv: KeyValue | None) -> bool:
        """Evaluate against the key's current state (None: absent); used by the memory store."""
        if self.target == "value":
            if kv is None:
                return False  # etcd: a value compare on a missing key fails
            actual = kv.value
        else:
            actual = getattr(kv, self.target) if kv is not None else 0
        return {"==": actual == self.operand, "!=": actual != self.operand,
                "<": actual < self.operand, ">": actual > self.operand}[self.operator]


@dataclasses.dataclass(frozen=True)
class Get:
    """A range read inside a transaction; ``count_only`` returns just how many keys match."""
    key: str
    prefix: bool = False
    count_only: bool = False


@dataclasses.dataclass(frozen=True)
class Put:
    """A write inside a transaction; ``prev_kv`` returns the key's previous state, so that a
    put can count (the previous ``version`` + 1 is how many times the key has been written)."""
    key: str
    value: bytes
    lease: int = 0
    prev_kv: bool = False


@dataclasses.dataclass(frozen=True)
class Delete:
    key: str
    prefix: bool = False


Operation = Union[Get, Put, Delete]


@dataclasses.dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int
    #: One entry per operation of the branch that ran: RangeResult, PutResult or DeleteResult.
    responses: list


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    type: str  # "put" or "delete"
    kv: KeyValue  # for a delete: the key, an empty value and the deletion's mod_revision
    prev_kv: KeyValue | None = None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


class Watch(abc.ABC):
    """A stream of changes under a key or prefix; iterate it, or ``get`` with a timeout."""

    @abc.abstractmethod
    def get(self, timeout: float | None = None) -> WatchEvent | None:
        """The next event; None when ``timeout`` passes first or the watch was cancelled.

        Raises :class:`CompactedError` when the requested start revision is no longer kept.
        """

    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop the watch; ``get`` returns None from then on."""

    @property
    @abc.abstractmethod
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""

    def __iter__(self) -> Iterator[WatchEvent]:
        while True:
            event = self.get()
            if event is None:
                return
            yield event

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc_info) -> None:
        self.cancel()


class QueuedWatch(Watch):
    """A watch whose events are pushed by the store into a queue that ``get`` reads.

    A CompactedError pushed by the store is raised by this and every later ``get``.
    """

    def __init__(self):
        self._items: gevent.queue.Queue = gevent.queue.Queue()
        self._cancelled = False

    def push(self, item: WatchEvent | CompactedError) -> None:
        self._items.put(item)

    def get(self, timeout: float | None = None) -> WatchEvent | None:
        if self._cancelled:
            return None
        try:
            item = self._items.get(timeout=timeout)
        except gevent.queue.Empty:
            return None
        if isinstance(item, CompactedError):
            self._items.put(item)
            raise item
        return item

    def cancel(self) -> None:
        if not self._cancelled:
            self._cancelled = True
            self._items.put(None)  # wakes a reader blocked in get()
            self._stop()

    @abc.abstractmethod
    def _stop(self) -> None:
        """Stop producing events (called once, by cancel)."""

    @property
    def cancelled(self) -> bool:
        return self._cancelled


class KV(abc.ABC):
    """A key-value store with etcd v3 semantics. Keys are text, values bytes."""

    @abc.abstractmethod
    def range(self, key: str, *, prefix: bool = False, limit: int = 0,
              count_only: bool = False, keys_only: bool = False,
              start: str | None = None) -> RangeResult:
        """Keys equal to ``key`` (or starting with it, with ``prefix``), sorted by key.

        ``limit`` > 0 returns at most that many (``more`` says whether others exist; ``count`` is
        the total of the range). ``count_only`` returns no kvs. ``keys_only`` returns empty
        values. ``start`` (with ``prefix``) begins the range at that key instead of at the
        prefix, for reading a long prefix page by page.
        """

    @abc.abstractmethod
    def put(self, key: str, value: bytes, *, lease: int = 0, prev_kv: bool = False) -> PutResult:
        """Set ``key`` to ``value``, attached to ``lease`` when not 0."""

    @abc.abstractmethod
    def delete(self, key: str, *, prefix: bool = False, prev_kv: bool = False) -> DeleteResult:
        """Delete ``key`` (or every key starting with it, with ``prefix``)."""

    @abc.abstractmethod
    def txn(self, compare: Sequence[Compare], success: Sequence[Operation] = (),
            failure: Sequence[Operation] = ()) -> TxnResult:
        """Atomically: if every compare holds, run ``success``, else ``failure``."""

    @abc.abstractmethod
    def watch(self, key: str, *, prefix: bool = False, start_revision: int = 0,
              prev_kv: bool = False, puts_only: bool = False) -> Watch:
        """Changes to ``key`` (or under it, with ``prefix``) from ``start_revision`` on.

        ``start_revision`` 0 means "changes after now". To miss nothing between a read and a
        watch, pass the read's revision + 1. ``puts_only``: no deletions (the store does not
        even send them: etcd's NODELETE filter).
        """

    @abc.abstractmethod
    def compact(self, revision: int) -> None:
        """Forget the history before ``revision``: watches can no longer start earlier."""

    @abc.abstractmethod
    def grant_lease(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; returns its id."""

    @abc.abstractmethod
    def refresh_lease(self, lease_id: int) -> int:
        """Renew a lease to its full ttl; returns the ttl. Raises LeaseNotFoundError if gone."""

    @abc.abstractmethod
    def revoke_lease(self, lease_id: int) -> None:
        """End a lease now, deleting its keys. Revoking an unknown lease is not an error."""

    @abc.abstractmethod
    def lease_time_to_live(self, lease_id: int) -> int:
        """Seconds left on a lease; -1 when it does not exist (expired or revoked)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and stop background work."""

    # Conveniences over the primitives, shared by every implementation.

    def get(self, key: str) -> KeyValue | None:
        result = self.range(key)
        return result.kvs[0] if result.kvs else None

    def pages(self, prefix: str, page_size: int = 500,
              keys_only: bool = False) -> Iterator[list[KeyValue]]:
        """The keys under ``prefix``, a page at a time, so that no single read is unbounded.

        Each page is read at its own revision: keys written during the walk may or may not
        appear, which suits scans that are repeated (cleanup, sweeping, cache loads)."""
        start = None
        while True:
            page = self.range(prefix, prefix=True, limit=page_size, keys_only=keys_only,
                              start=start)
            if page.kvs:
                yield page.kvs
            if not page.more or not page.kvs:
                return
            start = page.kvs[-1].key + "\0"

    def current_revision(self) -> int:
        return self.range("\0", count_only=True).revision

    def keep_lease_alive(self, lease_id: int, ttl: int) -> "LeaseKeeper":
        """Refresh ``lease_id`` in the background every third of ``ttl`` until stopped."""
        return LeaseKeeper(self, lease_id, ttl)

    def __enter__(self) -> "KV":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class LeaseKeeper:
    """Keeps a lease alive from a greenlet; a transient store failure is retried, not fatal."""

    def __init__(self, kv: KV, lease_id: int, ttl: int):
        self.kv = kv
        self.lease_id = lease_id
        self.interval = max(ttl / 3.0, 0.1)
        self.lost = False
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            gevent.sleep(self.interval)
            try:
                self.kv.refresh_lease(self.lease_id)
            except LeaseNotFoundError:
                self.lost = True
                log.warning("lease %x expired before it could be refreshed", self.lease_id)
                return
            except KVError as error:
                log.warning("refreshing lease %x failed, will retry: %s", self.lease_id, error)

    def stop(self) -> None:
        self._greenlet.kill()


def prefix_range_end(prefix: str) -> bytes:
    """etcd's range_end for "every key starting with prefix": the prefix with its last byte + 1."""
    raw = bytearray(prefix.encode())
    for index in range(len(raw) - 1, -1, -1):
        if raw[index] < 0xFF:
            raw[index] += 1
            return bytes(raw[: index + 1])
    return b"\0"  # an all-0xff prefix: every key from it to the end
