"""Workflows are served live: one created while the engine runs is served by its front end and
its worker within a second, one deleted stops being served, and MR_WORKFLOW_NAMES only narrows
the set — in embedded mode and over etcd and nsqd."""
import contextlib

import gevent
import pytest

from mr.engine.engine import Engine
from mr.engine.served import ServedWorkflows
from mr.kv import mirror
from mr.kv.base import KVError
from mr.kv.memory import MemoryKV
from mr.models import EntityStore, Handler, Job, NotFoundError, Step, Workflow
from mr.models.keys import Keys
from mr.worker.worker import Worker

SERVED_WITHIN_S = 1.0


@contextlib.contextmanager
def engine_beside(cluster, executor, workflow_names: tuple[str, ...] = ()):
    """An engine and its worker beside the cluster's, serving ``workflow_names`` (all: ())."""
    engine = cluster.engine
    settings = engine.settings.with_overrides(workflow_names=workflow_names)
    other = Engine(settings, engine.kv, engine.queue, engine.data, executor).serve()
    worker = Worker(other).start()
    try:
        yield other, worker
    finally:
        worker.stop(timeout=2)
        other.stop()


@pytest.fixture
def live_engine(cluster, executor):
    """An engine and worker beside the cluster's, serving every workflow (no filter)."""
    with engine_beside(cluster, executor) as (other, _):
        yield other


def wait_until(condition, timeout_s: float = SERVED_WITHIN_S) -> bool:
    with gevent.Timeout(timeout_s, False):
        while not condition():
            gevent.sleep(0.01)
        return True
    return False


def create_workflow(store, name: str) -> None:
    store.create(Workflow(name=name, description="created while the engine runs"))
    store.create(Handler(workflow=name, name="echo", description="echo", handler_type="mapper",
                         argument_spec=[["arguments", "list"]], source_type="python",
                         source_code="yield MrConfigureToReturn()\nyield from arguments\n"))
    store.create(Handler(workflow=name, name="total", description="total",
                         handler_type="reducer", argument_spec=[["results", "list"]],
                         source_type="python",
                         source_code="for key, values in results:\n    yield key, sum(values)\n"))
    store.create(Step(workflow=name, name="total", description="total", map_handler_name="echo",
                      reduce_handler_name="total"))
    store.create(Job(workflow=name, name="total", description="total", initial_step_name="total"))


def test_a_workflow_created_while_running_is_served_and_one_deleted_is_not(cluster, live_engine):
    name = f"{cluster.workflow}_live"
    create_workflow(cluster.store, name)
    assert wait_until(lambda: name in live_engine.served.names), live_engine.served.names
    assert name not in cluster.engine.served  # MR_WORKFLOW_NAMES names another one
    request = live_engine.submit(name, "total", {"a": 1, "b": 2}, blocking=True)
    finished = live_engine.wait(name, request.request_id, 30)
    assert finished is not None and finished.state == "done", finished
    assert sorted(live_engine.result(finished)) == [["a", 1], ["b", 2]]
    cluster.store.delete(Workflow, name)
    assert wait_until(lambda: name not in live_engine.served.names), live_engine.served.names
    with pytest.raises(NotFoundError, match=f"workflow '{name}' is not served here"):
        live_engine.submit(name, "total", {"a": 1}, blocking=True)


def test_a_request_sent_right_after_its_workflow_was_created_is_served(cluster, live_engine):
    """No waiting for the watch: a workflow not seen yet is looked up."""
    name = f"{cluster.workflow}_fresh"
    create_workflow(cluster.store, name)
    request = live_engine.submit(name, "total", {"x": 5}, blocking=True)
    finished = live_engine.wait(name, request.request_id, 30)
    assert finished is not None and finished.state == "done", finished
    assert live_engine.result(finished) == [["x", 5]]


def test_a_filtered_out_workflow_is_refused_with_the_filter_named(cluster):
    name = f"{cluster.workflow}_other"
    create_workflow(cluster.store, name)
    with pytest.raises(NotFoundError, match=r"MR_WORKFLOW_NAMES \(.*\) leaves it out"):
        cluster.engine.submit(name, "total", {"a": 1}, blocking=True)


