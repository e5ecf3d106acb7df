"""P1: the latency of the smallest request over HTTP, beside the floor of the same HTTP stack."""
from __future__ import annotations

import dataclasses
import time

from benchmarks.common import (BenchmarkError, HttpClient, Row, RunningMr, Target, cpu_used,
                               describe_cpu, percentile, timed_calls)

TITLE = "P1: latency of a trivial request over HTTP"
DESCRIPTION = """\
The ``trivial`` job (``benchmarks/jobs``: a mapper that returns its one pair, a reducer that
yields it) is posted 1,000 times by one client, then 1,000 times by 16 concurrent clients
(greenlets of the benchmark process sharing 16 keep-alive urllib3 connections), each after 50
requests of warm-up. Embedded: ``mr run`` in a process of its own; distributed: the gunicorn
front end of ``mr cluster`` with 2 ``mr worker`` processes. The baseline is ``GET /health`` of
the same server, measured the same way in the same run: the same WSGI server and Flask app, with
no engine behind the route. The p50 targets (5 ms embedded, 15 ms distributed) are held against
both series. With 16 clients the throughput is measured too: the requests answered per second,
from the first request of the series to its last answer (the warm-up is left out of the time,
and of the CPU in the notes); its baseline is ``GET /health``'s, measured the same way."""

REQUESTS = 1000
WARM_UP_REQUESTS = 50
CONCURRENT_CLIENTS = 16
#: Longest one series may take; a slower one stops early and its row says how far it got.
SERIES_TIME_LIMIT_S = 60.0
TARGET_P50_MS = {"embedded": 5.0, "distributed": 15.0}
TRIVIAL_ARGUMENTS = {"x": 1}
THROUGHPUT = "requests per s"


def measure(mr: RunningMr, client_counts: tuple[int, ...] = (1, CONCURRENT_CLIENTS)) -> list[Row]:
    """A series of requests by each number of concurrent clients (one: sequential)."""
    rows = []
    for clients in client_counts:
        series = "sequential" if clients == 1 else f"{clients} concurrent clients"
        with mr.client(connections=clients) as client:
            floor = _series(lambda: client.get("/health"), clients)
            job = _series(lambda: _post_trivial(client), clients, mr.pids)
        note = (f"{len(job.latencies_ms)} requests in {job.elapsed_s:.1f} s "
                f"({job.per_s:,.0f}/s); "
                + describe_cpu(job.cpu, len(job.latencies_ms), "request"))
        if len(job.latencies_ms) < REQUESTS:
            note = f"stopped after {SERIES_TIME_LIMIT_S:.0f} s: " + note
        for percent in (50, 99):
            rows.append(Row(series, mr.mode,
                            f"p{percent} latency (ms)", percentile(job.latencies_ms, percent),
                            baseline=percentile(floor.latencies_ms, percent),
                            target=(Target(TARGET_P50_MS[mr.mode], at_most=True)
                                    if percent == 50 else None),
                            note=note if percent == 50 else ""))
        if clients > 1:
            rows.append(Row(series, mr.mode, THROUGHPUT, job.per_s, baseline=floor.per_s))
    return rows


def _post_trivial(client: HttpClient) -> None:
    pairs = client.post_job("trivial", TRIVIAL_ARGUMENTS)
    if pairs != [list(pair) for pair in TRIVIAL_ARGUMENTS.items()]:
        raise BenchmarkError(f"the trivial job answered {pairs!r}")


@dataclasses.dataclass(frozen=True)
class _Series:
    latencies_ms: list[float]
    #: From the first call to the last answer.
    elapsed_s: float
    cpu: dict[str, float]

    @property
    def per_s(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s


def _series(call, clients: int, pids: dict[str, int] | None = None) -> _Series:
    """REQUESTS calls by ``clients`` greenlets, after WARM_UP_REQUESTS of them: the warm-up
    counts neither in the time nor in the CPU used by ``pids``."""
    timed_calls(call, WARM_UP_REQUESTS, clients, SERIES_TIME_LIMIT_S)
    with cpu_used(pids or {}) as cpu:
        started = time.perf_counter()
        latencies = timed_calls(call, REQUESTS, clients, SERIES_TIME_LIMIT_S)
        elapsed = time.perf_counter() - started
    return _Series([seconds * 1000 for seconds in latencies], elapsed, cpu)
