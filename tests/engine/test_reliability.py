"""The engine's guarantees under faults: redelivery after a commit, crashes between a commit and
the publish that follows it, lost messages, deadlines, errors of any kind, oversized records.

Each test makes the fault happen at a chosen point (tests/engine/faults.py) and checks the exact
result and how many times each handler ran: a handler that ran twice, a request that hangs or a
wrong count would each fail it.
"""
import time

import gevent
import pytest

from mr.engine.dispatch import INLINE_PAIR_LIMIT_BYTES, PUBLISH_BATCH_BYTES, PUBLISH_BATCH_COUNT
from mr.engine.engine import BUSY_REQUEUE_DELAY_S
from mr.engine.messages import MAP, REDUCE, InvocationMessage
from mr.models import NotFoundError, Request
from mr.models.request import INLINE_LIMIT_BYTES
from tests.engine.faults import (SimulatedCrash, answers_of, intercept_publishes,
                                 redeliver_after_handling, run_log_handler, runs_per_key, signed)
from tests.engine.test_requests import SUM_REDUCER

FAN_OUT = """
yield MrConfigureToMap('leaf')
for name, count in arguments:
    for number in range(count):
        yield '%s%d' % (name, number), number
"""
LEAF = """
yield MrConfigureToReturn()
for key, number in arguments:
    yield 'count', 1
    yield 'sum', number
"""


@pytest.fixture
def run_log(tmp_path):
    """Where the handlers log their runs (tmp_path also holds the data store)."""
    directory = tmp_path / "runs"
    directory.mkdir()
    return str(directory)


def fan_out_job(cluster, log_dir, leaf_body=LEAF):
    """Job ``j``: one child per number below the argument's value; the result counts them."""
    cluster.handler("fan_out", "mapper", run_log_handler(log_dir, "arguments", FAN_OUT))
    cluster.handler("leaf_map", "mapper", run_log_handler(log_dir, "arguments", leaf_body))
    cluster.handler("add", "reducer", run_log_handler(log_dir, "results", SUM_REDUCER))
    cluster.step("leaf", "leaf_map", "add")
    cluster.step("root", "fan_out", "add")
    cluster.job("j", "root")


