"""A submit pins its request to the definitions it cached, reading nothing: the transaction that
records the request compares the definitions marker, and a request that lost to a change of the
definitions is pinned again to them once reloaded. In embedded mode and over etcd."""
import itertools

import gevent
import pytest

from mr.engine.engine import PINNING_ATTEMPTS, Engine
from mr.engine.errors import ServiceUnavailable
from mr.kv.base import Put
from mr.models import Handler, NotFoundError, Request, Workflow

MAPPER = "yield MrConfigureToReturn()\nyield from arguments\n"
REDUCER = "for key, values in results:\n    yield key, {factor} * sum(values)\n"


class RecordingKV:
    """A KV as a front end's engine uses it: the name of each call made from the test's own
    greenlet is recorded, and ``before_record`` runs right before each transaction that
    records a request (to change what the request depends on at the worst moment)."""

    def __init__(self, inner, requests_prefix: str):
        self._inner = inner
        self._requests_prefix = requests_prefix
        self._caller = gevent.getcurrent()
        self.calls: list[str] = []
        self.before_record = None

    def __getattr__(self, name):
        attribute = getattr(self._inner, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def recorded(*args, **kwargs):
            if gevent.getcurrent() is self._caller:
                self.calls.append(name)
                if name == "txn" and self.before_record and self._records_a_request(*args):
                    self.before_record()
            return attribute(*args, **kwargs)
        return recorded

    def _records_a_request(self, compares, success=(), failure=()):
        return any(isinstance(operation, Put) and operation.key.startswith(self._requests_prefix)
                   for operation in success)


@pytest.fixture
def front_end(cluster):
    """A front end's engine beside the cluster's (whose worker runs its requests), over a
    RecordingKV of the cluster's store."""
    engine = cluster.engine
    kv = RecordingKV(engine.kv, engine.keys.entities(Request.kind, cluster.workflow))
    front = Engine(engine.settings, kv, engine.queue, engine.data).serve()
    yield front
    front.stop()


@pytest.fixture
def scaled(cluster):
    """Job ``j``: each argument's value times the reducer's factor (1 to begin with)."""
    cluster.handler("identity", "mapper", MAPPER)
    cluster.handler("scale", "reducer", REDUCER.format(factor=1))
    cluster.step("s", "identity", "scale")
    cluster.job("j", "s")


def rescale(cluster, factor: int) -> str:
    """Change the reducer's code, as a sync does; its new version."""
    handler = cluster.store.get(Handler, cluster.workflow, "scale")
    return cluster.store.update(handler.replace(source_code=REDUCER.format(factor=factor))).version


def once(action):
    """``action`` the first time it is called, nothing after."""
    done = []

    def run():
        if not done:
            done.append(action())
    return run


def result_of(cluster, request: Request) -> dict:
    finished = cluster.engine.wait(cluster.workflow, request.request_id, 30)
    assert finished is not None and finished.state == "done", finished
    return dict(cluster.engine.result(finished))


def submit(front_end, cluster, job: str = "j") -> Request:
    return front_end.submit(cluster.workflow, job, {"a": 1}, blocking=False)


def test_a_submit_under_current_definitions_makes_one_kv_call_the_record(cluster, scaled,
                                                                          front_end):
    submit(front_end, cluster)  # the definitions into the cache
    front_end.kv.calls.clear()
    request = submit(front_end, cluster)
    assert front_end.kv.calls == ["txn"]
    assert result_of(cluster, request) == {"a": 1}


def test_a_change_between_two_submits_is_seen_by_the_second(cluster, scaled, front_end):
    first = submit(front_end, cluster)
    version = rescale(cluster, 10)
    second = submit(front_end, cluster)
    assert first.handler_versions["scale"] != version
    assert second.handler_versions["scale"] == version
    assert (result_of(cluster, first), result_of(cluster, second)) == ({"a": 1}, {"a": 10})


def test_a_change_committed_while_a_submit_runs_is_what_its_request_runs(cluster, scaled,
                                                                          front_end):
    """The change lands after the submit took the cached definitions, before its request is
    recorded: the request, recorded after the change, is pinned to it."""
    submit(front_end, cluster)
    versions = []
    front_end.kv.before_record = once(lambda: versions.append(rescale(cluster, 10)))
    request = submit(front_end, cluster)
    assert request.handler_versions["scale"] == versions[0]
    assert cluster.store.get(Request, cluster.workflow,
                             request.request_id).handler_versions["scale"] == versions[0]
    assert result_of(cluster, request) == {"a": 10}


def test_definitions_that_change_at_every_try_refuse_the_request_and_keep_nothing(
        cluster, scaled, front_end):
    result_of(cluster, submit(front_end, cluster))
    stored = cluster.engine.data.list_tree()
    factors = itertools.count(2)
    front_end.kv.before_record = lambda: rescale(cluster, next(factors))
    with pytest.raises(ServiceUnavailable, match=f"changed {PINNING_ATTEMPTS} times"):
        submit(front_end, cluster)
    assert len(cluster.store.list(Request, cluster.workflow)) == 1
    assert cluster.engine.data.list_tree() == stored


def test_a_workflow_deleted_while_a_submit_runs_is_not_found_and_keeps_nothing(
        cluster, scaled, front_end):
    result_of(cluster, submit(front_end, cluster))
    stored = cluster.engine.data.list_tree()
    front_end.kv.before_record = once(lambda: cluster.store.delete(Workflow, cluster.workflow))
    with pytest.raises(NotFoundError, match=rf"^workflow '{cluster.workflow}' does not exist$"):
        submit(front_end, cluster)
    assert cluster.engine.data.list_tree() == stored


def test_a_job_created_after_the_definitions_were_cached_is_found(cluster, scaled, front_end):
    submit(front_end, cluster)
    cluster.job("later", "s")
    front_end.kv.calls.clear()
    request = submit(front_end, cluster, "later")
    assert front_end.kv.calls == ["get", "txn", "txn"]  # the marker moved: reload, record
    assert result_of(cluster, request) == {"a": 1}


def test_an_unknown_job_costs_one_read_of_the_marker(cluster, scaled, front_end):
    submit(front_end, cluster)
    front_end.kv.calls.clear()
    with pytest.raises(NotFoundError, match=f"job 'nope' of workflow '{cluster.workflow}'"):
        submit(front_end, cluster, "nope")
    assert front_end.kv.calls == ["get"]
