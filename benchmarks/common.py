"""What the benchmark programs share: the jobs they run, an mr to run them against (started and
stopped by the program itself), a keep-alive HTTP client, timing and CPU accounting, and the
result rows they report."""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
import math
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import gevent
import urllib3

from mr import devservers
from mr.cli.cluster import start_cluster
from mr.data.fsspec_store import FsspecDataStore
from mr.data.memory import MemoryDataStore
from mr.engine.engine import Engine
from mr.executor import ExecutorPool
from mr.handlers.load import load_workflow, read_definition
from mr.kv.base import KV
from mr.kv.etcd import EtcdKV
from mr.kv.memory import MemoryKV
from mr.queue.memory import MemoryQueue
from mr.queue.nsq import NsqQueue
from mr.settings import Settings
from mr.worker.worker import Worker

#: The workflow definition directory of the benchmark jobs (workflow "bench").
DEFINITION = Path(__file__).parent / "jobs"
WORKFLOW = "bench"
MODES = ("embedded", "distributed")
DISTRIBUTED_WORKERS = 2
#: Longest a blocking request may wait for its result, on the server and in the client.
REQUEST_WAIT_S = 300.0
#: Settings of the mr under test that differ from the defaults.
SERVER_ENV = {"MR_WORKFLOW_NAMES": WORKFLOW, "MR_HTTP_HOST": devservers.LOOPBACK,
              "MR_REQUEST_WAIT_TIMEOUT_S": str(REQUEST_WAIT_S)}


class BenchmarkError(RuntimeError):
    """The mr under test answered wrongly or not at all; the message says what it answered."""


# Results


@dataclasses.dataclass(frozen=True)
class Target:
    """A bound a measure must stay within: at most ``bound``, or at least it."""
    bound: float
    at_most: bool

    def met_by(self, value: float) -> bool:
        return value <= self.bound if self.at_most else value >= self.bound

    def __str__(self) -> str:
        return f"{'≤' if self.at_most else '≥'} {self.bound:g}"


@dataclasses.dataclass(frozen=True)
class Row:
    """One measured number, with its baseline from the same run and its target, if any."""
    #: Which variant of its benchmark, e.g. "sequential" or "16 concurrent clients".
    case: str
    mode: str
    measure: str
    value: float
    baseline: float | None = None
    target: Target | None = None
    #: Where the time or the calls went, said in a sentence; printed under the table.
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "met" if self.target.met_by(self.value) else "MISSED"


def number(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def percentile(values: list[float], percent: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(percent / 100 * len(ordered)) - 1, 0)]


# The mr under test


@dataclasses.dataclass
class RunningMr:
    """An mr serving the benchmark jobs over HTTP at ``url``, and its processes by name."""
    mode: str
    url: str
    pids: dict[str, int]
    #: The MR_* settings that point mr at it (distributed: etcd and nsqd addresses, and the
    #: admin token the cluster made).
    env: dict[str, str]

    def client(self, connections: int = 1) -> "HttpClient":
        return HttpClient(self.url, connections, self.env.get("MR_TOKEN", ""))


@contextlib.contextmanager
def running_mr(mode: str, definition: Path = DEFINITION,
               env: dict[str, str] | None = None) -> Iterator[RunningMr]:
    """Embedded: ``mr run`` in a process of its own, so that its event loop is not the client's.
    Distributed: etcd, nsqd, two ``mr worker`` processes and the gunicorn front end. Everything
    lives in a temporary directory, is tied to this process and is stopped on the way out.
    ``definition``: the workflow served; ``env``: settings added to the benchmarks' own."""
    env = {**SERVER_ENV, **(env or {})}
    with tempfile.TemporaryDirectory(prefix=f"mr-benchmark-{mode}-") as directory:
        if mode == "embedded":
            port = devservers.free_port()
            url = f"http://{devservers.LOOPBACK}:{port}"
            server = devservers.ServerProcess(
                "mr-run", [sys.executable, "-m", "mr.cli.main", "run", str(definition),
                           "--port", str(port)],
                Path(directory), {"http": url}, f"{url}/health", tie_to_parent=True,
                env=env).start()
            try:
                yield RunningMr(mode, url, {"mr run": server.pid}, dict(env))
            finally:
                server.stop()
        else:
            cluster = start_cluster(Path(directory), [read_definition(definition)],
                                    workers=DISTRIBUTED_WORKERS, tie_to_parent=True,
                                    extra_env=env)
            try:
                yield RunningMr(mode, cluster.url, {process.name: process.pid
                                                    for process in cluster.processes},
                                cluster.env)
            finally:
                cluster.stop()


