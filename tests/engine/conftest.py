"""A running mr in one process, in each mode: the engine, a worker and its executor pool.

``embedded``: the in-process KV, queue and data store. ``distributed``: the session's real etcd
and nsqd and a data directory. Every test gets its own workflow name and KV prefix.
"""
import uuid

import pytest

from mr.data.fsspec_store import FsspecDataStore
from mr.data.memory import MemoryDataStore
from mr.engine.engine import Engine
from mr.executor import ExecutorPool
from mr.kv.memory import MemoryKV
from mr.models import EntityStore, Handler, Job, Step, Workflow
from mr.queue.memory import MemoryQueue
from mr.settings import Settings
from mr.worker.worker import Worker
from tests.conftest import (SECURE, TEST_MESSAGE_TIMEOUT_S, delete_topics, etcd_client,
                            nsq_client)
from tests.engine.faults import InterleavingKV

#: What the engines sign their messages with when the servers are secure (SECURE_TEST_SERVERS).
SECRET = uuid.uuid4().hex

ARGUMENT_NAMES = {"mapper": "arguments", "combiner": "results", "reducer": "results",
                  "partitioner": "key"}


@pytest.fixture(scope="session")
def executor():
    pool = ExecutorPool(size=2, default_timeout_s=30)
    yield pool
    pool.close()


class Cluster:
    """An engine with a worker, and helpers to define handlers, steps and jobs."""

    def __init__(self, engine: Engine, worker: Worker):
        self.engine = engine
        self.worker = worker
        self.workflow = engine.settings.workflow_names[0]
        self.store = EntityStore(engine.kv, engine.settings.kv_prefix)
        self.store.create(Workflow(name=self.workflow, description="test workflow"))

    def handler(self, name: str, handler_type: str, body: str, capability: str = "general"):
        self.store.create(Handler(
            workflow=self.workflow, name=name, description=name, handler_type=handler_type,
            argument_spec=[[ARGUMENT_NAMES[handler_type], "list"]], source_type="python",
            source_code=body, required_capability=capability))

    def step(self, name: str, mapper: str, reducer: str, combiner: str | None = None,
             **options):
        """``options``: partitions, sort_values."""
        self.store.create(Step(workflow=self.workflow, name=name, description=name,
                               map_handler_name=mapper, combine_handler_name=combiner,
                               reduce_handler_name=reducer, **options))

    def job(self, name: str, step: str, **options):
        """``options``: input, output (the job's defaults)."""
        self.store.create(Job(workflow=self.workflow, name=name, description=name,
                              initial_step_name=step, **options))

    def restart_worker(self) -> None:
        """Stop the worker and start another on the same engine (e.g. after patching it)."""
        self.worker.stop(timeout=2)
        self.worker = Worker(self.engine).start()

    def run(self, job: str, arguments: dict, timeout_s: float = 30, **options):
        """Submit a blocking request and wait for it; the finished request. ``options``: input,
        output, as the HTTP body names them."""
        request = self.engine.submit(self.workflow, job, arguments, blocking=True, **options)
        finished = self.engine.wait(self.workflow, request.request_id, timeout_s)
        assert finished is not None, f"request {request.request_id} did not finish in time"
        return finished


def start_cluster(request, mode: str, executor, tmp_path, **overrides):
    """``overrides``: settings of the cluster's engine beyond the tests' own."""
    workflow = f"w{uuid.uuid4().hex[:12]}"
    settings = Settings.load({}).with_overrides(**{
        "workflow_names": (workflow,), "kv_prefix": f"/test-{uuid.uuid4().hex[:12]}",
        "message_timeout_s": TEST_MESSAGE_TIMEOUT_S, "invocation_timeout_s": 10.0,
        "sweep_interval_s": 0.5, **({"message_secret": SECRET} if SECURE else {}),
        **overrides})
    if mode in ("embedded", "interleaved"):
        kv, queue, data = (MemoryKV(), MemoryQueue(message_timeout_s=TEST_MESSAGE_TIMEOUT_S),
                           MemoryDataStore())
        if mode == "interleaved":
            kv = InterleavingKV(kv)
    else:
        kv = etcd_client(request.getfixturevalue("etcd_server"))
        queue = nsq_client(request.getfixturevalue("nsqd_server"))
        data = FsspecDataStore(str(tmp_path / "data"))
    engine = Engine(settings, kv, queue, data, executor).serve()
    cluster = Cluster(engine, Worker(engine).start())
    yield cluster
    cluster.worker.stop(timeout=2)
    engine.stop()
    queue.close()
    kv.close()
    if mode == "distributed":
        delete_topics(request.getfixturevalue("nsqd_server"),
                      lambda name: name.startswith(f"mr.{workflow}."))


@pytest.fixture(params=["embedded", "distributed"])
def cluster(request, executor, tmp_path):
    yield from start_cluster(request, request.param, executor, tmp_path)


@pytest.fixture(params=["embedded", "interleaved", "distributed"])
def any_cluster(request, executor, tmp_path):
    """Also the embedded mode with a KV whose every call lets other greenlets run first."""
    yield from start_cluster(request, request.param, executor, tmp_path)


@pytest.fixture
def second_worker(cluster, executor):
    """Start another worker of the cluster, with other capabilities, as a worker process runs
    it: an engine that takes no requests."""
    started = []

    def start(capabilities: tuple[str, ...]) -> Worker:
        engine = cluster.engine
        settings = engine.settings.with_overrides(system_capabilities=capabilities)
        other = Engine(settings, engine.kv, engine.queue, engine.data, executor,
                       front_end=False).serve()
        started.append(other)
        return Worker(other).start()

    yield start
    for engine in started:
        engine.stop()