def expected(children: int) -> dict:
    return {"count": children, "sum": children * (children - 1) // 2}


def assert_ran_once_each(log_dir, children: int, name="c"):
    runs = runs_per_key(log_dir)
    assert runs.pop(name) == 1, "the branching mapper ran again"
    # Every reducer sees the keys count and sum: the leaves' and the root's, once each.
    assert runs.pop("count-sum") == children + 1, "a reducer ran again"
    assert runs == {f"{name}{n}": 1 for n in range(children)}, "a leaf mapper ran again"


def wait_done(cluster, request_id, timeout_s=30):
    finished = cluster.engine.wait(cluster.workflow, request_id, timeout_s)
    assert finished is not None, f"request {request_id} did not finish"
    return finished


def crash_once(monkeypatch, cluster, at) -> list[InvocationMessage]:
    """The worker dies the first time it publishes a message for which ``at`` is true; returns
    the list that receives that message."""
    crashed = []

    def on_publish(message: InvocationMessage) -> bool:
        if not crashed and at(message):
            crashed.append(message)
            raise SimulatedCrash()
        return True

    intercept_publishes(monkeypatch, cluster.engine, on_publish)
    return crashed


def test_a_redelivered_invocation_redoes_only_what_is_left(any_cluster, monkeypatch, run_log):
    cluster = any_cluster
    redeliveries = redeliver_after_handling(monkeypatch, cluster)
    fan_out_job(cluster, run_log)
    request = cluster.run("j", {"c": 12})
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected(12)
    assert_ran_once_each(run_log, 12)
    assert redeliveries and all(answer == ["finish"] for answer in answers_of(redeliveries))
    counter = cluster.engine.kv.get(cluster.engine.keys.completion_count(
        cluster.workflow, request.request_id, request.root_invocation_id))
    assert counter.version == 12, "a completion was counted twice"


def test_a_crash_between_the_branch_commit_and_its_children_loses_nothing(
        any_cluster, monkeypatch, run_log):
    """The worker dies after committing the branch, before publishing the children: the
    redelivered root publishes them, without running its mapper again."""
    cluster = any_cluster
    crashed = crash_once(monkeypatch, cluster,
                         lambda message: message.kind == MAP and bool(message.ancestors))
    fan_out_job(cluster, run_log)
    request = cluster.run("j", {"c": 5})
    assert crashed and request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected(5)
    assert_ran_once_each(run_log, 5)


def test_a_crash_between_publish_batches_publishes_each_child_once(cluster, monkeypatch,
                                                                    run_log):
    """More children than one publish batch holds; the worker dies after the first batch. The
    redelivered branch publishes only the children not yet completed, with the same ids."""
    batches_seen = []

    def crash_on_second_batch(message: InvocationMessage) -> bool:
        if message.kind == MAP and message.ancestors:
            batches_seen.append(message.invocation_id)
            if len(batches_seen) == PUBLISH_BATCH_COUNT + 1:
                raise SimulatedCrash()
        return True

    batches = intercept_publishes(monkeypatch, cluster.engine, crash_on_second_batch)
    fan_out_job(cluster, run_log)
    children = PUBLISH_BATCH_COUNT + 20
    request = cluster.run("j", {"c": children}, timeout_s=120)
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected(children)
    assert_ran_once_each(run_log, children)
    assert all(len(batch) <= PUBLISH_BATCH_COUNT and sum(map(len, batch)) <= PUBLISH_BATCH_BYTES
               for batch in batches)


def test_a_crash_after_the_last_completion_still_reduces_the_parent(any_cluster, monkeypatch,
                                                                    run_log):
    """The last child commits its completion and dies before publishing its parent's reduce:
    its redelivery publishes the reduce, without running the child's handlers again."""
    cluster = any_cluster
    crashed = crash_once(monkeypatch, cluster,
                         lambda message: message.kind == REDUCE and not message.ancestors)
    fan_out_job(cluster, run_log)
    request = cluster.run("j", {"c": 4})
    assert crashed and request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected(4)
    assert_ran_once_each(run_log, 4)


def sweep_after_stall(cluster):
    """Two sweeps, the second as if the request had stalled for the whole stall time."""
    now = time.time()
    cluster.engine.sweeper.sweep(now)
    return cluster.engine.sweeper.sweep(now + cluster.engine.settings.request_stall_s + 1)


def test_a_root_message_lost_after_the_request_was_stored_is_published_again(
        cluster, monkeypatch, run_log):
    lost = []

    def lose_the_root(message: InvocationMessage) -> bool:
        if message.kind == MAP and not message.ancestors and not lost:
            lost.append(message)
            return False
        return True

    intercept_publishes(monkeypatch, cluster.engine, lose_the_root)
    fan_out_job(cluster, run_log)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"c": 3}, blocking=False)
    gevent.sleep(0.5)
    assert cluster.engine.get_request(cluster.workflow, accepted.request_id).state == "running"
    report = sweep_after_stall(cluster)
    assert (report.redriven, report.published) == (1, 1)
    finished = wait_done(cluster, accepted.request_id)
    assert dict(cluster.engine.result(finished)) == expected(3)
    assert_ran_once_each(run_log, 3)


def test_lost_child_messages_are_published_again_and_only_they(cluster, monkeypatch,
                                                               run_log):
    lost = []

    def lose_odd_children(message: InvocationMessage) -> bool:
        if message.kind == MAP and message.ancestors and not message.redelivered and \
                message.pair[1] % 2:
            lost.append(message.invocation_id)
            return False
        return True

    intercept_publishes(monkeypatch, cluster.engine, lose_odd_children)
    fan_out_job(cluster, run_log)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"c": 10}, blocking=False)
    deadline = time.monotonic() + 20
    while len(runs_per_key(run_log)) < 1 + 5 + 1 and time.monotonic() < deadline:
        gevent.sleep(0.1)  # the root, the five even children, and their reducer log
    gevent.sleep(0.5)
    report = sweep_after_stall(cluster)
    assert len(lost) == 5 and report.published == 5
    finished = wait_done(cluster, accepted.request_id)
    assert dict(cluster.engine.result(finished)) == expected(10)
    assert_ran_once_each(run_log, 10)


