"""The ``wordcount_files`` job of handlers/wordcount, run by an mr started for it: the input by
reference, the file writer's parts read back, the wall time from the POST to its answer, and the
CPU and peak memory of every process of that mr."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Iterator

import fsspec
import gevent

from benchmarks.common import EXECUTOR_COMMAND, BenchmarkError, RunningMr, cpu_used, running_mr
from benchmarks.corpus import Corpus

WORDCOUNT = Path(__file__).resolve().parent.parent / "handlers" / "wordcount"
JOB_PATH = "/job/wordcount/wordcount_files"
#: How often the peak memory of the mr's processes is read while a request runs.
PEAK_SAMPLE_S = 0.5


@dataclasses.dataclass
class WordCountRun:
    seconds: float
    counts: dict[str, int]
    #: CPU seconds by process, as benchmarks.common.cpu_seconds names them.
    cpu: dict[str, float]
    #: Peak resident memory (VmHWM, bytes) of each process of the mr.
    peaks: dict[str, int]


def running_word_count(mode: str, env: dict[str, str]):
    """An mr serving handlers/wordcount, with ``env`` added to its settings (embedded: ``mr
    run``; distributed: ``mr cluster``'s processes with 2 workers)."""
    return running_mr(mode, WORDCOUNT, {"MR_WORKFLOW_NAMES": "wordcount", **env})


def run_word_count(mr: RunningMr, corpus: Corpus) -> WordCountRun:
    """One blocking request over ``corpus``, its counts written as jsonl and read back."""
    with tempfile.TemporaryDirectory(prefix="mr-benchmark-counts-") as directory, \
            mr.client() as client:
        with peak_memory(mr.pids) as peaks, cpu_used(mr.pids) as cpu:
            started = time.perf_counter()
            answer = client.post(JOB_PATH, {
                "input": {"url": str(corpus.directory), "format": "text"},
                "output": {"url": f"{directory}/counts", "format": "jsonl"}})
            seconds = time.perf_counter() - started
        counts = read_counts(answer["result"]["output"]["parts"])
    return WordCountRun(seconds, counts, cpu, peaks)


def read_counts(parts: list[str]) -> dict[str, int]:
    """The counts of the output's parts; a word in two parts is an error."""
    counts: dict[str, int] = {}
    for url in parts:
        fs, path = fsspec.core.url_to_fs(url)
        with fs.open(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                word, count = json.loads(line)
                if word in counts:
                    raise BenchmarkError(f"{word!r} is in two parts of the output")
                counts[word] = count
    return counts


def check_counts(name: str, counts: dict[str, int], expected: dict[str, int]) -> None:
    """Fail loudly, naming a few of the differences, unless ``counts`` is ``expected``."""
    counts, expected = dict(counts), dict(expected)
    if counts == expected:
        return
    differing = sorted(word for word in counts.keys() | expected.keys()
                       if counts.get(word) != expected.get(word))
    examples = ", ".join(f"{word!r}: {counts.get(word)} not {expected.get(word)}"
                         for word in differing[:5])
    raise BenchmarkError(f"{name} counted {len(counts):,} distinct words, "
                         f"{len(expected):,} expected; {len(differing):,} differ: {examples}")


# Peak memory


@contextlib.contextmanager
def peak_memory(pids: dict[str, int]) -> Iterator[dict[str, int]]:
    """Fills the yielded dict, on exit, with the peak resident memory (bytes) of each named
    process and of each of its descendants: the kernel's high-water mark (VmHWM), read every
    PEAK_SAMPLE_S and at the end. A process that ends within the block counts with its last
    reading. Executor children are named "<name> executor <n>", the fork server they are forked
    from "<name> fork server <n>", other descendants "<name> child <n>" (a gunicorn master's
    worker)."""
    peaks: dict[int, int] = {}
    names: dict[int, str] = {}

    def read() -> None:
        for name, pid in pids.items():
            for descendant, depth in _tree(pid):
                high_water = _vm_hwm(descendant)
                if high_water is None:
                    continue
                if descendant not in names:
                    names[descendant] = name if depth == 0 else f"{name} {_kind(descendant)}"
                peaks[descendant] = max(peaks.get(descendant, 0), high_water)

    def sample() -> None:
        while True:
            read()
            gevent.sleep(PEAK_SAMPLE_S)

    read()
    sampler = gevent.spawn(sample)
    found: dict[str, int] = {}
    try:
        yield found
    finally:
        sampler.kill()
    read()
    for pid in sorted(peaks, key=lambda pid: (names[pid], -peaks[pid])):
        found[_numbered(names[pid], found)] = peaks[pid]


def _numbered(name: str, taken: dict[str, int]) -> str:
    if not name.endswith((" executor", " fork server", " child")):
        return name
    number = 1
    while f"{name} {number}" in taken:
        number += 1
    return f"{name} {number}"


def _tree(pid: int, depth: int = 0) -> Iterator[tuple[int, int]]:
    """``pid`` and its descendants, each with its depth (children of every thread)."""
    yield pid, depth
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            listed = children.read_text().split()
        except OSError:
            continue  # the thread or the process ended
        for child in listed:
            yield from _tree(int(child), depth + 1)


def _vm_hwm(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def _kind(pid: int) -> str:
    """"executor" for an executor child (forked from the fork server, it has the same command
    line as its parent), "fork server", or "child" for anything else."""
    if not _runs_executor_code(pid):
        return "child"
    return "executor" if _runs_executor_code(_parent(pid)) else "fork server"


def _runs_executor_code(pid: int) -> bool:
    try:
        return EXECUTOR_COMMAND in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0
