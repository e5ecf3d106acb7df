"""A worker process's engine, which takes no requests: it follows the ``finished`` keys of the
requests rather than their records, and still stops the invocations of failed and cancelled
requests, skips the messages of finished ones and leaves nothing behind them."""
import pytest

from mr.engine.dispatch import CARRIED_RECORD_LIMIT_BYTES
from mr.engine.engine import Engine
from mr.engine.messages import MAP, InvocationMessage
from mr.engine.tracker import RequestTracker, WorkerRequests
from mr.service import EMBEDDED_BACKENDS, Service
from mr.models import Request
from mr.settings import Settings
from mr.worker.worker import Worker
from tests.engine.test_guarantees import RecordedDelivery, record_publishes, until
from tests.engine.test_requests import SUM_REDUCER

SLEEPING_LEAF = "import time\ntime.sleep(30)\nyield MrConfigureToReturn()\nyield 'n', 1\n"
QUICK_LEAF = "yield MrConfigureToReturn()\nyield 'n', 1\n"


@pytest.fixture
def worker_alone(cluster, executor):
    """The cluster's invocations run by a worker alone (its own engine) from now on."""
    cluster.worker.stop()
    engine = Engine(cluster.engine.settings, cluster.engine.kv, cluster.engine.queue,
                    cluster.engine.data, executor, front_end=False).serve()
    worker = Worker(engine).start()
    yield engine
    worker.stop(timeout=0)
    engine.stop()


class RecordedReads:
    """A KV whose reads of single keys are recorded: what one engine's tracker reads."""

    def __init__(self, kv):
        self._kv, self.read = kv, []

    def get(self, key):
        self.read.append(key)
        return self._kv.get(key)

    def __getattr__(self, name):
        return getattr(self._kv, name)


def fan_out_job(cluster, leaf_body: str, children: int = 2) -> None:
    cluster.handler("fan_out", "mapper", "yield MrConfigureToMap('leaf')\n"
                                         f"for n in range({children}):\n    yield str(n), n\n")
    cluster.handler("leaf_map", "mapper", leaf_body)
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("leaf", "leaf_map", "add")
    cluster.step("root", "fan_out", "add")
    cluster.job("j", "root")


def finished_keys(cluster) -> list[str]:
    return [stored.key for stored in cluster.engine.kv.range(
        cluster.engine.keys.finished(cluster.workflow), prefix=True).kvs]


def test_a_cancelled_requests_invocations_stop_in_a_worker_alone(cluster, worker_alone):
    fan_out_job(cluster, SLEEPING_LEAF)
    request = cluster.engine.submit(cluster.workflow, "j", {}, blocking=False)
    identity = (cluster.workflow, request.request_id)
    until("both leaves running", lambda: len(worker_alone._in_progress.get(identity, ())) == 2)
    cancelled = cluster.engine.cancel(cluster.workflow, request.request_id)
    assert finished_keys(cluster) == [  # as docs/keys.rst lays it out
        f"{cluster.engine.settings.kv_prefix}/wf/{cluster.workflow}/finished/{request.request_id}"]
    until("the leaves stopped", lambda: identity not in worker_alone._in_progress, timeout_s=5)
    assert worker_alone.requests.is_finished(*identity)
    cluster.engine.release(cancelled)
    assert finished_keys(cluster) == []


def test_a_failure_stops_its_running_siblings_in_a_worker_alone(cluster, worker_alone):
    fan_out_job(cluster, "import time\nname, _ = arguments[0]\nif name == '1':\n"
                         "    time.sleep(0.5)\n    raise RuntimeError('the fast failure')\n"
                + SLEEPING_LEAF)
    failed = cluster.run("j", {}, timeout_s=20)
    assert failed.error["message"] == "the fast failure"
    assert finished_keys(cluster) == [cluster.engine.finished_key(failed)]
    # Long before its 30 s sleep ends.
    until("the sleeping sibling stopped", lambda: not worker_alone._in_progress, timeout_s=5)


