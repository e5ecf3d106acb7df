"""Scenario worker-kills: SIGKILL a random worker process, and start it again, over and over
while requests stream in. At-least-once delivery with exactly-once effect means every request
still ends with its exact result: none lost, none counted twice."""
from __future__ import annotations

import random
import time
from pathlib import Path

from tests.faults.client import front_of
from tests.faults.harness import running_cluster, worker_names
from tests.faults.load import at_fractions, requests_of_mixed_shapes, run_load, sleep_until
from tests.faults.plan import Plan
from tests.faults.report import Report, log_summary

NAME = "worker-kills"


def run(plan: Plan, data_dir: Path, rng: random.Random) -> Report:
    report = Report(NAME)
    tracked = requests_of_mixed_shapes(plan.requests, rng)
    killed: list[str] = []
    with running_cluster(data_dir, plan.workers) as cluster:

        def kill_workers(window_s: float) -> None:
            started = time.monotonic()
            for offset in at_fractions(window_s, plan.worker_kills):
                sleep_until(started, offset)
                victim = rng.choice(worker_names(cluster))
                cluster.restart(victim)
                killed.append(victim)

        counts = run_load(report, front_of(cluster), tracked, rate_per_s=plan.rate_per_s,
                          clients=plan.clients, deadline_s=None, wait_s=plan.wait_s,
                          inject_faults=kill_workers)
    report.record(worker_kills={name: killed.count(name) for name in sorted(set(killed))})
    report.expect(f"{plan.worker_kills} worker kills, each restarted",
                  len(killed) == plan.worker_kills, f"{len(killed)} done")
    report.expect(f"{plan.requests} requests accepted", counts["not accepted"] == 0,
                  f"{counts['not accepted']} not accepted")
    report.expect(f"{plan.requests} exact results", counts["exact"] == plan.requests,
                  f"{counts['exact']} exact")
    report.expect("0 duplicated effects", counts["duplicated"] == 0,
                  f"{counts['duplicated']} duplicated")
    report.expect("0 unfinished", counts["unfinished"] == 0, f"{counts['unfinished']} unfinished")
    if not report.ok:
        report.evidence += log_summary(data_dir)
    return report
