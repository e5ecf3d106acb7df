"""P1 and P2 on Celery and Dask, in this run: Redis and the Celery worker are started here
(in a temporary directory, tied to this process) and stopped here by pid; each peer's
measurements run in a process of the peers' venv (``python -m peer_jobs``), which prints them
as JSON."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

from benchmarks.common import BenchmarkError, Row
from benchmarks.peers.compare import Comparison, PeerTimings, Workload
from mr import devservers

#: The peers' venv, made by ``scripts/benchmark --peers``.
VENV = Path(__file__).resolve().parents[2] / ".venv-peers"
#: On the PYTHONPATH of the peers' processes, which import ``peer_jobs`` from it.
PEER_JOBS_PARENT = Path(__file__).resolve().parent
CELERY_CONCURRENCY = 2


def measure_beside(mr_rows: dict[str, list[Row]],
                   workload: Workload | None = None) -> Comparison:
    """The peers measured now, beside mr's P1 and P2 rows of this run."""
    workload = workload or Workload()
    return Comparison(workload, mr_rows, measure_peers(workload))


def measure_peers(workload: Workload) -> list[PeerTimings]:
    python = VENV / "bin" / "python"
    if not python.exists():
        raise BenchmarkError(f"no venv of the peers in {VENV}: scripts/benchmark --peers makes it")
    with tempfile.TemporaryDirectory(prefix="mr-benchmark-peers-") as directory:
        with _running_redis(Path(directory)) as redis_url:
            env = {"PEER_JOBS_REDIS_URL": redis_url}
            with _running_celery_worker(python, Path(directory), env):
                celery = _run_peer(python, "celery", workload, env, Path(directory))
        dask = _run_peer(python, "dask", workload, {}, Path(directory))
    redis_version = " ".join(devservers.binary_version("redis-server").split()[:3])
    return [dataclasses.replace(celery, versions={**celery.versions, "Redis": redis_version}),
            dask]


@contextlib.contextmanager
def _running_redis(directory: Path) -> Iterator[str]:
    """Redis with its default settings but its address and its directory. It keeps its
    command line as started (``--set-proc-title no``), by which it is stopped."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchmarkError("redis-server is not installed: scripts/benchmark --peers "
                             "installs it")
    port = devservers.free_port()
    url = f"redis://{devservers.LOOPBACK}:{port}/0"
    server = devservers.ServerProcess(
        "redis", [binary, "--bind", devservers.LOOPBACK, "--port", str(port),
                  "--dir", str(directory), "--set-proc-title", "no"],
        directory, {"redis": url}, None, tie_to_parent=True).start()
    try:
        yield url
    finally:
        server.stop()


@contextlib.contextmanager
def _running_celery_worker(python: Path, directory: Path, env: dict[str, str]) -> Iterator[None]:
    worker = devservers.ServerProcess(
        "celery-worker", [str(python), "-m", "celery", "--app", "peer_jobs.celery_jobs", "worker",
                          "--pool", "prefork", "--concurrency", str(CELERY_CONCURRENCY),
                          "--loglevel", "WARNING"],
        directory, {}, None, tie_to_parent=True,
        env={**env, "PYTHONPATH": str(PEER_JOBS_PARENT)}).start()
    try:
        yield
    finally:
        worker.stop()


def _run_peer(python: Path, peer: str, workload: Workload, env: dict[str, str],
              directory: Path) -> PeerTimings:
    finished = subprocess.run(
        [str(python), "-m", "peer_jobs", peer, json.dumps(dataclasses.asdict(workload))],
        capture_output=True, text=True, check=False, cwd=directory,
        env={**os.environ, **env, "PYTHONPATH": str(PEER_JOBS_PARENT)})
    if finished.returncode != 0:
        raise BenchmarkError(f"the {peer} run exited with {finished.returncode}:\n"
                             f"{finished.stderr[-3000:]}")
    return PeerTimings.parse(finished.stdout)