@dataclasses.dataclass
class InProcessMr:
    """An engine and a worker in this process (as in tests/engine/conftest.py), serving the
    benchmark jobs, and the servers it talks to by name (distributed: etcd and nsqd)."""
    mode: str
    engine: Engine
    pids: dict[str, int]

    def run(self, job: str, arguments: dict) -> list:
        """The result pairs of one request, run as the front end runs a blocking one: submit,
        wait, read the result, remove the finished request (what its release does)."""
        request = self.engine.submit(WORKFLOW, job, arguments, blocking=True)
        finished = self.engine.wait(WORKFLOW, request.request_id, REQUEST_WAIT_S)
        if finished is None or finished.state != "done":
            raise BenchmarkError(f"request {request.request_id} of {job} did not finish: "
                                 f"{finished and (finished.state, finished.error)}")
        pairs = self.engine.result(finished)
        self.engine.release(finished)
        return pairs


@contextlib.contextmanager
def in_process_mr(mode: str, wrap_kv: Callable[[KV], KV] = lambda kv: kv,
                  executors: int = 2) -> Iterator[InProcessMr]:
    """Embedded: the memory KV, queue and data store. Distributed: a private etcd and nsqd
    (not a cluster's: its workers would take this engine's messages) and a data directory.
    ``wrap_kv`` may put a proxy between the engine and the KV."""
    settings = Settings.load({}).with_overrides(
        workflow_names=(WORKFLOW,), kv_prefix=f"/benchmark-{uuid.uuid4().hex[:12]}",
        # No cleaner polling the KV in the background: run() removes each request itself.
        do_cleanup_requests=False)
    with contextlib.ExitStack() as stack:
        pids = {}
        if mode == "embedded":
            kv, queue, data = MemoryKV(), MemoryQueue(), MemoryDataStore()
        else:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="mr-benchmark-in-process-")))
            etcd = devservers.etcd(directory, tie_to_parent=True).start()
            stack.callback(etcd.stop)
            nsqd = devservers.nsqd(directory, tie_to_parent=True,
                                   **devservers.nsqd_timeouts(Settings())).start()
            stack.callback(nsqd.stop)
            pids = {"etcd": etcd.pid, "nsqd": nsqd.pid}
            host, port = etcd.addresses["client"].rsplit("/", 1)[-1].split(":")
            kv = EtcdKV(host, int(port))
            queue = NsqQueue([nsqd.addresses["tcp"]])
            data = FsspecDataStore(str(directory / "data"))
        kv = wrap_kv(kv)
        stack.callback(kv.close)
        stack.callback(queue.close)
        executor = ExecutorPool(size=executors, default_timeout_s=REQUEST_WAIT_S)
        stack.callback(executor.close)
        engine = Engine(settings, kv, queue, data, executor).serve()
        stack.callback(engine.stop)
        load_workflow(engine.store, read_definition(DEFINITION))
        worker = Worker(engine).start()
        stack.callback(worker.stop, timeout=2)
        yield InProcessMr(mode, engine, pids)


# HTTP


class HttpClient:
    """JSON over keep-alive connections to one server: at most ``connections`` of them, shared
    by the greenlets that call it."""

    def __init__(self, url: str, connections: int = 1, token: str = ""):
        self._pool = urllib3.connection_from_url(
            url, maxsize=connections, block=True, retries=False,
            timeout=urllib3.Timeout(connect=5, read=REQUEST_WAIT_S + 10))
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str) -> dict:
        return self._answer("GET", path, self._pool.request("GET", path, headers=self._headers))

    def post(self, path: str, body: dict) -> dict:
        return self._answer("POST", path, self._pool.request(
            "POST", path, body=json.dumps(body),
            headers={"Content-Type": "application/json", **self._headers}))

    def post_job(self, job: str, arguments: dict) -> list:
        """The result pairs of a blocking request of a benchmark job."""
        return self.post(f"/job/{WORKFLOW}/{job}", {"arguments": arguments})["result"]["pairs"]

    @staticmethod
    def _answer(method: str, path: str, response: urllib3.BaseHTTPResponse) -> dict:
        if response.status != 200:
            raise BenchmarkError(f"{method} {path} answered {response.status}: "
                                 f"{response.data[:500].decode(errors='replace')}")
        return response.json()

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# Timing and CPU


