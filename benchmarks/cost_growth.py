"""P5: the cost of P3's word count as its input grows tenfold, in time and in peak memory."""
from __future__ import annotations

from benchmarks.common import Row, Target
from benchmarks.corpus import Corpus, corpus
from benchmarks.word_count_mr import (WordCountRun, check_counts, run_word_count,
                                      running_word_count)

TITLE = "P5: cost growth from 100 MB to 1 GB"
DESCRIPTION = """\
P3's request (embedded, default settings) over 95.6 MB (one file of ten copies of the texts: 2
map invocations of half of it) and over 956 MB (ten such files: 16 map invocations of at most
64 MiB), each in an ``mr run`` started for it, so that every process's peak is its own. Wall
time: from the POST to its answer; linear is ten times the wall time at 95.6 MB. Peak memory:
the kernel's high-water mark of resident memory (``VmHWM`` in ``/proc/<pid>/status``) of
``mr run`` and of each of its executor children, read every 0.5 s and at the end of the request
(the high-water mark keeps the peak between readings; a child replaced during the run would
count with its last reading); the children are numbered by their peak, largest first, in each
run. The counts are checked against Counter's."""

SIZES = ((1, 10), (10, 10))  # (files, copies per file): 95.6 MB, then 956 MB
TARGET_WALL_OF_LINEAR = 1.1
TARGET_PEAK_GROWTH = 1.2
MIB = 1 << 20


def measure(modes: list[str]) -> list[Row]:
    if "embedded" not in modes:
        return []
    small, large = (corpus(files, copies) for files, copies in SIZES)
    small_run, large_run = _run(small), _run(large)
    growth = large.size / small.size
    linear = growth * small_run.seconds
    rows = [Row(str(small), "embedded", "wall (s)", small_run.seconds),
            Row(str(large), "embedded", "wall (s)", large_run.seconds, baseline=linear,
                note=f"baseline: {growth:.0f} × the wall time at {small.size / 1e6:.1f} MB"),
            Row(str(large), "embedded", "wall ÷ linear", large_run.seconds / linear,
                target=Target(TARGET_WALL_OF_LINEAR, at_most=True))]
    for process, small_peak in small_run.peaks.items():
        large_peak = large_run.peaks[process]
        rows.append(Row(process, "embedded", "peak RSS growth (×)", large_peak / small_peak,
                        target=Target(TARGET_PEAK_GROWTH, at_most=True),
                        note=f"{small_peak / MIB:.0f} MiB → {large_peak / MIB:.0f} MiB"))
    return rows


def _run(texts: Corpus) -> WordCountRun:
    with running_word_count("embedded", {}) as mr:
        run = run_word_count(mr, texts)
    check_counts(f"mr over {texts}", run.counts, texts.expected_counts())
    return run
