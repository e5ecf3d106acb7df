"""Where an executor child's time goes in the word count of P3: one split mapped as a child maps
it (its records read, ``lines_map``, the step's combiner if it has one at each spill, the
partitioned runs written), then one partition of its runs reduced (the merge, ``sum_reduce``, the jsonl writer),
each run once as it is and once more under cProfile, in this process.

Usage: ``python -m benchmarks.profile_word_count [--split-mib 64] [--top 25]``. The split is the
first of one file of ten copies of the texts (that of P5 and of the split sizes); the child's
own code runs it (``mr.executor.child``'s task runner, given the task the engine would send),
with the wordcount step's 4 partitions and the default sort buffer.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import tempfile
import time
from typing import Any, Callable

from benchmarks.common import BenchmarkError
from benchmarks.corpus import corpus
from benchmarks.word_count_mr import WORDCOUNT
from mr.datasets import Split
from mr.executor.child import _TaskRunner
from mr.executor.memory import automatic_limit_mb
from mr.executor.protocol import ChildConfig, Task
from mr.handlers.load import read_definition
from mr.settings import Settings

EXECUTOR_CHILDREN = 2  # the pool of mr run on this machine's 2 cores: the children's limit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_word_count",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--split-mib", type=int, default=Settings().split_bytes >> 20)
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    arguments = parser.parse_args(argv)
    definition = read_definition(WORDCOUNT)
    step = next(step for step in definition.steps if step.name == "count_files")
    handlers = {handler.name: handler for handler in definition.handlers}

    def task(name: str, **plan: Any) -> Task:
        handler = handlers[name]
        return Task(workflow=definition.name, handler_name=name,
                    handler_version=handler.version, source_type=handler.source_type,
                    source_code=handler.source_code, handler_type=handler.handler_type,
                    inputs=[], **plan)

    path = corpus(1, 10).paths[0]
    split = Split(str(path), 0, arguments.split_mib << 20, "text")
    with tempfile.TemporaryDirectory(prefix="mr-benchmark-profile-") as directory:
        runner = _TaskRunner(ChildConfig(work_dir=directory,
                                         memory_limit_mb=automatic_limit_mb(EXECUTOR_CHILDREN)))

        def map_split(attempt: int) -> dict:
            return runner.run_task(task(
                step.map_handler_name, source={"splits": [split.to_message()]},
                sink={"spill": {"root": directory, "prefix": f"{directory}/runs-{attempt}",
                                "partitions": step.partitions,
                                "buffer_bytes": Settings().sort_buffer_mb << 20,
                                "sort_values": False},
                      "combiner": (task(step.combine_handler_name).to_message()
                                   if step.combine_handler_name else None)}))

        def reduce_partition(runs: list[str], attempt: int) -> dict:
            return runner.run_task(task(
                step.reduce_handler_name,
                source={"root": directory, "runs": runs, "sort_values": False},
                sink={"write": {"root": directory, "path": f"{directory}/part-{attempt}",
                                "format": "jsonl"}}))

        print(f"one split of {arguments.split_mib} MiB of {path}:")
        runs = _profiled("map", map_split, arguments.top)["runs"]
        print(f"runs per partition: {[len(paths) for paths in runs]}")
        _profiled(f"reduce of partition 0 ({len(runs[0])} runs)",
                  lambda attempt: reduce_partition(runs[0], attempt), arguments.top)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak_mib:.0f} MiB")
    return 0


def _profiled(name: str, call: Callable[[int], dict], top: int) -> dict:
    """Run ``call`` once timed, once under cProfile; what the first run wrote."""
    started, cpu_started = time.perf_counter(), time.process_time()
    reply = call(0)
    if reply["error"] is not None:
        raise BenchmarkError(f"the {name} failed: {reply['error']}")
    print(f"{name}: {time.perf_counter() - started:.2f} s "
          f"({time.process_time() - cpu_started:.2f} s of CPU)")
    profiler = cProfile.Profile()
    profiler.runcall(call, 1)
    print(f"\ncProfile of the {name}, by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)
    return reply["written"]


if __name__ == "__main__":
    raise SystemExit(main())
