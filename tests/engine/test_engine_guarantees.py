"""What ``Engine.submit`` and a worker's failed attempts guarantee a caller, each checked where
it can fail: what a refused request is told and leaves behind, how many times a submit tries
to record its request against changing definitions, what a request whose queue or handler code
is gone records, and what an invocation that gave up leaves for tracing and metrics.

Written for the mutants of ``mr/engine/engine.py`` that the other tests let through
(scripts/mutation); the others cannot change what a caller sees.
"""
import io
import itertools

import pytest
from prometheus_client import REGISTRY

from mr import codec
from mr.data.base import DataError
from mr.engine.engine import PINNING_ATTEMPTS, Upload
from mr.engine.errors import ServiceUnavailable
from mr.engine.trace import counted
from mr.models import Handler, NotFoundError, Request, ValidationError
from mr.queue.base import QueueError
from tests.engine.test_guarantees import leaf_job
from tests.engine.test_pinning import front_end, rescale, result_of, scaled
from tests.engine.test_routing import GPU_MAPPER, flaky_puts

__all__ = ["front_end", "scaled"]  # fixtures of test_pinning, used here too

#: Pairs that encode to more than INLINE_LIMIT_BYTES: they go through the data store.
LARGE_ARGUMENTS = {f"key{number}": number for number in range(200)}
#: Counts and prints what it maps, then maps it to step ``s``.
TRACED_BRANCH = ('increment_counter("pairs", "seen", len(arguments))\n'
                 'print("mapped", len(arguments))\n'
                 'yield MrConfigureToMap("s")\nyield from arguments\n')


def metric(name: str, kind: str) -> float:
    """This process's count of ``name`` for invocations of ``kind`` (map, reduce)."""
    return REGISTRY.get_sample_value(name, {"kind": kind}) or 0.0


# What a refused request is told


def test_a_request_with_both_an_upload_and_arguments_is_refused_and_stores_nothing(cluster):
    leaf_job(cluster, GPU_MAPPER)
    upload = Upload(io.BytesIO(b"a line\n"), "text")
    with pytest.raises(ValidationError, match=r"^a request names its input files or carries "
                                              r"arguments, not both$"):
        cluster.engine.submit(cluster.workflow, "j", {"a": 1}, blocking=True, upload=upload)
    assert cluster.store.list(Request, cluster.workflow) == []
    assert cluster.engine.shuffle_store.list_tree() == []


@pytest.mark.parametrize("deadline_s", [0, -1])
def test_a_deadline_that_is_not_in_the_future_is_refused(cluster, deadline_s):
    leaf_job(cluster, GPU_MAPPER)
    with pytest.raises(ValidationError, match=rf"^deadline_s must be a number of seconds > 0, "
                                              rf"got {deadline_s}$"):
        cluster.engine.submit(cluster.workflow, "j", {"a": 1}, blocking=True,
                              deadline_s=deadline_s)
    assert cluster.store.list(Request, cluster.workflow) == []


def test_a_job_of_a_workflow_with_no_definitions_yet_is_not_found_as_a_job(cluster):
    """The workflow exists (it is served), with no job, step or handler: the job is what is
    missing, not the workflow."""
    with pytest.raises(NotFoundError, match=rf"^job 'j' of workflow '{cluster.workflow}' does "
                                            rf"not exist$"):
        cluster.engine.submit(cluster.workflow, "j", {"a": 1}, blocking=True)


def test_a_refused_request_whose_leftovers_cannot_be_removed_gets_its_own_error(cluster,
                                                                               monkeypatch):
    """Removing what a refused request may have stored is best effort: a data store that
    fails then does not hide why the request was refused."""
    leaf_job(cluster, GPU_MAPPER)

    def data_store_down(prefix):
        raise DataError("the data store is down")

    for store in cluster.engine.stores:
        monkeypatch.setattr(store, "delete_tree", data_store_down)
    with pytest.raises(ValidationError, match="^the arguments cannot be stored"):
        cluster.engine.submit(cluster.workflow, "j", {"big": 10 ** 23}, blocking=True)
    assert cluster.store.list(Request, cluster.workflow) == []


# Recording a request against changing definitions


@pytest.mark.parametrize("changes", [PINNING_ATTEMPTS - 1, PINNING_ATTEMPTS])
def test_a_submit_tries_to_record_its_request_pinning_attempts_times_storing_its_arguments_once(
        cluster, scaled, front_end, monkeypatch, changes):
    """The definitions change right before each of the first ``changes`` tries to record the
    request: one change fewer than PINNING_ATTEMPTS and the request is accepted, pinned to the
    last change, its arguments (too large to ride inline) stored once under it and removed with
    it; PINNING_ATTEMPTS changes and it is refused, with nothing left."""
    data, puts = cluster.engine.data, []
    put = data.put

    def recorded_put(path, encoded):
        puts.append(path)
        put(path, encoded)

    monkeypatch.setattr(data, "put", recorded_put)
    factors, versions = itertools.count(2), []

    def change_definitions():
        if len(versions) < changes:
            versions.append(rescale(cluster, next(factors)))

    front_end.kv.before_record = change_definitions
    if changes == PINNING_ATTEMPTS:
        with pytest.raises(ServiceUnavailable, match=f"changed {PINNING_ATTEMPTS} times"):
            front_end.submit(cluster.workflow, "j", LARGE_ARGUMENTS, blocking=False)
        assert len(versions) == PINNING_ATTEMPTS
        assert cluster.store.list(Request, cluster.workflow) == []
        assert data.list_tree() == []
        return
    request = front_end.submit(cluster.workflow, "j", LARGE_ARGUMENTS, blocking=False)
    assert len(versions) == changes
    assert request.handler_versions["scale"] == versions[-1]
    assert result_of(cluster, request) == {name: (changes + 1) * number
                                           for name, number in LARGE_ARGUMENTS.items()}
    (stored,) = [path for path in puts if "/arguments-" in path]
    assert stored == request.arguments_ref
    assert stored.startswith(f"{cluster.workflow}/{request.request_id}/")
    cluster.engine.release(cluster.engine.get_request(cluster.workflow, request.request_id))
    assert data.list_tree() == []


