"""The embedded KV store: etcd v3 semantics in one process, for the greenlets of that process.

It keeps a bounded history of changes so that watches can start from a past revision, exactly
as etcd does until it compacts; a watch from before the kept history raises CompactedError.
"""
from __future__ import annotations

import bisect
import collections
import itertools
import threading
import time
from typing import Sequence

import gevent

from mr.kv.base import (KV, CompactedError, Compare, Delete, DeleteResult, Get, KeyValue,
                        LeaseNotFoundError, Operation, Put, PutResult, QueuedWatch, RangeResult,
                        TxnResult, WatchEvent)

DEFAULT_HISTORY_LIMIT = 100_000
_LEASE_REAP_INTERVAL_S = 0.05


class _Lease:
    def __init__(self, ttl: int):
        self.ttl = ttl
        self.deadline = time.monotonic() + ttl
        self.keys: set[str] = set()


class _MemoryWatch(QueuedWatch):
    def __init__(self, store: "MemoryKV", key: str, prefix: bool, prev_kv: bool,
                 puts_only: bool):
        super().__init__()
        self._store = store
        self.key = key
        self.prefix = prefix
        self.prev_kv = prev_kv
        self.puts_only = puts_only

    def matches(self, key: str) -> bool:
        return key.startswith(self.key) if self.prefix else key == self.key

    def deliver(self, event: WatchEvent) -> None:
        if self.puts_only and event.type == "delete":
            return
        if not self.prev_kv and event.prev_kv is not None:
            event = WatchEvent(event.type, event.kv)
        self.push(event)

    def _stop(self) -> None:
        self._store._unregister(self)


