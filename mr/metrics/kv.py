"""Every call to a process's KV, timed by operation (``mr_kv_operation_duration_seconds``).

A wrapper where the KV is made, rather than code in each backend: both backends, and any
added later, are measured the same way. Watches are streams, not calls, and are not timed;
``get``, ``pages`` and the other conveniences of the interface are timed as the ``range``
calls they make.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from mr.kv.base import (KV, Compare, DeleteResult, KVError, Operation, PutResult, RangeResult,
                        TxnResult, Watch)
from mr.metrics.instruments import KV_ERRORS, KV_SECONDS

OPERATIONS = ("range", "put", "delete", "txn", "compact", "grant_lease", "refresh_lease",
              "revoke_lease", "lease_time_to_live")
# Bound once: labels() looks its child up under a lock on every call.
_OBSERVE = {operation: KV_SECONDS.labels(operation).observe for operation in OPERATIONS}


class TimedKV(KV):
    """``kv``, with each call observed. What only one backend has (``EtcdKV.defragment``, say)
    is passed through untimed."""

    def __init__(self, kv: KV):
        self.backend = kv

    def _timed(self, operation: str, call: Callable[..., Any], *arguments, **options) -> Any:
        started = time.perf_counter()
        try:
            return call(*arguments, **options)
        except KVError:
            KV_ERRORS.labels(operation).inc()
            raise
        finally:
            _OBSERVE[operation](time.perf_counter() - started)

    def range(self, key: str, **options) -> RangeResult:
        return self._timed("range", self.backend.range, key, **options)

    def put(self, key: str, value: bytes, **options) -> PutResult:
        return self._timed("put", self.backend.put, key, value, **options)

    def delete(self, key: str, **options) -> DeleteResult:
        return self._timed("delete", self.backend.delete, key, **options)

    def txn(self, compare: Sequence[Compare], success: Sequence[Operation] = (),
            failure: Sequence[Operation] = ()) -> TxnResult:
        return self._timed("txn", self.backend.txn, compare, success, failure)

    def watch(self, key: str, **options) -> Watch:
        return self.backend.watch(key, **options)

    def compact(self, revision: int, **options) -> None:
        self._timed("compact", self.backend.compact, revision, **options)

    def grant_lease(self, ttl: int) -> int:
        return self._timed("grant_lease", self.backend.grant_lease, ttl)

    def refresh_lease(self, lease_id: int) -> int:
        return self._timed("refresh_lease", self.backend.refresh_lease, lease_id)

    def revoke_lease(self, lease_id: int) -> None:
        self._timed("revoke_lease", self.backend.revoke_lease, lease_id)

    def lease_time_to_live(self, lease_id: int) -> int:
        return self._timed("lease_time_to_live", self.backend.lease_time_to_live, lease_id)

    def close(self) -> None:
        self.backend.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)
