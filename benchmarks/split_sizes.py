"""The split size (MR_SPLIT_BYTES) against the throughput and the memory of P3's word count."""
from __future__ import annotations

import os

from benchmarks.common import Row
from benchmarks.corpus import MB, corpus
from benchmarks.word_count_mr import check_counts, run_word_count, running_word_count
from mr.datasets import plan_splits

TITLE = "Split sizes: MR_SPLIT_BYTES from 8 to 128 MiB"
DESCRIPTION = """\
P3's request (embedded) with the split size set through ``MR_SPLIT_BYTES`` of ``mr run``, one
``mr run`` per size, over one file of ten copies of the texts (95.6 MB: P3's bytes in one
file), then over ten such files (956 MB: P5's larger input). The note gives the number of map
invocations (the input dealt out to a multiple of the executor children, each reading at most
the split size; each writes 4 runs, so a reduce merges one run per invocation) and the peak
resident memory of each process, measured as in P5. The counts are checked against Counter's."""

SPLIT_MIB = (8, 16, 32, 64, 128)
SIZES = ((1, 10), (10, 10))  # (files, copies per file): 95.6 MB, then 956 MB
MIB = 1 << 20


def measure(modes: list[str]) -> list[Row]:
    if "embedded" not in modes:
        return []
    rows = []
    for files, copies in SIZES:
        texts = corpus(files, copies)
        for split_mib in SPLIT_MIB:
            split_bytes = split_mib * MIB
            with running_word_count("embedded", {"MR_SPLIT_BYTES": str(split_bytes)}) as mr:
                run = run_word_count(mr, texts)
            check_counts(f"mr over {texts} in splits of {split_mib} MiB", run.counts,
                         texts.expected_counts())
            splits = len(plan_splits(str(texts.directory), "text", split_bytes,
                                     os.cpu_count() or 1))  # mr run's executor children
            executors = [peak for name, peak in run.peaks.items() if " executor " in name]
            peaks = ", ".join(f"{name} {peak / MIB:.0f}" for name, peak in run.peaks.items())
            case = f"{texts}, {split_mib} MiB splits"
            rows += [Row(case, "embedded", "MB/s", texts.size / MB / run.seconds,
                         note=f"{splits} map invocation(s), {run.seconds:.1f} s; peak MiB: {peaks}"),
                     Row(case, "embedded", "largest executor peak (MiB)",
                         max(executors) / MIB)]
    return rows