class MemoryKV(KV):
    def __init__(self, history_limit: int = DEFAULT_HISTORY_LIMIT):
        self._lock = threading.RLock()
        self._data: dict[str, KeyValue] = {}
        self._sorted_keys: list[str] = []
        self._revision = 1  # etcd starts at 1 too: an empty store has revision 1
        self._history: collections.deque[WatchEvent] = collections.deque(maxlen=history_limit)
        self._compact_revision = 0  # the oldest revision a watch may start from
        self._watches: list[_MemoryWatch] = []
        self._leases: dict[int, _Lease] = {}
        self._lease_ids = itertools.count(0x1000)
        self._reaper: gevent.Greenlet | None = None
        self._closed = False

    # Reads

    def _keys_in(self, key: str, prefix: bool) -> list[str]:
        if not prefix:
            return [key] if key in self._data else []
        return self._sorted_keys[slice(*self._prefix_bounds(key))]

    def _prefix_bounds(self, prefix: str) -> tuple[int, int]:
        """Where the keys starting with ``prefix`` are in the sorted keys, found by bisection
        (so that counting them costs no scan): from the prefix to the first string after all
        its extensions, the prefix with its last character incremented."""
        start = bisect.bisect_left(self._sorted_keys, prefix)
        if not prefix:
            return start, len(self._sorted_keys)
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return start, bisect.bisect_left(self._sorted_keys, end, lo=start)

    def range(self, key, *, prefix=False, limit=0, count_only=False, keys_only=False,
              start=None):
        with self._lock:
            return self._range(key, prefix, limit, count_only, keys_only, start)

    def _range(self, key, prefix, limit=0, count_only=False, keys_only=False,
               start=None) -> RangeResult:
        if prefix:
            first, end = self._prefix_bounds(key)
            if start is not None:
                first = max(first, bisect.bisect_left(self._sorted_keys, start))
            if count_only:
                return RangeResult([], max(end - first, 0), False, self._revision)
            keys = self._sorted_keys[first:end]
        elif count_only:
            return RangeResult([], int(key in self._data), False, self._revision)
        else:
            keys = self._keys_in(key, prefix)
        count = len(keys)
        selected = keys[:limit] if limit > 0 else keys
        kvs = [self._data[k] for k in selected]
        if keys_only:
            kvs = [KeyValue(kv.key, b"", kv.create_revision, kv.mod_revision, kv.version, kv.lease)
                   for kv in kvs]
        return RangeResult(kvs, count, len(selected) < count, self._revision)

    # Writes: each public write is one revision; a transaction's writes share one.

    def put(self, key, value, *, lease=0, prev_kv=False):
        with self._lock:
            revision = self._revision + 1
            events = []
            previous = self._put(key, value, lease, revision, events)
            self._commit(revision, events)
            return PutResult(revision, previous if prev_kv else None)

    def delete(self, key, *, prefix=False, prev_kv=False):
        with self._lock:
            revision = self._revision + 1
            events = []
            deleted = self._delete(key, prefix, revision, events)
            if deleted:
                self._commit(revision, events)
            return DeleteResult(len(deleted), self._revision, deleted if prev_kv else [])

    def txn(self, compare: Sequence[Compare], success: Sequence[Operation] = (),
            failure: Sequence[Operation] = ()) -> TxnResult:
        with self._lock:
            succeeded = all(condition.holds_for(self._data.get(condition.key))
                            for condition in compare)
            operations = success if succeeded else failure
            _reject_duplicate_writes(operations)
            revision = self._revision + 1
            events: list[WatchEvent] = []
            responses = []
            for operation in operations:
                if isinstance(operation, Get):
                    responses.append(self._range(operation.key, operation.prefix,
                                                 count_only=operation.count_only))
                elif isinstance(operation, Put):
                    previous = self._put(operation.key, operation.value, operation.lease,
                                         revision, events)
                    responses.append(PutResult(revision,
                                               previous if operation.prev_kv else None))
                elif isinstance(operation, Delete):
                    deleted = self._delete(operation.key, operation.prefix, revision, events)
                    responses.append(DeleteResult(len(deleted), revision))
                else:
                    raise TypeError(f"not a transaction operation: {operation!r}")
            if events:
                self._commit(revision, events)
            return TxnResult(succeeded, self._revision, responses)

    def _put(self, key: str, value: bytes, lease: int, revision: int,
             events: list[WatchEvent]) -> KeyValue | None:
        if not isinstance(value, bytes):
            raise TypeError(f"values are bytes, got {type(value).__name__}")
        if lease and lease not in self._leases:
            raise LeaseNotFoundError(f"lease {lease:x} not found")
        previous = self._data.get(key)
        if previous is None:
            bisect.insort(self._sorted_keys, key)
            current = KeyValue(key, value, revision, revision, 1, lease)
        else:
            if previous.lease and previous.lease != lease and previous.lease in self._leases:
                self._leases[previous.lease].keys.discard(key)
            current = KeyValue(key, value, previous.create_revision, revision,
                               previous.version + 1, lease)
        if lease:
            self._leases[lease].keys.add(key)
        self._data[key] = current
        events.append(WatchEvent("put", current, previous))
        return previous

    def _delete(self, key: str, prefix: bool, revision: int,
                events: list[WatchEvent]) -> list[KeyValue]:
        deleted = []
        for existing in self._keys_in(key, prefix):
            previous = self._data.pop(existing)
            del self._sorted_keys[bisect.bisect_left(self._sorted_keys, existing)]
            if previous.lease in self._leases:
                self._leases[previous.lease].keys.discard(existing)
            tombstone = KeyValue(existing, b"", 0, revision, 0)
            events.append(WatchEvent("delete", tombstone, previous))
            deleted.append(previous)
        return deleted

    def _commit(self, revision: int, events: list[WatchEvent]) -> None:
        self._revision = revision
        for event in events:
            if len(self._history) == self._history.maxlen:
                self._compact_revision = self._history[0].revision + 1
            self._history.append(event)
        for event in events:
            for watch in self._watches:
                if watch.matches(event.kv.key):
                    watch.deliver(event)

    # Watches

    def watch(self, key, *, prefix=False, start_revision=0, prev_kv=False, puts_only=False):
        with self._lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            watch = _MemoryWatch(self, key, prefix, prev_kv, puts_only)
            if start_revision and start_revision < self._compact_revision:
                watch.push(CompactedError(self._compact_revision))
                return watch
            if start_revision:
                for event in self._history:
                    if event.revision >= start_revision and watch.matches(event.kv.key):
                        watch.deliver(event)
            self._watches.append(watch)
            return watch

    def compact(self, revision: int) -> None:
        with self._lock:
            if revision > self._revision:
                raise ValueError(f"cannot compact to {revision}: the current revision is "
                                 f"{self._revision}")
            while self._history and self._history[0].revision < revision:
                self._history.popleft()
            self._compact_revision = max(self._compact_revision, revision)

    def _unregister(self, watch: _MemoryWatch) -> None:
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)

    # Leases

    def grant_lease(self, ttl: int) -> int:
        if ttl <= 0:
            raise ValueError("a lease needs a positive ttl")
        with self._lock:
            lease_id = next(self._lease_ids)
            self._leases[lease_id] = _Lease(ttl)
            if self._reaper is None:
                self._reaper = gevent.spawn(self._reap_leases)
            return lease_id

    def refresh_lease(self, lease_id: int) -> int:
        with self._lock:
            lease = self._live_lease(lease_id)
            if lease is None:
                raise LeaseNotFoundError(f"lease {lease_id:x} not found")
            lease.deadline = time.monotonic() + lease.ttl
            return lease.ttl

    def revoke_lease(self, lease_id: int) -> None:
        with self._lock:
            self._expire(lease_id)

    def lease_time_to_live(self, lease_id: int) -> int:
        with self._lock:
            lease = self._live_lease(lease_id)
            if lease is None:
                return -1
            return max(0, round(lease.deadline - time.monotonic()))

    def _live_lease(self, lease_id: int) -> _Lease | None:
        lease = self._leases.get(lease_id)
        if lease is not None and lease.deadline <= time.monotonic():
            self._expire(lease_id)
            return None
        return lease

    def _expire(self, lease_id: int) -> None:
        lease = self._leases.pop(lease_id, None)
        if lease is None or not lease.keys:
            return
        revision = self._revision + 1
        events: list[WatchEvent] = []
        for key in sorted(lease.keys):
            self._delete(key, False, revision, events)
        self._commit(revision, events)

    def _reap_leases(self) -> None:
        while not self._closed:
            gevent.sleep(_LEASE_REAP_INTERVAL_S)
            with self._lock:
                now = time.monotonic()
                for lease_id in [i for i, lease in self._leases.items() if lease.deadline <= now]:
                    self._expire(lease_id)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for watch in list(self._watches):
                watch.cancel()
        if self._reaper is not None:
            self._reaper.kill()


def _reject_duplicate_writes(operations: Sequence[Operation]) -> None:
    """etcd refuses a transaction that writes one key twice; so does the embedded store."""
    written: set[str] = set()
    for operation in operations:
        if isinstance(operation, (Put, Delete)) and not getattr(operation, "prefix", False):
            if operation.key in written:
                raise ValueError(f"duplicate key given in transaction: {operation.key!r}")
            written.add(operation.key)