def test_the_sweeper_leaves_alone_what_a_live_worker_is_running(cluster, run_log):
    fan_out_job(cluster, run_log, leaf_body="import time\ntime.sleep(2.5)\n" + LEAF)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"c": 1}, blocking=False)
    gevent.sleep(1.5)  # past the first touch of the leaf's message: it is marked active
    report = sweep_after_stall(cluster)
    assert (report.redriven, report.published) == (1, 0)
    finished = wait_done(cluster, accepted.request_id)
    assert dict(cluster.engine.result(finished)) == expected(1)
    assert_ran_once_each(run_log, 1)


def test_one_sweeper_at_a_time(cluster, second_worker):
    first = cluster.engine.sweeper
    other = second_worker(("general",)).engine.sweeper
    deadline = time.monotonic() + 10
    while not (first.lead() or other.lead()) and time.monotonic() < deadline:
        gevent.sleep(0.1)
    assert first.lead() != other.lead()
    leader, follower = (first, other) if first.lead() else (other, first)
    leader.stop()  # gives its lease back: the other takes over at once
    assert follower.lead()
    assert not leader.lead()


def slow_job(cluster, seconds: float, deadline_s: float | None = None):
    cluster.handler("slow", "mapper", f"import time\ntime.sleep({seconds})\n"
                                      f"yield MrConfigureToReturn()\nyield 'x', 1\n")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("s", "slow", "add")
    from mr.models import Job
    cluster.store.create(Job(workflow=cluster.workflow, name="j", description="slow",
                             initial_step_name="s", deadline_s=deadline_s))


def test_a_blocking_client_gets_the_deadline_failure_at_the_deadline(cluster):
    slow_job(cluster, 4)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"a": 1}, blocking=True,
                                     deadline_s=0.5)
    started = time.monotonic()
    finished = cluster.engine.wait(cluster.workflow, accepted.request_id, 30)
    assert time.monotonic() - started < 3.5, "the wait went on past the deadline"
    assert finished.state == "failed" and finished.error["type"] == "DeadlineExceeded"
    assert "0.5 s" in finished.error["message"]


def test_the_sweeper_fails_requests_past_their_deadline(cluster):
    slow_job(cluster, 4, deadline_s=0.3)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"a": 1}, blocking=False)
    assert accepted.deadline - accepted.created_at == pytest.approx(0.3, abs=0.05)
    report = cluster.engine.sweeper.sweep(time.time() + 1)
    assert report.expired == 1
    failed = cluster.engine.get_request(cluster.workflow, accepted.request_id)
    assert failed.state == "failed" and failed.error["type"] == "DeadlineExceeded"


def test_the_cluster_default_deadline_applies_when_nothing_else_says(cluster):
    slow_job(cluster, 0)
    request = cluster.run("j", {"a": 1})
    allowed = request.deadline - request.created_at
    assert allowed == pytest.approx(cluster.engine.settings.request_deadline_s, abs=1)


def test_an_unexpected_error_is_an_attempt_and_the_last_fails_the_request(cluster,
                                                                          monkeypatch):
    cluster.engine.settings = cluster.engine.settings.with_overrides(invocation_max_attempts=3)
    slow_job(cluster, 0)
    get_pairs = cluster.engine.data.get_pairs
    tries = []

    def broken(path):
        if "/arguments-" in path:
            tries.append(path)
            raise RuntimeError("disk on fire")
        return get_pairs(path)

    monkeypatch.setattr(cluster.engine.data, "get_pairs", broken)
    request = cluster.run("j", {"a": "x" * INLINE_LIMIT_BYTES})  # read from the data store
    assert len(tries) == 3
    assert request.state == "failed" and request.failed_invocation_id == \
        request.root_invocation_id
    assert request.error["type"] == "RuntimeError"
    assert request.error["message"] == (f"invocation {request.root_invocation_id} gave up after "
                                        f"3 attempts; the last failed with: disk on fire")


