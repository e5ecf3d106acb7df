"""The metrics every mr process keeps, and the calls that move them.

Each call is cheap enough for the engine's hot path: a clock read and a counter increment or
histogram observation, with no I/O. A request is counted by the process that finishes it (the
one whose commit of its final state succeeds), so summed over the cluster every request counts
once, whether a worker, the sweeper or a front end finished it.
"""
from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Iterator

from prometheus_client import Counter, Gauge, Histogram

from mr.engine.messages import MAP, REDUCE

if TYPE_CHECKING:
    from mr.models import Request

#: From a one-invocation request on an idle embedded mr to the default deadline of an hour.
REQUEST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
                     600, 1800, 3600)
#: From a handler that returns at once to the default invocation timeout of five minutes.
INVOCATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                        30, 60, 120, 300)
#: From the in-memory KV's microseconds to the etcd timeout of five seconds.
KV_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1, 2.5, 5)

REQUESTS = Counter(
    "mr_requests", "Requests finished, by workflow, job and outcome (done, failed, cancelled).",
    ["workflow", "job", "outcome"])
REQUEST_SECONDS = Histogram(
    "mr_request_duration_seconds", "Time from a request's acceptance to its final state.",
    ["workflow", "job"], buckets=REQUEST_BUCKETS_S)
INVOCATION_SECONDS = Histogram(
    "mr_invocation_duration_seconds",
    "Time a worker spent on one delivery of an invocation message, from taking an invocation "
    "slot to committing (handlers, KV and data store included), by kind (map, reduce).",
    ["kind"], buckets=INVOCATION_BUCKETS_S)
IN_FLIGHT = Gauge(
    "mr_invocations_in_flight", "Invocations running now, by kind.", ["kind"],
    multiprocess_mode="livesum")
RETRIES = Counter(
    "mr_invocation_retries",
    "Invocation attempts that failed for a reason outside their handler and were requeued "
    "to be tried again, by kind.", ["kind"])
REDELIVERIES = Counter(
    "mr_invocation_redeliveries",
    "Invocation messages run that may repeat an earlier delivery (delivered before by the "
    "queue, or published again by the sweeper), which first look for a commit, by kind.",
    ["kind"])
EXECUTOR_BUSY_SECONDS = Counter(
    "mr_executor_busy_seconds",
    "Time executor children spent on invocations, summed over the children: divided by "
    "mr_executor_children, the pool's utilisation.")
KV_SECONDS = Histogram(
    "mr_kv_operation_duration_seconds", "Time of one call to the KV (etcd), by operation.",
    ["operation"], buckets=KV_BUCKETS_S)
KV_ERRORS = Counter("mr_kv_errors", "KV calls that failed, by operation.", ["operation"])

# Bound once: labels() looks its child up under a lock on every call.
_IN_FLIGHT = {kind: IN_FLIGHT.labels(kind) for kind in (MAP, REDUCE)}
_INVOCATION_SECONDS = {kind: INVOCATION_SECONDS.labels(kind) for kind in (MAP, REDUCE)}
_REDELIVERIES = {kind: REDELIVERIES.labels(kind) for kind in (MAP, REDUCE)}


def request_finished(request: Request) -> None:
    """``request`` as this process just committed it in its final state."""
    REQUESTS.labels(request.workflow, request.job_name, request.state).inc()
    REQUEST_SECONDS.labels(request.workflow, request.job_name).observe(
        max(request.finished_at - request.created_at, 0.0))


@contextlib.contextmanager
def invocation_running(kind: str, redelivered: bool) -> Iterator[None]:
    """Around one delivery of an invocation of ``kind``; ``redelivered``: it may repeat one."""
    if redelivered:
        _REDELIVERIES[kind].inc()
    in_flight = _IN_FLIGHT[kind]
    in_flight.inc()
    started = time.perf_counter()
    try:
        yield
    finally:
        _INVOCATION_SECONDS[kind].observe(time.perf_counter() - started)
        in_flight.dec()


def invocation_retried(kind: str) -> None:
    RETRIES.labels(kind).inc()


def executor_busy(seconds: float) -> None:
    """An executor child was just released after ``seconds`` on an invocation."""
    EXECUTOR_BUSY_SECONDS.inc(seconds)
