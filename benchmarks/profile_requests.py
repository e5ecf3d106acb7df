"""Where the time of a benchmark's requests goes: the requests run by an engine in this process
at several sizes, with the CPU each process used per unit of work; then the largest size once
more under cProfile.

Usage: ``python -m benchmarks.profile_requests fan_out|trivial [--mode embedded|distributed]
[--sizes N ...] [--top 25]``. ``fan_out``: one request of N children (P2's); ``trivial``: N
trivial requests one after the other (P1's, without HTTP). Embedded uses the memory backends,
distributed a private etcd and nsqd (see ``in_process_mr``). The profile covers this process
only (front end, engine and worker greenlets): handlers run in the executor children, whose
CPU the size lines report.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from typing import Callable

from benchmarks.common import (MODES, BenchmarkError, InProcessMr, cpu_used, describe_cpu,
                               in_process_mr)
from benchmarks.fan_out_throughput import CHILDREN, fan_out_result
from benchmarks.http_latency import TRIVIAL_ARGUMENTS


def fan_out(mr: InProcessMr, children: int) -> int:
    if mr.run("fan_out", {"children": children}) != fan_out_result(children):
        raise BenchmarkError(f"fan_out of {children} children answered wrongly")
    return 2 * children + 2


def trivial(mr: InProcessMr, requests: int) -> int:
    for _ in range(requests):
        mr.run("trivial", TRIVIAL_ARGUMENTS)
    return 2 * requests


#: What each workload runs for a size, returning how many invocations that made; its unit.
WORKLOADS: dict[str, tuple[Callable[[InProcessMr, int], int], str, list[int]]] = {
    "fan_out": (fan_out, "child", [CHILDREN // 10, CHILDREN]),
    "trivial": (trivial, "request", [100, 1000]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_requests",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=list(WORKLOADS))
    parser.add_argument("--mode", choices=MODES, default="embedded")
    parser.add_argument("--sizes", type=int, nargs="+",
                        help="children (fan_out) or requests (trivial)")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    arguments = parser.parse_args(argv)
    workload, unit, default_sizes = WORKLOADS[arguments.workload]
    sizes = arguments.sizes or default_sizes
    with in_process_mr(arguments.mode) as mr:
        workload(mr, 10)  # warm-up: the handler code into the engine's cache
        for size in sizes:
            with cpu_used(mr.pids, this_process="engine") as cpu:
                started = time.perf_counter()
                invocations = workload(mr, size)
                elapsed = time.perf_counter() - started
            print(f"{size:>7,} × {unit}: {elapsed:6.2f} s, {invocations / elapsed:6,.0f} "
                  f"invocations/s; " + describe_cpu(cpu, size, unit))
        profiler = cProfile.Profile()
        profiler.runcall(workload, mr, max(sizes))
    print(f"\ncProfile of this process over {max(sizes):,} × {unit}, by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(arguments.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
