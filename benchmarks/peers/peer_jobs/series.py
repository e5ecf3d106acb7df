"""P1 and P2 on a peer, timed as mr's benchmarks time mr (benchmarks/http_latency.py and
benchmarks/fan_out_throughput.py): the same counts, warm-ups and time limit, which mr's side
passes in. The client here is threads, where mr's is greenlets: each peer's own client library
is blocking."""
from __future__ import annotations

import concurrent.futures
import itertools
import time
from typing import Callable, Protocol

from peer_jobs import pairs


class Jobs(Protocol):
    """A peer running the benchmark jobs, its servers up."""
    NAME: str

    def trivial(self, arguments: list) -> list:
        """The result pairs of one map task of ``arguments`` and one reduce."""

    def fan_out(self, children: int) -> list:
        """The result pairs of ``children`` map tasks and one reduce over them all."""

    def versions(self) -> dict[str, str]:
        """What was measured: the peer's packages and servers, by name."""


def timed_calls(call: Callable[[], None], count: int, clients: int,
                time_limit_s: float) -> tuple[list[float], float]:
    """The latencies (s) of ``count`` calls shared out among ``clients`` threads that each call
    back to back, and the seconds from the first call to the last answer; the calls not started
    within ``time_limit_s`` are not made (fewer latencies come back)."""
    tickets = itertools.count()
    deadline = time.monotonic() + time_limit_s
    latencies: list[float] = []

    def client() -> None:
        while next(tickets) < count and time.monotonic() < deadline:
            started = time.perf_counter()
            call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for finished in [pool.submit(client) for _ in range(clients)]:
            finished.result()
    return latencies, time.perf_counter() - started


def measure(jobs: Jobs, workload: dict) -> dict:
    """P1 sequential and with concurrent clients, each after its warm-up; then P2 after its
    warm-up. Every answer is checked."""
    trivial_pairs = workload["trivial_pairs"]

    def trivial() -> None:
        pairs.check(jobs.trivial(trivial_pairs), trivial_pairs, "the trivial job")

    timings = {}
    for series, clients in (("sequential", 1), ("concurrent", workload["clients"])):
        timed_calls(trivial, workload["warm_up_requests"], clients,
                    workload["series_time_limit_s"])
        latencies, elapsed = timed_calls(trivial, workload["requests"], clients,
                                         workload["series_time_limit_s"])
        timings[series] = {"clients": clients, "latencies_s": latencies, "elapsed_s": elapsed}
    _fan_out(jobs, workload["warm_up_children"])
    started = time.perf_counter()
    _fan_out(jobs, workload["children"])
    timings["fan_out"] = {"children": workload["children"],
                          "elapsed_s": time.perf_counter() - started}
    return timings


def _fan_out(jobs: Jobs, children: int) -> None:
    pairs.check(jobs.fan_out(children), pairs.fan_out_result(children),
                f"the fan-out of {children}")
