"""Scenario soak: many clients sending small blocking requests through nginx
(deploy/nginx/mr.conf) for a while. Every answer must be the exact result, and no process of the
cluster may keep the memory the load made it take: resident memory is read from /proc after a
warm-up and again at the end, for every process and every process it started."""
from __future__ import annotations

import collections
import dataclasses
import random
import statistics
import time
from pathlib import Path

import gevent

from tests.faults import rss
from tests.faults.client import CONNECTION_ERRORS, Client, Front, front_of, pairs_of
from tests.faults.harness import running_cluster
from tests.faults.load import EXAMPLES, SHAPES, Tracked
from tests.faults.plan import Plan
from tests.faults.report import Report, log_summary

NAME = "soak"
#: A process whose resident memory grew by more than this from the end of the warm-up to the
#: end of the soak is flagged for a look (not failed: etcd, for one, grows with its history
#: until it compacts it).
RSS_GROWTH_FLAG_MIB = 20
#: A client whose connection broke pauses this long before its next request.
RECONNECT_PAUSE_S = 0.1


@dataclasses.dataclass
class Traffic:
    latencies: list[float] = dataclasses.field(default_factory=list)
    errors: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    examples: list[str] = dataclasses.field(default_factory=list)

    def failed(self, kind: str, example: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(f"{kind}: {example}")


def run(plan: Plan, data_dir: Path, rng: random.Random) -> Report:
    report = Report(NAME)
    warmup, soak = Traffic(), Traffic()
    with running_cluster(data_dir, plan.workers, nginx=True) as cluster:
        _drive(front_of(cluster, nginx=True), plan.soak_clients, plan.soak_warmup_s, warmup, rng)
        before = rss.snapshot(cluster.processes)
        _drive(front_of(cluster, nginx=True), plan.soak_clients, plan.soak_s, soak, rng)
        after = rss.snapshot(cluster.processes)
    lines, flagged = rss.growth_lines(before, after, RSS_GROWTH_FLAG_MIB * 1024)
    latencies = sorted(soak.latencies)
    report.record(clients=plan.soak_clients, seconds=plan.soak_s,
                  requests=len(latencies), requests_per_s=len(latencies) / plan.soak_s,
                  errors=dict(warmup.errors + soak.errors),
                  p50_latency_ms=_percentile(latencies, 50) * 1000,
                  p99_latency_ms=_percentile(latencies, 99) * 1000,
                  **{f"grew_over_{RSS_GROWTH_FLAG_MIB}_mib": ", ".join(flagged) or "none"})
    report.note(f"resident memory after {plan.soak_warmup_s:g} s of warm-up -> after the soak:")
    report.evidence += lines
    report.evidence += warmup.examples + soak.examples
    report.expect("requests answered", len(latencies) > 0)
    errors = sum(warmup.errors.values()) + sum(soak.errors.values())
    report.expect("0 errors", errors == 0, f"{errors} errors")
    if not report.ok:
        report.evidence += log_summary(data_dir)
    return report


def _drive(front: Front, clients: int, seconds: float, traffic: Traffic,
           rng: random.Random) -> None:
    """``clients`` greenlets, each sending one blocking request after another for ``seconds``."""
    ends_at = time.monotonic() + seconds

    def one_client() -> None:
        client = Client(front)
        while time.monotonic() < ends_at:
            item = Tracked(SHAPES[0], rng.randrange(10 ** 9))
            began = time.monotonic()
            try:
                answer = client.submit(item.shape.job, item.arguments, blocking=True)
            except CONNECTION_ERRORS as error:
                traffic.failed(f"connection {type(error).__name__}", repr(error))
                gevent.sleep(RECONNECT_PAUSE_S)
                continue
            traffic.latencies.append(time.monotonic() - began)
            if answer.status != 200 or pairs_of(answer.body) != item.expected:
                traffic.failed(f"{answer.status} {answer.error.get('type')}",
                               f"{item.arguments}: {str(answer.body)[:300]}")
        client.close()

    gevent.joinall([gevent.spawn(one_client) for _ in range(clients)], raise_error=True)


def _percentile(ordered: list[float], percent: int) -> float:
    if len(ordered) < 2:
        return ordered[0] if ordered else 0.0
    return statistics.quantiles(ordered, n=100, method="inclusive")[percent - 1]