def test_an_error_while_recording_a_failure_is_retried(cluster, monkeypatch):
    cluster.handler("m", "mapper", "raise ValueError('mine')\nyield MrConfigureToReturn()\n")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("s", "m", "add")
    cluster.job("j", "s")
    finish = cluster.engine.finish
    refused = []

    def refuse_first_failure(request, state, **changes):
        if state == "failed" and not refused:
            refused.append(state)
            raise ValueError("etcdserver: request is too large")
        return finish(request, state, **changes)

    monkeypatch.setattr(cluster.engine, "finish", refuse_first_failure)
    request = cluster.run("j", {"a": 1})
    assert refused and request.state == "failed" and request.error["message"] == "mine"


def test_failure_records_always_fit(cluster):
    cluster.handler("m", "mapper", """
import sys
sys.stdout.write('o' * 3000000)
sys.stderr.write('e' * 3000000)
raise RuntimeError('x' * 5000000)
yield MrConfigureToReturn()
""")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("s", "m", "add")
    cluster.job("j", "s")
    request = cluster.run("j", {"a": 1})
    assert request.state == "failed" and request.error["type"] == "RuntimeError"
    stored = cluster.engine.kv.get(cluster.engine.request_key(request))
    assert len(stored.value) < 1024 * 1024
    for field in ("message", "stdout", "stderr"):
        assert "truncated" in request.error[field]
    for field in ("stdout", "stderr"):  # how much the handler wrote stays known
        assert request.error[field].endswith("[mr: output truncated: 3000000 bytes written, "
                                             "the first 1048576 kept]")
        assert request.error[field].startswith({"message": "xxx", "stdout": "ooo",
                                                "stderr": "eee"}[field])


def test_a_session_too_large_for_the_kv_fails_clearly(cluster):
    cluster.handler("m", "mapper", "S_SET('big', 'x' * 1700000)\nyield MrConfigureToReturn()\n"
                                   "yield 'a', 1\n")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("s", "m", "add")
    cluster.job("j", "s")
    request = cluster.run("j", {"a": 1})
    assert request.state == "failed" and request.error["type"] == "SessionTooLarge"
    assert request.root_invocation_id in request.error["message"]


def test_large_child_arguments_travel_by_reference(cluster, monkeypatch):
    published = []
    intercept_publishes(monkeypatch, cluster.engine,
                        lambda message: published.append(message) or True)
    cluster.handler("split", "mapper", "yield MrConfigureToMap('leaf')\n"
                                       "for name, size in arguments:\n"
                                       "    yield name, 'y' * size\n")
    cluster.handler("size", "mapper", "yield MrConfigureToReturn()\n"
                                      "for name, text in arguments:\n"
                                      "    yield name, len(text)\n")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("leaf", "size", "add")
    cluster.step("root", "split", "add")
    cluster.job("j", "root")
    sizes = {"small": 10, "large": INLINE_PAIR_LIMIT_BYTES + 10}
    request = cluster.run("j", sizes)
    assert dict(cluster.engine.result(request)) == sizes
    children = {message.pair[0] if message.pair else "large": message
                for message in published if message.ancestors}
    assert children["small"].data_ref is None and children["small"].pair == ["small", "y" * 10]
    assert children["large"].pair is None and children["large"].data_ref is not None


def test_messages_of_a_finished_request_run_nothing(cluster, monkeypatch, run_log):
    published = []
    intercept_publishes(monkeypatch, cluster.engine,
                        lambda message: published.append(message) or True)
    fan_out_job(cluster, run_log)
    request = cluster.run("j", {"c": 3})
    assert request.state == "done"
    runs_before = runs_per_key(run_log)
    deliveries = [_Delivery(signed(cluster.engine, message)) for message in published]
    for delivery in deliveries:
        cluster.engine.handle(delivery)
    assert runs_per_key(run_log) == runs_before
    assert all(delivery.requeued == [] for delivery in deliveries)
    assert cluster.engine.get_request(cluster.workflow, request.request_id).state == "done"


