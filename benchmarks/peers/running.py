"""mr distributed, Celery and Dask taking turns at P1 and P2, in rounds (compare.Round): Redis,
the Celery worker and mr's cluster are started here (in temporary directories, tied to this
process) for the whole comparison and stopped here by pid; each peer's turn runs in a process of
the peers' venv (``python -m peer_jobs``), which prints its timings as JSON (Dask's cluster
lives in that process)."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from benchmarks import fan_out_throughput, http_latency
from benchmarks.common import BenchmarkError, Row, number, running_mr
from benchmarks.peers.compare import RATIO_MODE, Comparison, PeerTimings, Round, Workload
from mr import devservers

#: The peers' venv, made by ``scripts/benchmark --peers``.
VENV = Path(__file__).resolve().parents[2] / ".venv-peers"
#: On the PYTHONPATH of the peers' processes, which import ``peer_jobs`` from it.
PEER_JOBS_PARENT = Path(__file__).resolve().parent
CELERY_CONCURRENCY = 2
#: Turns each of mr distributed, Celery and Dask takes.
ROUNDS = 3


def measure_beside(mr_rows: dict[str, list[Row]], workload: Workload | None = None,
                   rounds: int = ROUNDS) -> Comparison:
    """mr distributed and the peers measured now, in ``rounds`` rounds, beside the embedded
    figures of mr's own rows of this run."""
    workload = workload or Workload()
    python = VENV / "bin" / "python"
    if not python.exists():
        raise BenchmarkError(f"no venv of the peers in {VENV}: scripts/benchmark --peers makes it")
    measured = []
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="mr-benchmark-peers-")))
        redis_url = stack.enter_context(_running_redis(directory))
        celery_env = {"PEER_JOBS_REDIS_URL": redis_url}
        stack.enter_context(_running_celery_worker(python, directory, celery_env))
        mr = stack.enter_context(running_mr(RATIO_MODE))
        redis_version = " ".join(devservers.binary_version("redis-server").split()[:3])
        turns: dict[str, Callable[[], object]] = {
            "mr": lambda: {"P1": http_latency.measure(mr), "P2": fan_out_throughput.measure(mr)},
            "Celery": lambda: _with_version(
                _run_peer(python, "celery", workload, celery_env, directory),
                "Redis", redis_version),
            "Dask": lambda: _run_peer(python, "dask", workload, {}, directory)}
        names = list(turns)
        for index in range(rounds):
            order = names[index % len(names):] + names[:index % len(names)]
            results = {name: turns[name]() for name in order}
            measured.append(Round(results["mr"], [results["Celery"], results["Dask"]]))
            print(_progress(f"{index + 1} of {rounds}", order, measured[-1], workload),
                  flush=True)
    return Comparison(workload, mr_rows, measured)


def _with_version(timings: PeerTimings, name: str, version: str) -> PeerTimings:
    return dataclasses.replace(timings, versions={**timings.versions, name: version})


def _progress(which: str, order: list[str], measured: Round, workload: Workload) -> str:
    """One line per round, so that a long comparison shows how it goes."""
    key = (workload.concurrent, http_latency.THROUGHPUT)
    single = Comparison(workload, {}, [measured]).lines()
    line = next(line for line in single if (line.workload, line.measure) == key)
    figures = [f"mr {number(line.mr.get(RATIO_MODE))}",
               *(f"{name} {number(value)}" for name, value in line.peers.items())]
    return (f"peers round {which} ({', '.join(order)}): {key[0]} {key[1]}: "
            + ", ".join(figures))


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
