"""P2: invocations per second of one wide request, beside the queue's raw throughput."""
from __future__ import annotations

import time
import uuid

import gevent.event

from benchmarks.common import (WORKFLOW, BenchmarkError, HttpClient, Row, RunningMr, Target,
                               cpu_used, describe_cpu)
from mr.engine.dispatch import PUBLISH_BATCH_COUNT
from mr.engine.messages import MAP, Ancestor, InvocationMessage
from mr.queue.base import Queue
from mr.queue.memory import MemoryQueue
from mr.queue.nsq import NsqQueue

TITLE = "P2: throughput of one request with 10,000 and with 100,000 children"
DESCRIPTION = """\
One blocking request of the ``fan_out`` job: its root mapper maps to N children (10,000, then
100,000) of a trivial step (each mapper returns its one pair, whose reducer yields it back), and
the root's summing reducer adds their numbers up; the result is checked. Invocations per second
= (N child map invocations + their N reductions + the root's map and reduce) / the wall time
from submitting the request to its answer; messages per second counts the queue messages
(N children + the root's map and reduce). A warm-up request of 100 children runs first. With
completions counted in O(1) per child, the rate should not fall as N grows tenfold.
The baseline is the queue alone, in the same run: 10,000 messages the size of a child's
published in the engine's batches of 1,000 and consumed by a handler that does nothing, with
the workers' max-in-flight (embedded: the in-process queue; distributed: the cluster's nsqd)."""

CHILDREN = 10_000
#: The request sizes measured: the target applies to each.
CHILDREN_CASES = (CHILDREN, 100_000)
WARM_UP_CHILDREN = 100
TIME_LIMIT_S = 300.0
TARGET_INVOCATIONS_PER_S = {"embedded": 5000.0, "distributed": 2000.0}


def measure(mr: RunningMr, cases: tuple[int, ...] = CHILDREN_CASES,
            with_floor: bool = True) -> list[Row]:
    """A request of each number of children in ``cases``, after the warm-up; with the queue's
    own throughput beside the first unless ``with_floor`` is false."""
    floor = queue_messages_per_s(_queue(mr)) if with_floor else None
    rows = []
    with mr.client() as client:
        _run_fan_out(client, WARM_UP_CHILDREN)
        for children in cases:
            with cpu_used(mr.pids) as cpu:
                started = time.perf_counter()
                _run_fan_out(client, children)
                elapsed = time.perf_counter() - started
            invocations, messages = 2 * children + 2, children + 2
            note = (f"{children:,} children in {elapsed:.2f} s; "
                    + describe_cpu(cpu, children, "child"))
            case = f"{children:,} children"
            rows += [Row(case, mr.mode, "invocations per s", invocations / elapsed,
                         target=Target(TARGET_INVOCATIONS_PER_S[mr.mode], at_most=False),
                         note=note),
                     Row(case, mr.mode, "messages per s", messages / elapsed,
                         baseline=floor if children == CHILDREN else None)]
    return rows


def fan_out_result(children: int) -> list:
    """What the fan_out job must answer."""
    return [["sum", sum(range(children))]]


def _run_fan_out(client: HttpClient, children: int) -> None:
    pairs = client.post_job("fan_out", {"children": children})
    expected = fan_out_result(children)
    if pairs != expected:
        raise BenchmarkError(f"fan_out of {children} answered {pairs!r:.300}, not {expected!r}")


def _queue(mr: RunningMr) -> Queue:
    if mr.mode == "embedded":
        return MemoryQueue()
    return NsqQueue([mr.env["MR_NSQD_HOSTS"]])


def queue_messages_per_s(queue: Queue) -> float:
    """Publish CHILDREN messages as the engine publishes children, consume them with a handler
    that does nothing; messages per second from the first publish to the last delivery."""
    topic = f"benchmark-floor-{uuid.uuid4().hex[:12]}"
    body = _child_message_body()
    all_consumed = gevent.event.Event()
    consumed = 0

    def take(_message) -> None:
        nonlocal consumed
        consumed += 1
        if consumed == CHILDREN:
            all_consumed.set()

    try:
        queue.consume(topic, "floor", take, max_in_flight=32)
        started = time.perf_counter()
        for first in range(0, CHILDREN, PUBLISH_BATCH_COUNT):
            queue.multi_publish(topic, [body] * min(PUBLISH_BATCH_COUNT, CHILDREN - first))
        if not all_consumed.wait(TIME_LIMIT_S):
            raise BenchmarkError(f"the queue delivered {consumed} of {CHILDREN} messages in "
                                 f"{TIME_LIMIT_S:.0f} s")
        return CHILDREN / (time.perf_counter() - started)
    finally:
        queue.close()


def _child_message_body() -> bytes:
    """An encoded message like those of the fan_out job's children."""
    ancestor = Ancestor(uuid.uuid4().hex, "fan_out", CHILDREN)
    return InvocationMessage(WORKFLOW, uuid.uuid4().hex, uuid.uuid4().hex, MAP, "echo",
                             (ancestor,), pair=["sum", CHILDREN - 1]).encode()
