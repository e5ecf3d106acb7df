"""The benchmark jobs on Celery: a chord of map tasks whose callback is the reduce task, over
the Redis that mr's side started (broker and result backend), run by a worker that mr's side
starts with ``python -m celery --app peer_jobs.celery_jobs worker`` (this module's ``app``).
Every other setting is Celery's default."""
from __future__ import annotations

import os
import time
from importlib.metadata import version

from celery import Celery, chord

from peer_jobs import pairs

#: The Redis of this run (``redis://127.0.0.1:<port>/0``), set by mr's side.
REDIS_URL = os.environ["PEER_JOBS_REDIS_URL"]
WORKER_READY_TIMEOUT_S = 60.0

app = Celery("peer_jobs", broker=REDIS_URL, backend=REDIS_URL)


@app.task
def map_pairs(arguments: list) -> list:
    return pairs.echo(arguments)


@app.task
def reduce_pairs(outputs: list[list]) -> list:
    return pairs.add(outputs)


class CeleryJobs:
    NAME = "Celery"

    def __init__(self, wait_s: float):
        self._wait_s = wait_s

    def __enter__(self) -> "CeleryJobs":
        """Once the worker answers a ping: it starts in the background."""
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Celery worker answered in {WORKER_READY_TIMEOUT_S:.0f} s")
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def trivial(self, arguments: list) -> list:
        return chord([map_pairs.s(arguments)])(reduce_pairs.s()).get(timeout=self._wait_s)

    def fan_out(self, children: int) -> list:
        """``follow_parents=False``: otherwise every check of the callback's state also reads
        the state of each of the ``children`` header tasks from Redis (AsyncResult.get's
        look for a failed parent)."""
        header = [map_pairs.s(arguments) for arguments in pairs.fan_out_arguments(children)]
        return chord(header)(reduce_pairs.s()).get(timeout=self._wait_s, follow_parents=False)

    def versions(self) -> dict[str, str]:
        return {"Celery": f"celery {version('celery')} (kombu {version('kombu')}, "
                          f"redis-py {version('redis')})"}


Jobs = CeleryJobs
