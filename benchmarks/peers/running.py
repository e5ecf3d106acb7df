"""mr distributed, Celery and Dask taking turns, series by series, in rounds (compare.Round).

Everything is started here before the first turn and stopped here after the last, by pid:
Redis, the Celery worker and mr's cluster (in temporary directories, tied to this process), and
one process of the peers' venv per peer (``python -m peer_jobs``: Celery's client, or Dask's
client and LocalCluster), which measures a series when asked and answers with its timings.
Each series (P1 sequential, P1 with concurrent clients, P2) has its rounds back to back, each
round a turn of each of the three, in an order that rotates from round to round: the turns a
ratio compares are seconds apart, not minutes."""
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
from benchmarks.common import BenchmarkError, Row, running_mr
from benchmarks.peers.compare import RATIO_MODE, Comparison, PeerTimings, Round, Workload
from mr import devservers

#: The peers' venv, made by ``scripts/benchmark --peers``.
VENV = Path(__file__).resolve().parents[2] / ".venv-peers"
#: On the PYTHONPATH of the peers' processes, which import ``peer_jobs`` from it.
PEER_JOBS_PARENT = Path(__file__).resolve().parent
CELERY_CONCURRENCY = 2
#: Turns each of mr distributed, Celery and Dask takes at each series.
ROUNDS = 3
#: ``peer_jobs.series.SERIES``: the names a peer's process is asked for, in this order.
SERIES = ("sequential", "concurrent", "fan_out")
#: How a line of a peer process's answer starts (``peer_jobs.__main__.ANSWER``).
ANSWER = "peer_jobs answer: "
PEER_EXIT_TIMEOUT_S = 60.0


def measure_beside(mr_rows: dict[str, list[Row]], workload: Workload | None = None,
                   rounds: int = ROUNDS) -> Comparison:
    """mr distributed and the peers measured now, ``rounds`` turns each at each series, beside
    the embedded figures of mr's own rows of this run."""
    workload = workload or Workload()
    python = VENV / "bin" / "python"
    if not python.exists():
        raise BenchmarkError(f"no venv of the peers in {VENV}: scripts/benchmark --peers makes it")
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="mr-benchmark-peers-")))
        redis_url = stack.enter_context(_running_redis(directory))
        celery_env = {"PEER_JOBS_REDIS_URL": redis_url}
        stack.enter_context(_running_celery_worker(python, directory, celery_env))
        celery = stack.enter_context(_PeerProcess(python, "celery", workload, celery_env,
                                                  directory))
        celery.versions["Redis"] = " ".join(
            devservers.binary_version("redis-server").split()[:3])
        dask = stack.enter_context(_PeerProcess(python, "dask", workload, {}, directory))
        mr = stack.enter_context(running_mr(RATIO_MODE))
        mr_series: dict[str, Callable[[], list[Row]]] = {
            "sequential": lambda: http_latency.measure(mr, (1,)),
            "concurrent": lambda: http_latency.measure(mr, (workload.clients,)),
            "fan_out": lambda: fan_out_throughput.measure(mr, (workload.children,),
                                                          with_floor=False)}
        turns = {"mr": lambda series: mr_series[series](), "Celery": celery.measure,
                 "Dask": dask.measure}
        taken: dict[str, list[dict]] = {name: [{} for _ in range(rounds)] for name in turns}
        for series in SERIES:
            for index in range(rounds):
                order = [*turns][index % len(turns):] + [*turns][:index % len(turns)]
                for name in order:
                    taken[name][index][series] = turns[name](series)
            print(f"peers: {series} measured, {rounds} rounds", flush=True)
        measured = [Round({"P1": mr_round["sequential"] + mr_round["concurrent"],
                           "P2": mr_round["fan_out"]},
                          [peer.timings(peer_round)
                           for peer, peer_round in ((celery, celery_round), (dask, dask_round))])
                    for mr_round, celery_round, dask_round
                    in zip(taken["mr"], taken["Celery"], taken["Dask"])]
    return Comparison(workload, mr_rows, measured)


class _PeerProcess:
    """A peer's jobs in a process of the peers' venv, its servers up, measuring one series at
    a time when asked; stopped when its standard input closes, killed if it does not stop.

    A turn that fails is measured once more by a new process: Celery's client can wait for
    ever for a result that its worker stored, when several threads wait at once (the Redis
    result backend's known hang, celery/celery#3761), which says nothing of its speed."""

    def __init__(self, python: Path, peer: str, workload: Workload, env: dict[str, str],
                 directory: Path):
        self.peer = peer
        self._command = [str(python), "-m", "peer_jobs", peer,
                         json.dumps(dataclasses.asdict(workload))]
        self._env = {**os.environ, **env, "PYTHONPATH": str(PEER_JOBS_PARENT)}
        self._directory = directory
        self._errors = directory / f"{peer}.stderr"
        hello = self._start()
        self.name, self.versions = hello["peer"], dict(hello["versions"])

    def _start(self) -> dict:
        """A new process, and its first answer: the peer's name and versions."""
        with self._errors.open("w") as errors:
            self._process = subprocess.Popen(
                self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                text=True, cwd=self._directory, env=self._env)
        return self._answer()

    def __enter__(self) -> "_PeerProcess":
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop()

    def _stop(self) -> None:
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        try:
            self._process.wait(PEER_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def measure(self, series: str) -> dict:
        try:
            return self._measured(series)
        except BenchmarkError as failure:
            print(f"peers: {self.peer}'s {series} turn failed, measured again by a new "
                  f"process: {str(failure).strip().splitlines()[-1]}", flush=True)
        self._stop()
        self._start()
        return self._measured(series)

    def _measured(self, series: str) -> dict:
        try:
            self._process.stdin.write(series + "\n")
            self._process.stdin.flush()
        except OSError:
            pass  # it ended: _answer says how
        return self._answer()

    def timings(self, answers: dict[str, dict]) -> PeerTimings:
        """One round of this peer, from its answers by series."""
        return PeerTimings.from_report({"peer": self.name, "versions": self.versions,
                                        **answers})

    def _answer(self) -> dict:
        for line in self._process.stdout:
            if line.startswith(ANSWER):
                return json.loads(line[len(ANSWER):])
        self._process.wait()
        raise BenchmarkError(f"the {self.peer} process exited with {self._process.returncode}:"
                             f"\n{self._errors.read_text()[-3000:]}")


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
