"""What the dispatcher (mr/engine/dispatch.py) promises: a child's argument too large for its
message is stored under its request and goes with it, the batches of a large publish are
reported as they go out, and a message that names a step its request never had fails the
request with an error that says so.

Written for the mutants of ``dispatch.py`` that the other tests let through (scripts/mutation).
"""
import dataclasses

import pytest

from mr.engine import dispatch
from mr.engine.dispatch import INLINE_PAIR_LIMIT_BYTES
from tests.engine.faults import intercept_publishes
from tests.engine.test_guarantees import RecordedDelivery, is_root_map, record_publishes
from tests.engine.test_shuffle import SUM_REDUCER

#: Two children: one whose argument rides in its message, one whose argument does not fit.
LARGE_CHILD = f"""
yield MrConfigureToMap("leaf")
yield "small", 1
yield "large", "x" * {INLINE_PAIR_LIMIT_BYTES}
"""
LEAF = """
yield MrConfigureToReturn()
for key, value in arguments:
    yield key, len(str(value))
"""


def large_child_job(cluster):
    cluster.handler("fan", "mapper", LARGE_CHILD)
    cluster.handler("leaf_map", "mapper", LEAF)
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("leaf", "leaf_map", "add")
    cluster.step("root", "fan", "add")
    cluster.job("j", "root")


def test_a_childs_argument_too_large_for_its_message_goes_with_its_request(cluster):
    large_child_job(cluster)
    request = cluster.run("j", {"x": 1})
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == {"small": 1, "large": INLINE_PAIR_LIMIT_BYTES}
    stored = cluster.engine.data.list_tree()
    assert stored and all(path.startswith(f"{cluster.workflow}/{request.request_id}/")
                          for path in stored)
    cluster.engine.release(request)
    assert cluster.engine.data.list_tree() == []


@pytest.mark.parametrize("count, reported", [(4, [2]), (7, [2, 5]), (3, [])])
def test_each_batch_but_the_last_is_reported_with_its_last_message(cluster, monkeypatch, count,
                                                                    reported):
    """So that a branch that dies between two batches publishes only what follows again;
    without anyone to report to, the batches go out all the same."""
    monkeypatch.setattr(dispatch, "PUBLISH_BATCH_COUNT", 3)
    root = record_publishes(monkeypatch, cluster)
    large_child_job(cluster)
    request = cluster.run("j", {"x": 1})
    messages = cluster.engine.dispatch.children(request, next(filter(is_root_map, root)),
                                                "leaf", [["k", n] for n in range(count)])
    batches = intercept_publishes(monkeypatch, cluster.engine, lambda message: False)
    calls = []
    cluster.engine.dispatch.publish(request, messages, on_batch=calls.append)
    assert [message.invocation_id for message in calls] == [
        messages[position].invocation_id for position in reported]
    cluster.engine.dispatch.publish(request, messages)
    assert batches == []  # every message lost on purpose: only what was reported counts


def test_a_message_naming_a_step_its_request_never_had_fails_it_saying_so(cluster, monkeypatch):
    published = record_publishes(monkeypatch, cluster, lose=is_root_map)
    large_child_job(cluster)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"x": 1}, blocking=False)
    root = next(filter(is_root_map, published))
    cluster.engine.handle(RecordedDelivery(cluster.engine, dataclasses.replace(root, step="gone")))
    failed = cluster.engine.get_request(cluster.workflow, accepted.request_id)
    assert failed.state == "failed"
    assert failed.error["type"] == "UnknownStep"
    assert failed.error["message"] == (f"workflow {cluster.workflow!r} had no step 'gone' when "
                                       f"the request was accepted")