def test_a_deleted_workflows_topics_are_no_longer_consumed(cluster, executor):
    name = f"{cluster.workflow}_gone"
    with engine_beside(cluster, executor, (name,)) as (other, worker):
        create_workflow(cluster.store, name)
        assert wait_until(lambda: worker.topics() == other.topics(name, "general")), \
            worker.topics()
        cluster.store.delete(Workflow, name)
        assert wait_until(lambda: worker.topics() == []), worker.topics()


def record_stops(monkeypatch, consumer, stopped: list) -> None:
    """``consumer`` is added to ``stopped`` when it is stopped."""
    stop = consumer.stop
    monkeypatch.setattr(consumer, "stop",
                        lambda timeout=None: (stopped.append(consumer), stop(timeout)))


def test_a_worker_stopped_while_it_subscribes_to_a_new_workflow_leaves_no_consumer(
        cluster, executor, monkeypatch):
    """Subscribing to a workflow's topics takes a round trip to nsqd per topic: a worker
    stopped meanwhile must stop the consumers made after it, not leave them taking messages."""
    name = f"{cluster.workflow}_late"
    consume = cluster.engine.queue.consume
    made, stopped = [], []
    with engine_beside(cluster, executor, (name,)) as (other, worker):

        def consume_stopping_the_worker_once(topic, channel, handler, **options):
            consumer = consume(topic, channel, handler, **options)
            if handler != other.handle:  # the cluster's worker, subscribing to its workflow
                return consumer
            made.append(consumer)
            record_stops(monkeypatch, consumer, stopped)
            if len(made) == 1:
                worker.stop(timeout=1)
            return consumer

        monkeypatch.setattr(cluster.engine.queue, "consume", consume_stopping_the_worker_once)
        create_workflow(cluster.store, name)
        # The watch brings the workflow, then its subscription starts (stopping the worker).
        assert wait_until(lambda: made and stopped == made, timeout_s=10), (made, stopped)
        assert worker.topics() == []


def test_a_subscription_that_fails_halfway_leaves_no_consumer(cluster, executor, monkeypatch):
    """The second topic cannot be subscribed: the first one's consumer is stopped, and the
    workflow is not shown as consumed."""
    name = f"{cluster.workflow}_refused"
    consume = cluster.engine.queue.consume
    made, stopped = [], []
    with engine_beside(cluster, executor, (name,)) as (other, worker):

        def consume_once_then_refuse(topic, channel, handler, **options):
            if handler != other.handle:  # the cluster's worker, subscribing to its workflow
                return consume(topic, channel, handler, **options)
            if made:
                raise RuntimeError("the queue refuses the subscription")
            consumer = consume(topic, channel, handler, **options)
            record_stops(monkeypatch, consumer, stopped)
            made.append(consumer)
            return consumer

        monkeypatch.setattr(cluster.engine.queue, "consume", consume_once_then_refuse)
        create_workflow(cluster.store, name)
        assert wait_until(lambda: made and stopped == made, timeout_s=10), (made, stopped)
        assert worker.topics() == []


def test_a_failing_watch_of_the_workflows_is_logged_by_name_and_followed_again(monkeypatch,
                                                                              caplog):
    kv, keys = MemoryKV(), Keys("/served")
    failures, watch = [KVError("etcd went away")], kv.watch

    def failing_once(*arguments, **options):
        if failures:
            raise failures.pop()
        return watch(*arguments, **options)

    monkeypatch.setattr(kv, "watch", failing_once)
    monkeypatch.setattr(mirror, "RETRY_S", 0.01)
    served = ServedWorkflows(kv, keys)
    served.start()
    try:
        EntityStore(kv, "/served").create(Workflow(name="w", description="d"))
        with gevent.Timeout(SERVED_WITHIN_S):
            while "w" not in served:
                gevent.sleep(0.01)
    finally:
        served.stop()
    assert "the watch of the workflows failed (etcd went away); retrying" in caplog.text
