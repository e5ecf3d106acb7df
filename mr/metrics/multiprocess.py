"""The gunicorn front end's metrics directory (prometheus_client's multiprocess mode).

gunicorn's workers are separate processes and a scrape reaches one of them: each keeps its
values in files of a directory they share, and any of them serves the sum (``exposition``).
prometheus_client decides when first imported whether a process writes there, from
``PROMETHEUS_MULTIPROC_DIR``: so gunicorn's master names the directory before it forks a worker
and before anything imports prometheus_client, which this module therefore imports only when a
worker has exited. The directory is emptied at each start, so that counters start from zero
with the front end, as Prometheus expects of a restarted target; the files of a worker that
exits stay and go on counting in the sums, but for its gauges of live values.
"""
from __future__ import annotations

import glob
import os
import shutil
import tempfile

DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

_temporary: list[str] = []  # the directory prepare() made, for remove_temporary()


def prepare(directory: str) -> str:
    """Make ``directory`` (empty: a new temporary one) the metrics directory of the processes
    forked from now on, with no file left by an earlier start."""
    if directory:
        os.makedirs(directory, exist_ok=True)
        for stale in glob.glob(os.path.join(directory, "*.db")):
            os.remove(stale)
    else:
        directory = tempfile.mkdtemp(prefix="mr-metrics-")
        _temporary.append(directory)
    os.environ[DIRECTORY_VARIABLE] = directory
    return directory


def forget_process(pid: int) -> None:
    """A worker exited: its gauges of live values (invocations in flight) no longer count."""
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(pid)


def remove_temporary() -> None:
    while _temporary:
        shutil.rmtree(_temporary.pop(), ignore_errors=True)
