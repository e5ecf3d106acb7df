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


#: What one turn of a peer measures, by name: P1 sequential, P1 with concurrent clients, P2.
SERIES = ("sequential", "concurrent", "fan_out")


def measure(jobs: Jobs, workload: dict, series: str) -> dict:
    """One series after its warm-up, every answer checked: P1's latencies and wall time, with
    one client or ``workload["clients"]``; or P2's wall time."""
    if series == "fan_out":
        _fan_out(jobs, workload["warm_up_children"])
        started = time.perf_counter()
        _fan_out(jobs, workload["children"])
        return {"children": workload["children"], "elapsed_s": time.perf_counter() - started}
    if series not in SERIES:
        raise ValueError(f"no series {series!r}: one of {', '.join(SERIES)}")
    trivial_pairs = workload["trivial_pairs"]

    def trivial() -> None:
        pairs.check(jobs.trivial(trivial_pairs), trivial_pairs, "the trivial job")

    clients = 1 if series == "sequential" else workload["clients"]
    timed_calls(trivial, workload["warm_up_requests"], clients, workload["series_time_limit_s"])
    latencies, elapsed = timed_calls(trivial, workload["requests"], clients,
                                     workload["series_time_limit_s"])
    return {"clients": clients, "latencies_s": latencies, "elapsed_s": elapsed}


def _fan_out(jobs: Jobs, children: int) -> None:
    pairs.check(jobs.fan_out(children), pairs.fan_out_result(children),
                f"the fan-out of {children}")