def timed_calls(call: Callable[[], None], count: int, clients: int,
                time_limit_s: float) -> list[float]:
    """The latencies (s) of ``count`` calls made by ``clients`` greenlets that share them out;
    the calls not started within ``time_limit_s`` are not made (fewer latencies come back)."""
    tickets = itertools.count()
    deadline = time.monotonic() + time_limit_s
    latencies: list[float] = []

    def client() -> None:
        while next(tickets) < count and time.monotonic() < deadline:
            started = time.perf_counter()
            call()
            latencies.append(time.perf_counter() - started)

    gevent.joinall([gevent.spawn(client) for _ in range(clients)], raise_error=True)
    return latencies


#: In the command line of the executor children and of the fork server they are forked from.
EXECUTOR_COMMAND = b"mr.executor.forkserver"


@dataclasses.dataclass(frozen=True)
class _Process:
    parent: int
    cpu_s: float  # user + system, so far
    is_executor: bool


def _process_table() -> dict[int, _Process]:
    table = {}
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone since the listing
        # The fields after the command: state ppid ... utime (12th) stime (13th).
        table[int(entry.name)] = _Process(int(fields[1]),
                                          (int(fields[11]) + int(fields[12])) / ticks_per_s,
                                          EXECUTOR_COMMAND in command)
    return table


def cpu_seconds(pids: dict[str, int], this_process: str) -> dict[str, float]:
    """CPU seconds used so far by each named process with its descendants (a gunicorn master
    with its worker), the executor children of each apart as "<name> executors", and this
    process with its own executor children (an in-process engine's) as ``this_process``."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, process in table.items():
        children.setdefault(process.parent, []).append(pid)
    used: dict[str, float] = collections.defaultdict(float)

    def add(name: str, pid: int, descend: Callable[[_Process], bool]) -> None:
        process = table.get(pid)
        if process is None:
            return
        used[f"{name} executors" if process.is_executor else name] += process.cpu_s
        for child in children.get(pid, []):
            if descend(table[child]):
                add(name, child, descend)

    for name, pid in pids.items():
        add(name, pid, lambda child: True)
    add(this_process, os.getpid(), lambda child: child.is_executor)
    return used


@contextlib.contextmanager
def cpu_used(pids: dict[str, int], this_process: str = "client") -> Iterator[dict[str, float]]:
    """Fills the yielded dict, on exit, with the CPU seconds used inside the block as
    :func:`cpu_seconds` names them."""
    used: dict[str, float] = {}
    before = cpu_seconds(pids, this_process)
    yield used
    after = cpu_seconds(pids, this_process)
    used.update({name: after[name] - before.get(name, 0.0) for name in after})


def describe_cpu(used: dict[str, float], per: int, unit: str) -> str:
    """``used`` as milliseconds of CPU per ``unit``, busiest first, with the total."""
    parts = [f"{name} {seconds * 1000 / per:.2f}" for name, seconds in
             sorted(used.items(), key=lambda item: -item[1]) if seconds > 0]
    total = sum(used.values()) * 1000 / per
    return f"CPU ms per {unit}: {total:.2f} in all: " + ", ".join(parts)


# The machine


def machine() -> dict[str, str]:
    cpu_model = next((line.split(":", 1)[1].strip()
                      for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "unknown")
    memory_kib = next(int(line.split()[1])
                      for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:"))
    return {"cores": str(os.cpu_count()), "memory": f"{memory_kib / 2 ** 20:.1f} GiB",
            "CPU": cpu_model, "Python": sys.version.split()[0],
            "etcd": devservers.binary_version("etcd"),
            "nsqd": devservers.binary_version("nsqd")}
