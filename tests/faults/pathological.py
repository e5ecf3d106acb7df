"""Scenario pathological: handlers that raise, spin forever, allocate without bound, or print
10 MiB. Each must be answered with a clear error (a JSON 422 naming the handler and the kind)
within about a second of the limit it hits, while a normal request sent beside it on the same
cluster completes; printing 10 MiB may instead succeed (its output is cut to the capture
limit), and the scenario says which happened; printed and then failing, its answer must carry
the output cut, with a note that says so."""
from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path
from typing import Callable

import gevent

from tests.faults.client import Answer, Client, Front, front_of, pairs_of
from tests.faults.harness import running_cluster
from tests.faults.load import SHAPES, Tracked
from tests.faults.plan import Plan
from tests.faults.report import Report, log_summary

NAME = "pathological"
INVOCATION_TIMEOUT_S = 2.0
EXECUTOR_MEMORY_MB = 300
LIMITS_ENV = {"MR_INVOCATION_TIMEOUT_S": str(INVOCATION_TIMEOUT_S),
              "MR_EXECUTOR_MEMORY_MB": str(EXECUTOR_MEMORY_MB)}
#: How long after its limit a pathological request may take to be answered.
ANSWER_WITHIN_S = 1.0
PRINTED_MIB = 10


@dataclasses.dataclass(frozen=True)
class Case:
    job: str
    arguments: dict
    handler: str
    #: When, after submission, the handler hits its limit at the latest.
    limit_s: float
    #: Given the answer and the handler: whether it is the one wanted, and what it was, in a
    #: few words.
    judge: Callable[[Answer, str], tuple[bool, str]]


def _failure(answer: Answer) -> str:
    error = answer.error
    return (f"{answer.status} kind {error.get('kind')}, {error.get('type')}: "
            f"{str(error.get('message'))[:160]}")


def _clear_error(answer: Answer, handler: str, is_wanted: Callable[[dict], bool]) -> bool:
    error = answer.error
    return (answer.status == 422 and error.get("handler") == handler and bool(error.get("kind"))
            and bool(error.get("message")) and bool(error.get("failed_invocation_id"))
            and is_wanted(error))


def _raised(answer: Answer, handler: str) -> tuple[bool, str]:
    return (_clear_error(answer, handler, lambda error: error["kind"] == "handler"
                         and error["type"] == "RuntimeError"), _failure(answer))


def _timed_out(answer: Answer, handler: str) -> tuple[bool, str]:
    return _clear_error(answer, handler, lambda error: error["kind"] == "timeout"), _failure(answer)


def _out_of_memory(answer: Answer, handler: str) -> tuple[bool, str]:
    if answer.status == 200:
        return False, f"200: {pairs_of(answer.body)}: no memory limit held it"
    return _clear_error(answer, handler, lambda error: "memory" in (
        f"{error['kind']} {error['type']} {error['message']}".lower())), _failure(answer)


def _printed(answer: Answer, handler: str) -> tuple[bool, str]:
    if answer.status == 200:
        result = pairs_of(answer.body)
        return (result == {"printed_bytes": PRINTED_MIB << 20},
                f"succeeded: 200 {result} (a successful answer carries no output)")
    return _clear_error(answer, handler, lambda error: True), f"failed clearly: {_failure(answer)}"


def _printed_then_raised(answer: Answer, handler: str) -> tuple[bool, str]:
    stdout = answer.error.get("stdout") or ""
    cut = len(stdout.encode()) < PRINTED_MIB << 20 and "truncated" in stdout[-200:]
    return (_clear_error(answer, handler, lambda error: error["type"] == "RuntimeError") and cut,
            f"{_failure(answer)}; stdout in the answer: {len(stdout.encode())} bytes, "
            f"ending {stdout[-90:].strip()!r}")


CASES = {
    "raise": Case("explode", {"a": 1, "b": 2}, "explode", 0.0, _raised),
    "spin": Case("spin", {}, "spin", INVOCATION_TIMEOUT_S, _timed_out),
    # Allocating 300 MiB of written pages takes a fraction of a second.
    "hog": Case("hog", {}, "hog", 0.5, _out_of_memory),
    "print": Case("shout", {"megabytes": PRINTED_MIB, "fail": False}, "shout", 0.5, _printed),
    "print-then-raise": Case("shout", {"megabytes": PRINTED_MIB, "fail": True}, "shout", 0.5,
                             _printed_then_raised),
}


def run(plan: Plan, data_dir: Path, rng: random.Random) -> Report:
    report = Report(NAME)
    report.record(limits=f"MR_INVOCATION_TIMEOUT_S={INVOCATION_TIMEOUT_S:g}, "
                         f"MR_EXECUTOR_MEMORY_MB={EXECUTOR_MEMORY_MB}")
    with running_cluster(data_dir, plan.workers, LIMITS_ENV) as cluster:
        for name in plan.pathological:
            _run_case(report, front_of(cluster), name, CASES[name], rng.randrange(10 ** 9))
    if not report.ok:
        report.evidence += log_summary(data_dir)
    return report


def _run_case(report: Report, front: Front, name: str, case: Case, start: int) -> None:
    """The pathological request and a normal one, sent together."""
    beside = Tracked(SHAPES[1], start)

    def timed(job: str, arguments: dict) -> tuple[Answer, float]:
        client = Client(front)
        began = time.monotonic()
        answer = client.submit(job, arguments, blocking=True)
        client.close()
        return answer, time.monotonic() - began

    pathological = gevent.spawn(timed, case.job, case.arguments)
    normal = gevent.spawn(timed, beside.shape.job, beside.arguments)
    (answer, elapsed), (normal_answer, normal_elapsed) = pathological.get(), normal.get()
    wanted, description = case.judge(answer, case.handler)
    report.record(**{name: f"{description}; answered in {elapsed:.2f} s"})
    report.expect(f"{name}: the answer wanted", wanted)
    within_s = case.limit_s + ANSWER_WITHIN_S
    report.expect(f"{name}: answered within {within_s:g} s", elapsed <= within_s,
                  f"{elapsed:.2f} s")
    exact = normal_answer.status == 200 and pairs_of(normal_answer.body) == beside.expected
    report.expect(f"{name}: the normal request beside it is exact", exact,
                  f"{normal_answer.status} in {normal_elapsed:.2f} s"
                  + ("" if exact else f": {normal_answer.body}"))
