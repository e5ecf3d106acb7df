"""P6: KV round trips per invocation, counted at the KV interface of an in-process engine."""
from __future__ import annotations

import collections

import gevent

from benchmarks.common import Row, Target, cpu_used, in_process_mr
from mr.kv.base import KV

TITLE = "P6: KV round trips per invocation"
DESCRIPTION = """\
An engine and a worker in the benchmark process (as in ``tests/engine/conftest.py``), over the
memory KV and queue (embedded) or a private etcd and nsqd (distributed), with the KV wrapped in
a proxy that counts the calls reaching it: ``range``, ``put``, ``delete``, ``txn``, lease calls
— each one HTTP request to etcd. Watches are long streams and are counted apart. A request runs
as the front end runs it (submit, wait, read the result, remove the finished request) after a
warm-up request that loads the handler code into the engine's cache. Invocations are counted
as in P2: every map invocation and every reduction, so a leaf is two (its map and the reduction
that runs right after it) and the 100-child request is 202. The note splits the round trips
between the front end's calls and the worker's."""

BRANCH_CHILDREN = 100
TARGET_PER_INVOCATION = 3.0
FRONT_END, WORKER = "front end", "worker"


def _counted(operation: str):
    def call(self: "CountingKV", *args, **kwargs):
        self.count(operation)
        return getattr(self.kv, operation)(*args, **kwargs)
    call.__name__ = operation
    return call


class CountingKV(KV):
    """A KV passing every call to ``kv`` and counting it, by the role of the greenlet that made
    it: ``front_end`` (the benchmark's own greenlet) or the worker (every other greenlet).
    Conveniences such as ``get`` go through ``range``, so they count as the call they make."""

    def __init__(self, kv: KV):
        self.kv = kv
        self.front_end = gevent.getcurrent()
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()

    def count(self, operation: str) -> None:
        role = FRONT_END if gevent.getcurrent() is self.front_end else WORKER
        self.calls[role, operation] += 1

    range = _counted("range")
    put = _counted("put")
    delete = _counted("delete")
    txn = _counted("txn")
    watch = _counted("watch")
    compact = _counted("compact")
    grant_lease = _counted("grant_lease")
    refresh_lease = _counted("refresh_lease")
    revoke_lease = _counted("revoke_lease")
    lease_time_to_live = _counted("lease_time_to_live")

    def close(self) -> None:
        self.kv.close()

    def round_trips(self, role: str | None = None) -> int:
        return sum(count for (who, operation), count in self.calls.items()
                   if operation != "watch" and role in (None, who))

    def describe(self) -> str:
        parts = []
        for role in (FRONT_END, WORKER):
            operations = ", ".join(f"{operation} {count}" for (who, operation), count
                                   in sorted(self.calls.items()) if who == role)
            parts.append(f"{role} {self.round_trips(role)} ({operations or 'none'})")
        return "; ".join(parts)


def measure(mode: str) -> list[Row]:
    rows = []
    with in_process_mr(mode, wrap_kv=CountingKV) as mr:
        kv: CountingKV = mr.engine.kv
        mr.run("fan_out", {"children": 10})  # warm-up: the handler code into the engine's cache
        for case, job, arguments, invocations in (
                ("single leaf", "trivial", {"x": 1}, 2),
                (f"{BRANCH_CHILDREN} children", "fan_out", {"children": BRANCH_CHILDREN},
                 2 * BRANCH_CHILDREN + 2)):
            kv.calls.clear()
            with cpu_used(mr.pids, this_process="engine") as cpu:
                mr.run(job, arguments)
            note = f"{kv.round_trips()} round trips for {invocations} invocations: {kv.describe()}"
            if "etcd" in cpu and kv.round_trips() >= 50:  # CPU time comes in 10 ms ticks
                note += (f"; etcd used {cpu['etcd'] * 1000 / kv.round_trips():.2f} ms of CPU "
                         f"per round trip")
            rows.append(Row(case, mode, "round trips per invocation",
                            kv.round_trips() / invocations,
                            target=Target(TARGET_PER_INVOCATION, at_most=True), note=note))
    return rows
