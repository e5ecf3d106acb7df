"""``python -m peer_jobs celery|dask WORKLOAD_JSON``: P1 and P2 on that peer (see
:mod:`peer_jobs.series` for the workload's fields), printed as one line of JSON: the peer's
name, its versions and the timings."""
from __future__ import annotations

import importlib
import json
import sys

from peer_jobs import series

MODULES = {"celery": "peer_jobs.celery_jobs", "dask": "peer_jobs.dask_jobs"}


def main(argv: list[str]) -> int:
    peer, workload = argv[1], json.loads(argv[2])
    # Imported by name: the Celery module needs the Redis address, which only its run has.
    jobs_class = importlib.import_module(MODULES[peer]).Jobs
    with jobs_class(workload["wait_s"]) as jobs:
        timings = series.measure(jobs, workload)
        versions = jobs.versions()
    print(json.dumps({"peer": jobs_class.NAME, "versions": versions, **timings}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