class _Delivery:
    """A first delivery of a message, handled directly by the engine."""
    id = "direct"
    attempts = 1

    def __init__(self, body: bytes):
        self.body = body
        self.requeued = []

    def requeue(self, delay_s=0.0):
        self.requeued.append(delay_s)

    def touch(self):
        pass


def test_request_records_carry_what_the_sweeper_needs(cluster):
    slow_job(cluster, 0)
    small = cluster.engine.submit(cluster.workflow, "j", {"a": 1}, blocking=False)
    large = cluster.engine.submit(cluster.workflow, "j", {"a": "x" * INLINE_LIMIT_BYTES},
                                  blocking=False)
    stored = cluster.engine.store.get(Request, cluster.workflow, small.request_id)
    assert stored.root_step == "s"
    assert stored.arguments == [["a", 1]]
    stored = cluster.engine.store.get(Request, cluster.workflow, large.request_id)
    assert cluster.engine.data.get_pairs(stored.arguments_ref) == [
        ["a", "x" * INLINE_LIMIT_BYTES]]


def test_a_message_that_finds_no_free_slot_goes_back_to_the_queue(cluster, run_log):
    """A worker never holds a message longer than half its timeout waiting for a slot."""
    fan_out_job(cluster, run_log, leaf_body="import time\ntime.sleep(3)\n" + LEAF)
    engine = cluster.engine
    accepted = engine.submit(cluster.workflow, "j", {"c": 1}, blocking=False)
    for _ in range(engine.concurrency):
        engine._slots.acquire()
    try:
        delivery = _Delivery(signed(engine, engine.dispatch.root(accepted)))
        started = time.monotonic()
        engine.handle(delivery)
        waited = time.monotonic() - started
    finally:
        for _ in range(engine.concurrency):
            engine._slots.release()
    assert delivery.requeued == [BUSY_REQUEUE_DELAY_S]
    assert waited < engine.settings.message_timeout_s


def test_removal_outlives_a_request_it_cannot_remove(cluster, monkeypatch):
    """One request whose data cannot be deleted is retried later; the others go meanwhile."""
    slow_job(cluster, 0)
    engine = cluster.engine
    engine.sweeper.stop()  # this test runs the removal passes itself
    engine.settings = engine.settings.with_overrides(result_retention_s=0.0)
    requests = [engine.submit(cluster.workflow, "j", {"a": 1}, blocking=False)
                for _ in range(3)]
    for request in requests:
        wait_done(cluster, request.request_id)
    stuck = requests[0].request_id
    delete_tree = engine.data.delete_tree

    def refuse_one(prefix):
        if prefix.endswith(stuck):
            raise RuntimeError("the disk says no")
        return delete_tree(prefix)

    monkeypatch.setattr(engine.data, "delete_tree", refuse_one)
    assert engine.cleaner.remove_due() == 2
    assert engine.get_request(cluster.workflow, stuck).state == "done"
    assert engine.cleaner.remove_due() == 0  # not tried again before its pause is over
    monkeypatch.setattr(engine.data, "delete_tree", delete_tree)
    gevent.sleep(1.1)
    assert engine.cleaner.remove_due() == 1
    with pytest.raises(NotFoundError):
        engine.get_request(cluster.workflow, stuck)


def test_removal_forgets_a_failed_request_once_another_process_removed_it(cluster, monkeypatch):
    slow_job(cluster, 0)
    engine = cluster.engine
    engine.sweeper.stop()
    engine.settings = engine.settings.with_overrides(result_retention_s=0.0)
    stuck = wait_done(cluster, engine.submit(cluster.workflow, "j", {"a": 1},
                                             blocking=False).request_id)
    delete_tree = engine.data.delete_tree
    monkeypatch.setattr(engine.data, "delete_tree", lambda prefix: 1 / 0)
    assert engine.cleaner.remove_due() == 0 and len(engine.cleaner._retries) == 1
    monkeypatch.setattr(engine.data, "delete_tree", delete_tree)
    engine.release(stuck)  # e.g. a front end that delivered its result
    assert engine.cleaner.remove_due() == 0
    assert engine.cleaner._retries == {}  # nothing kept of what is gone
