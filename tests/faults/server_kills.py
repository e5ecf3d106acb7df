"""Scenario server-kills: SIGKILL nsqd, then etcd, under load, each started again a few seconds
later on its port and data directory. A crashed nsqd loses the messages it had handed out; the
sweeper must publish that work again, and fail what passes its deadline. So every request must
end: done with its exact result, or failed with a clear error once past its deadline (the body's
"deadline_s"); none may stay running."""
from __future__ import annotations

import random
import time
from pathlib import Path

from tests.faults.client import Client, Front, front_of
from tests.faults.harness import running_cluster
from tests.faults.load import at_fractions, requests_of_mixed_shapes, run_load, sleep_until
from tests.faults.plan import Plan
from tests.faults.report import Report, log_summary

NAME = "server-kills"
#: The sweeper looks often, and re-drives work that made no progress for 10 s: well within
#: the requests' deadline, so that lost work is found and done before the deadline fails it.
SWEEPER_ENV = {"MR_SWEEP_INTERVAL_S": "2", "MR_REQUEST_STALL_S": "10"}
#: After the last request's deadline, how long the sweeper has to fail what is left.
PAST_DEADLINE_S = 15.0


def run(plan: Plan, data_dir: Path, rng: random.Random) -> Report:
    report = Report(NAME)
    tracked = requests_of_mixed_shapes(plan.requests, rng)
    restarted: list[str] = []
    with running_cluster(data_dir, plan.workers, SWEEPER_ENV) as cluster:
        deadline_s = _deadline_accepted(report, front_of(cluster), plan.deadline_s)

        def kill_servers(window_s: float) -> None:
            started = time.monotonic()
            for server, offset in zip(plan.server_kills,
                                      at_fractions(window_s, len(plan.server_kills))):
                sleep_until(started, offset)
                cluster.restart(server, down_s=plan.server_down_s)
                restarted.append(server)

        counts = run_load(report, front_of(cluster), tracked, rate_per_s=plan.rate_per_s,
                          clients=plan.clients, deadline_s=deadline_s,
                          wait_s=plan.deadline_s + PAST_DEADLINE_S, inject_faults=kill_servers)
    report.record(servers_killed_and_restarted=", ".join(restarted))
    report.expect(f"{', '.join(plan.server_kills)} killed and restarted",
                  restarted == list(plan.server_kills), f"done: {restarted}")
    report.expect(f"{plan.requests} requests accepted", counts["not accepted"] == 0,
                  f"{counts['not accepted']} not accepted")
    report.expect("every request ended", counts["unfinished"] == 0,
                  f"{counts['unfinished']} still running")
    report.expect("every done request exact", counts["wrong"] + counts["duplicated"] == 0,
                  f"{counts['wrong']} wrong, {counts['duplicated']} duplicated")
    report.expect("failed only past the deadline, with a clear error", counts["failed"] == 0,
                  f"{counts['failed']} failed otherwise")
    report.expect("none cancelled or removed", counts["cancelled"] + counts["vanished"] == 0)
    if not report.ok:
        report.evidence += log_summary(data_dir)
    return report


def _deadline_accepted(report: Report, front: Front, deadline_s: float) -> float | None:
    """``deadline_s`` if the API takes the body's "deadline_s"; None (and a failed expectation)
    if it refuses it, so that the load still runs and shows the rest."""
    client = Client(front)
    answer = client.submit("leaf", {"n": 0}, blocking=True, deadline_s=deadline_s)
    client.close()
    accepted = answer.status == 200
    report.expect(f'the API accepts "deadline_s": {deadline_s:g}', accepted,
                  "" if accepted else f"{answer.status} {answer.error.get('type')}: "
                                      f"{answer.error.get('message')}; the load runs without it")
    return deadline_s if accepted else None
