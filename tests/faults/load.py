"""Load that checks itself: non-blocking requests of three shapes submitted at a steady rate,
followed to their end, each judged against the result it must have.

Every shape's leaves count 1 and add up their number, over the numbers ``start, start + 1, ...``
with a ``start`` of the request's own, and every branch's reducer adds its children's counts and
sums. So the result tells a lost leaf (the request never ends, or its count is short) from a
duplicated effect (a child reduced into its parent twice: the count is over) from a mix-up
between requests (the sum is off).
"""
from __future__ import annotations

import collections
import dataclasses
import random
import time
from typing import Any, Callable

import gevent

from tests.faults.client import CONNECTION_ERRORS, Client, Front, pairs_of
from tests.faults.report import Report

#: How long a submission answered 503 (a server down) is tried again before it is given up.
REFUSED_RETRY_S = 60.0
RETRY_PAUSE_S = 0.5
POLLERS = 8
POLL_INTERVAL_S = 0.5
#: Examples of each kind of miss shown as evidence.
EXAMPLES = 10
#: Outcomes in the order they are printed; only "exact" (and, with a deadline, "failed past
#: deadline") is what a correct engine may produce.
OUTCOMES = ("exact", "failed past deadline", "duplicated", "wrong", "failed", "cancelled",
            "unfinished", "vanished", "not accepted")


@dataclasses.dataclass(frozen=True)
class Shape:
    name: str
    job: str
    leaves: int
    arguments: Callable[[int], dict]


SHAPES = (
    Shape("single leaf", "leaf", 1, lambda start: {"n": start}),
    Shape("20 children", "children", 20, lambda start: {"span": [start, start + 20]}),
    Shape("two levels (3 x 7)", "tree", 21, lambda start: {"tree": [start, 3, 7]}),
)


@dataclasses.dataclass
class Tracked:
    """One request of the load: what was sent, what it must give, what was seen of it."""
    shape: Shape
    start: int
    request_id: str = ""
    #: 503 answers to its submission before it was accepted.
    refusals: int = 0
    #: Why it was never accepted.
    submit_error: str = ""
    #: The last status document read.
    document: dict[str, Any] | None = None
    vanished: bool = False

    @property
    def arguments(self) -> dict:
        return self.shape.arguments(self.start)

    @property
    def expected(self) -> dict:
        return {"count": self.shape.leaves,
                "sum": sum(range(self.start, self.start + self.shape.leaves))}

    @property
    def state(self) -> str:
        return self.document["state"] if self.document else "unknown"

    @property
    def ended(self) -> bool:
        return self.vanished or self.state in ("done", "failed", "cancelled")

    def outcome(self, deadline_s: float | None) -> str:
        if not self.request_id:
            return "not accepted"
        if self.vanished:
            return "vanished"
        if self.state == "done":
            result = pairs_of(self.document)
            if result == self.expected:
                return "exact"
            return "duplicated" if result.get("count", 0) > self.shape.leaves else "wrong"
        if self.state == "failed":
            return "failed past deadline" if self._failed_clearly_past(deadline_s) else "failed"
        return self.state if self.state == "cancelled" else "unfinished"

    def _failed_clearly_past(self, deadline_s: float | None) -> bool:
        error = self.document.get("error") or {}
        return (deadline_s is not None and bool(error.get("type")) and bool(error.get("message"))
                and self.document["finished_at"] >= self.document["created_at"] + deadline_s)

    def describe(self) -> str:
        line = f"{self.request_id or '(none)'} {self.shape.name} {self.arguments}: {self.state}"
        if self.submit_error:
            return f"{line}; never accepted: {self.submit_error}"
        if self.state == "done":
            return f"{line}, expected {self.expected}, got {pairs_of(self.document)}"
        error = (self.document or {}).get("error")
        if error:
            line += (f", {error.get('kind')} {error.get('type')}: {error.get('message')} "
                     f"(handler {error.get('handler')}, invocation "
                     f"{error.get('failed_invocation_id')})")
        if self.document:
            line += f", created {self.document['created_at']:.2f}"
            if self.document.get("finished_at"):
                line += f", finished {self.document['finished_at']:.2f}"
        return line


def requests_of_mixed_shapes(count: int, rng: random.Random) -> list[Tracked]:
    return [Tracked(SHAPES[index % len(SHAPES)], rng.randrange(10 ** 9)) for index in range(count)]


def submit_steadily(front: Front, tracked: list[Tracked], rate_per_s: float, clients: int,
                    deadline_s: float | None) -> None:
    """Submit request i at ``i / rate_per_s`` seconds from now, from ``clients`` greenlets."""
    started = time.monotonic()
    indices = iter(range(len(tracked)))

    def submit_from_one_client() -> None:
        client = Client(front)
        for index in indices:  # shared: each index goes to one greenlet
            gevent.sleep(max(0.0, started + index / rate_per_s - time.monotonic()))
            _submit(client, tracked[index], deadline_s)
        client.close()

    gevent.joinall([gevent.spawn(submit_from_one_client) for _ in range(clients)],
                   raise_error=True)


