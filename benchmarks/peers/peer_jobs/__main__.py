"""``python -m peer_jobs celery|dask WORKLOAD_JSON``: the peer's jobs with its servers up, for
as long as mr's side keeps this process's standard input open, measuring one series at a time
(see :mod:`peer_jobs.series` for the workload's fields and the series' names).

It answers with lines that start with ANSWER and go on with JSON: first the peer's name and
versions, then, for each series name read from standard input (one per line), that series'
timings. Other lines of the standard output are the peer libraries' own."""
from __future__ import annotations

import importlib
import json
import sys

from peer_jobs import series

MODULES = {"celery": "peer_jobs.celery_jobs", "dask": "peer_jobs.dask_jobs"}
ANSWER = "peer_jobs answer: "


def main(argv: list[str]) -> int:
    peer, workload = argv[1], json.loads(argv[2])
    # Imported by name: the Celery module needs the Redis address, which only its run has.
    jobs_class = importlib.import_module(MODULES[peer]).Jobs
    with jobs_class(workload["wait_s"]) as jobs:
        _answer({"peer": jobs_class.NAME, "versions": jobs.versions()})
        for line in sys.stdin:
            if line.strip():
                _answer({"series": line.strip(),
                         **series.measure(jobs, workload, line.strip())})
    return 0


def _answer(report: dict) -> None:
    print(ANSWER + json.dumps(report), flush=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