def test_a_worker_alone_takes_a_request_from_its_root_and_knows_the_ones_it_finished(
        cluster, worker_alone):
    """Each request's record came with its root's message: the worker read none of them. A
    done request writes no finished key (nothing of it is left to stop): the worker that
    committed it knows it without one."""
    reads = worker_alone.requests._kv = RecordedReads(worker_alone.requests._kv)
    fan_out_job(cluster, QUICK_LEAF, children=3)
    done = [cluster.run("j", {}) for _ in range(2)]
    assert [dict(cluster.engine.result(request)) for request in done] == [{"n": 3}] * 2
    assert reads.read == []
    until("both known finished", lambda: all(worker_alone.requests.is_finished(
        cluster.workflow, request.request_id) for request in done))
    assert worker_alone.requests._requests == {}
    assert finished_keys(cluster) == []


def test_a_message_of_a_request_a_worker_alone_saw_finish_runs_nothing(cluster, worker_alone,
                                                                      monkeypatch):
    """Its record is not even read again: the finished key said enough."""
    published = record_publishes(monkeypatch, cluster)
    fan_out_job(cluster, QUICK_LEAF)
    done = cluster.run("j", {})
    until("the finish seen", lambda: worker_alone.requests.is_finished(
        cluster.workflow, done.request_id))
    ran = []
    monkeypatch.setattr(worker_alone.tree, "run", lambda *arguments, **_: ran.append(arguments))
    reads = worker_alone.requests._kv = RecordedReads(worker_alone.requests._kv)
    for message in published:
        delivery = RecordedDelivery(worker_alone, message)
        worker_alone.handle(delivery)
        assert delivery.requeued == []
    # The root, its two children and its reduce.
    assert len(published) == 4 and ran == [] and reads.read == []


def test_only_a_distributed_installations_worker_follows_less(monkeypatch):
    made = {}
    monkeypatch.setattr(Service, "__init__", lambda self, settings, **roles: made.update(
        {roles["worker"]: roles["front_end"]}))
    settings = Settings.load({}).with_overrides(
        kv_backend="etcd", queue_backend="nsq", data_store_url="file:///shared",
        message_secret="s")
    for worker in (True, False):
        Service.shared(settings, worker=worker)
    assert made == {True: False, False: True}


@pytest.mark.parametrize("front_end, tracker", [(True, RequestTracker),
                                                (False, WorkerRequests)])
def test_a_service_gives_its_engine_the_tracker_of_its_roles(front_end, tracker):
    settings = Settings.load({}).with_overrides(executor_processes=1, **EMBEDDED_BACKENDS)
    service = Service(settings, worker=True, serve=False, front_end=front_end)
    try:
        assert type(service.engine.requests) is tracker
    finally:
        service.stop()
    assert type(Engine(settings, service.kv, service.queue, service.data).requests) \
        is RequestTracker  # by default an engine takes requests


@pytest.mark.parametrize("attempts, taken", [(1, True), (2, False)])
def test_a_worker_alone_takes_a_carried_record_on_a_first_delivery_only(cluster, worker_alone,
                                                                       monkeypatch, attempts,
                                                                       taken):
    """A message delivered again may belong to a request finished since: ask the KV."""
    record = (7, b"the record")
    asked = []
    monkeypatch.setattr(worker_alone.requests, "get", lambda *arguments: asked.append(
        arguments))  # and None: the request is gone, nothing runs
    message = InvocationMessage(cluster.workflow, "r" * 32, "i" * 32, MAP, "root",
                                record=record)
    worker_alone.handle(RecordedDelivery(worker_alone, message, attempts))
    assert asked == [(cluster.workflow, "r" * 32, record if taken else None)]


def test_a_root_carries_its_requests_record_as_created_when_it_is_small(cluster,
                                                                       monkeypatch):
    published = record_publishes(monkeypatch, cluster)
    fan_out_job(cluster, QUICK_LEAF)
    small, large = (cluster.engine.submit(cluster.workflow, "j", {}, blocking=False,
                                          context={"note": "n" * size})
                    for size in (10, CARRIED_RECORD_LIMIT_BYTES))
    roots = {message.request_id: message for message in published if message.step == "root"}
    revision, encoded = roots[small.request_id].record
    assert revision == small.mod_revision
    assert Request.decode(small.request_id, encoded) == small
    assert roots[large.request_id].record is None