def _submit(client: Client, item: Tracked, deadline_s: float | None) -> None:
    """Submit until accepted; a 503 (a server down) is tried again for a while, as a client
    would; anything else is recorded as the reason it was not accepted."""
    give_up_at = time.monotonic() + REFUSED_RETRY_S
    while True:
        try:
            answer = client.submit(item.shape.job, item.arguments, blocking=False,
                                   deadline_s=deadline_s)
        except CONNECTION_ERRORS as error:  # maybe accepted, maybe not: never sent twice
            item.submit_error = f"connection failed: {error!r}"
            return
        if answer.status == 202:
            item.request_id = answer.body["request_id"]
            return
        if answer.status != 503 or time.monotonic() > give_up_at:
            item.submit_error = (f"{answer.status} {answer.error.get('type')}: "
                                 f"{answer.error.get('message')}")
            return
        item.refusals += 1
        gevent.sleep(RETRY_PAUSE_S)


def follow_until_ended(front: Front, tracked: list[Tracked], until: float) -> float | None:
    """Poll every accepted request until each has ended or ``until`` (monotonic) passes; a 503
    or a broken connection is polled again. Returns when the last one ended, or None."""
    pending = [item for item in tracked if item.request_id]
    clients = [Client(front) for _ in range(POLLERS)]
    while pending and time.monotonic() < until:
        batch = list(pending)

        def poll(client: Client) -> None:
            while batch:
                item = batch.pop()
                try:
                    answer = client.status(item.request_id)
                except CONNECTION_ERRORS:
                    continue
                if answer.status == 200:
                    item.document = answer.body
                elif answer.status == 404:
                    item.vanished = True

        gevent.joinall([gevent.spawn(poll, client) for client in clients], raise_error=True)
        pending = [item for item in pending if not item.ended]
        if pending:
            gevent.sleep(POLL_INTERVAL_S)
    for client in clients:
        client.close()
    return None if pending else time.monotonic()


def tally(tracked: list[Tracked], deadline_s: float | None) -> collections.Counter:
    counts = collections.Counter({outcome: 0 for outcome in OUTCOMES})
    counts.update(item.outcome(deadline_s) for item in tracked)
    return counts


def record_outcomes(report: Report, tracked: list[Tracked], deadline_s: float | None,
                    ended_at: float | None, last_submitted_at: float) -> collections.Counter:
    """Figures of the load's outcomes; examples of every miss as evidence."""
    counts = tally(tracked, deadline_s)
    report.record(outcomes=dict(counts),
                  answered_503_at_submission=sum(item.refusals for item in tracked),
                  all_ended_s_after_last_submission=(
                      "never (within the wait)" if ended_at is None
                      else round(ended_at - last_submitted_at, 1)))
    by_outcome = collections.defaultdict(list)
    for item in tracked:
        by_outcome[item.outcome(deadline_s)].append(item)
    failures = collections.Counter(
        (item.document["error"].get("kind"), item.document["error"].get("type"))
        for item in by_outcome["failed past deadline"])
    if failures:
        report.record(failed_past_deadline_errors={
            f"{kind} {error_type}": count for (kind, error_type), count in failures.items()})
    for outcome in OUTCOMES[2:]:
        for item in by_outcome[outcome][:EXAMPLES]:
            report.note(f"{outcome}: {item.describe()}")
    return counts


def run_load(report: Report, front: Front, tracked: list[Tracked], *, rate_per_s: float,
             clients: int, deadline_s: float | None, wait_s: float,
             inject_faults: Callable[[float], None]) -> collections.Counter:
    """Submit ``tracked`` steadily while ``inject_faults(window_s)`` runs beside the
    submission; then follow every request for up to ``wait_s`` and record the outcomes."""
    injector = gevent.spawn(inject_faults, len(tracked) / rate_per_s)
    started = time.monotonic()
    submit_steadily(front, tracked, rate_per_s, clients, deadline_s)
    last_submitted_at = time.monotonic()
    injector.get()
    report.record(accepted=sum(1 for item in tracked if item.request_id),
                  submitted_in_s=round(last_submitted_at - started, 1))
    ended_at = follow_until_ended(front, tracked, time.monotonic() + wait_s)
    return record_outcomes(report, tracked, deadline_s, ended_at, last_submitted_at)


def at_fractions(window_s: float, count: int) -> list[float]:
    """``count`` moments spread evenly over a window, none at its edges (seconds from now)."""
    return [window_s * (number + 0.5) / count for number in range(count)]


def sleep_until(started: float, offset_s: float) -> None:
    gevent.sleep(max(0.0, started + offset_s - time.monotonic()))