# Requests that fail as they are accepted


def test_a_request_that_cannot_be_queued_is_recorded_failed_and_refused(cluster, monkeypatch):
    leaf_job(cluster, GPU_MAPPER)

    def queue_down(*args, **kwargs):
        raise QueueError("nsqd is down")

    monkeypatch.setattr(cluster.engine.queue, "publish", queue_down)
    monkeypatch.setattr(cluster.engine.queue, "multi_publish", queue_down)
    with pytest.raises(ServiceUnavailable, match="^the request could not be queued: nsqd is "
                                                 "down$"):
        cluster.engine.submit(cluster.workflow, "j", {"a": 1}, blocking=True)
    (request,) = cluster.store.list(Request, cluster.workflow)
    assert request.state == "failed"
    assert request.error == {"type": "QueueUnavailable", "message": "nsqd is down",
                             "traceback": "", "kind": "engine"}


def test_a_request_whose_root_cannot_be_routed_fails_at_its_root(cluster):
    leaf_job(cluster, GPU_MAPPER)
    mapper = cluster.store.get(Handler, cluster.workflow, "m")
    cluster.engine.kv.delete(cluster.engine.keys.handler_code(cluster.workflow, mapper.version))
    accepted = cluster.engine.submit(cluster.workflow, "j", {"a": 1}, blocking=True)
    request = cluster.engine.get_request(cluster.workflow, accepted.request_id)
    assert request.state == "failed"
    assert request.error["type"] == "MissingHandlerCode"
    assert request.failed_invocation_id == request.root_invocation_id


# An invocation that fails outside its handlers


def refuse_puts(cluster, monkeypatch, fragment: str):
    """The cluster's data store refuses every put of a path with ``fragment``, and invocations
    give up at their second attempt; the data store."""
    cluster.engine.settings = cluster.engine.settings.with_overrides(invocation_max_attempts=2)
    data = cluster.engine.data
    put = data.put

    def refusing(path, encoded):
        if fragment in path:
            raise DataError("the data store is away")
        put(path, encoded)

    monkeypatch.setattr(data, "put", refusing)
    return data


def test_an_invocation_that_gives_up_records_its_trace_output_and_counters(cluster,
                                                                           monkeypatch):
    """Every attempt fails after the handler ran, before its commit (the data store refuses
    the children's pairs): the request fails at the last attempt with the trace of that
    attempt, what its handler printed and what it counted, as a handler's failure would."""
    data = refuse_puts(cluster, monkeypatch, "/children-")
    leaf_job(cluster, GPU_MAPPER)
    cluster.handler("fan", "mapper", TRACED_BRANCH)
    cluster.step("root", "fan", "add")
    cluster.job("fan", "root")
    request = cluster.run("fan", {"a": 1, "b": 2}, deadline_s=20)
    assert request.state == "failed"
    assert request.error["type"] == "DataError"
    assert request.failed_invocation_id == request.root_invocation_id
    assert request.finished_by["invocation_id"] == request.root_invocation_id
    assert request.finished_by["attempts"] == 2
    assert codec.decode(data.get(request.finished_by["log"])) == [["fan stdout", "mapped 2\n"]]
    assert counted(cluster.engine.kv, cluster.engine.keys, request) == {"pairs": {"seen": 2}}


def test_an_invocation_whose_commit_fails_records_what_its_handlers_reported(cluster,
                                                                            monkeypatch):
    """Every attempt fails in its commit, after the trace was handed to it (the data store
    refuses the request's large result): the failure still records what the last attempt's
    handlers printed and counted."""
    data = refuse_puts(cluster, monkeypatch, "/reduced-")
    leaf_job(cluster, 'increment_counter("pairs", "seen", len(arguments))\n'
                      'print("mapped", len(arguments))\n' + GPU_MAPPER)
    request = cluster.run("j", LARGE_ARGUMENTS, deadline_s=20)
    assert request.state == "failed"
    assert request.error["type"] == "DataError"
    assert request.finished_by["attempts"] == 2
    assert codec.decode(data.get(request.finished_by["log"])) == [["m stdout", "mapped 200\n"]]
    assert counted(cluster.engine.kv, cluster.engine.keys, request) == {"pairs": {"seen": 200}}


def test_a_retried_invocation_is_counted_as_retried_and_redelivered_by_its_kind(cluster,
                                                                                monkeypatch):
    flaky_puts(monkeypatch, cluster.engine.data, 1)
    leaf_job(cluster, GPU_MAPPER)
    before = {name: metric(name, "map") for name in ("mr_invocation_retries_total",
                                                     "mr_invocation_redeliveries_total")}
    request = cluster.run("j", LARGE_ARGUMENTS)
    assert request.state == "done", request.error
    assert {name: metric(name, "map") - value for name, value in before.items()} == {
        "mr_invocation_retries_total": 1, "mr_invocation_redeliveries_total": 1}
