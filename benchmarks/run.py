"""Runs the benchmarks in both modes, prints their table and, with ``--write``, records it in
docs/benchmarks.rst.

Usage: ``python -m benchmarks [--write] [--only P1 P2 P6] [--modes embedded distributed]``.

``--write`` rewrites the generated part of docs/benchmarks.rst (everything above its end
marker, END_OF_GENERATED) and keeps the hand-written analysis below it; it needs a full run.
"""
from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

from benchmarks import fan_out_throughput, http_latency, kv_round_trips
from benchmarks.common import MODES, Row, machine, number, running_mr

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.rst"
END_OF_GENERATED = ".. end of the part written by python -m benchmarks --write"
BENCHMARKS = {"P1": http_latency, "P2": fan_out_throughput, "P6": kv_round_trips}
#: Benchmarks measured over HTTP against a running mr; the others build their own engine.
OVER_HTTP = ("P1", "P2")


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


def report(rows: dict[str, list[Row]]) -> str:
    sections = []
    for name, measured in rows.items():
        module = BENCHMARKS[name]
        sections.append(f"{module.TITLE}\n{'-' * len(module.TITLE)}\n\n{module.DESCRIPTION}\n\n"
                        f"{table(measured)}\n")
    return "\n".join(sections)


def document(rows: dict[str, list[Row]], elapsed_s: float, load_at_start: float) -> str:
    about = "\n".join(f"- {name}: {value}" for name, value in machine().items())
    kept = ""
    if DOCUMENT.exists() and END_OF_GENERATED in DOCUMENT.read_text():
        kept = DOCUMENT.read_text().split(END_OF_GENERATED, 1)[1]
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

Recorded on {datetime.date.today().isoformat()} (the whole run took {elapsed_s:.0f} s), on:

{about}
- load average (1 minute) when the run started: {load_at_start:.2f}; anything else running on
  the machine shows in the numbers

The baseline of each measure is taken in the same run, beside it. The client, the servers and
the benchmark process all share the machine's cores; the notes say how much CPU each process
used.

{report(rows)}
{END_OF_GENERATED}{kept}"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true",
                        help=f"record the results in {DOCUMENT.relative_to(DOCUMENT.parents[1])}")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS),
                        help="run only these benchmarks")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="run only in these modes")
    arguments = parser.parse_args(argv)
    if arguments.write and (arguments.only != list(BENCHMARKS) or arguments.modes != list(MODES)):
        parser.error("--write records a full run: leave out --only and --modes")
    started, load_at_start = time.monotonic(), os.getloadavg()[0]
    rows = run(arguments.only, arguments.modes)
    elapsed = time.monotonic() - started
    print(report(rows))
    print(f"(all in {elapsed:.0f} s)")
    if arguments.write:
        DOCUMENT.write_text(document(rows, elapsed, load_at_start))
        print(f"recorded in {DOCUMENT}")
    return 0
