"""The guarantees of docs/engine.rst, each checked at the point where it can fail: what a
redelivery, a duplicate or the sweeper publishes again, what a request records and leaves
behind, how workers answer the messages they cannot or need not run.

The faults are made at chosen points (tests/engine/faults.py), so every outcome is exact. These
tests were written to catch the mutants that the other tests let through (scripts/mutation).
"""
import collections
import contextlib
import dataclasses
import time
import types

import gevent
import gevent.event
import pytest

from mr import codec
from mr.engine import tracker as tracker_module
from mr.engine.dispatch import child_id
from mr.engine.engine import FAILURE_RECORD_LIMIT_BYTES, Engine
from mr.engine.messages import MAP, REDUCE, InvocationMessage
from mr.engine.tracker import RequestTracker
from mr.engine.tree import SESSION_LIMIT_BYTES
from mr.executor import ExecutorPool
from mr.kv.base import Get, KVError
from mr.models import Handler, Invocation, NotFoundError, Request, Session
from mr.models.keys import Keys
from mr.models.names import topic_name
from mr.models.request import INLINE_LIMIT_BYTES
from mr.queue.base import failure_backoff_s, run_handler
from tests.engine.conftest import start_cluster
from tests.engine.faults import (Redelivery, SimulatedCrash, intercept_publishes,
                                 redeliver_after_handling, run_log_handler, runs_per_key, signed)
from tests.engine.test_delivery import publish_everything_twice
from tests.engine.test_reliability import (FAN_OUT, LEAF, assert_ran_once_each, expected,
                                           fan_out_job, run_log, slow_job, sweep_after_stall,
                                           wait_done)
from tests.engine.test_requests import SUM_REDUCER
from tests.engine.test_tracker import store as store_request

__all__ = ["run_log"]  # a fixture of test_reliability, used here too

FIRST_VALUES = "for key, values in results:\n    yield key, values[0]\n"
TOP = """
yield MrConfigureToMap('middle')
for name, count in arguments:
    for number in range(count):
        yield '%s%d' % (name, number), number + 1
"""


def until(what: str, condition, timeout_s=20.0):
    """Wait, letting the worker run, until ``condition()`` holds; fail after ``timeout_s``."""
    with gevent.Timeout(timeout_s, AssertionError(f"not {what} within {timeout_s:g} s")):
        while not condition():
            gevent.sleep(0.02)


@contextlib.contextmanager
def running(second_worker, capability: str):
    """A second worker, offering only ``capability``, while the block runs."""
    worker = second_worker((capability,))
    try:
        yield
    finally:
        worker.stop(timeout=2)


def record_publishes(monkeypatch, cluster, lose=lambda message: False) -> list:
    """Every message the cluster publishes from now on; those ``lose`` picks are lost."""
    published = []

    def record(message: InvocationMessage) -> bool:
        published.append(message)
        return not lose(message)

    intercept_publishes(monkeypatch, cluster.engine, record)
    return published


def crash_on_first(monkeypatch, cluster, at) -> tuple[list, list]:
    """The worker dies publishing the first message (not a redelivered one) that ``at`` picks;
    returns every message published and the one it died on."""
    crashed = []

    def crash(message: InvocationMessage) -> bool:
        if not (crashed or message.redelivered) and at(message):
            crashed.append(message)
            raise SimulatedCrash()
        return False

    return record_publishes(monkeypatch, cluster, lose=crash), crashed


def leaf_job(cluster, mapper: str, reducer: str = SUM_REDUCER):
    """Job ``j``: one step, mapper ``m`` and reducer ``add``."""
    cluster.handler("m", "mapper", mapper)
    cluster.handler("add", "reducer", reducer)
    cluster.step("s", "m", "add")
    cluster.job("j", "s")


def is_root_map(message: InvocationMessage) -> bool:
    return message.kind == MAP and not message.ancestors


def three_level_job(cluster):
    """Job ``t``: {"m": 2} branches to middles m0 (one leaf) and m1 (two leaves)."""
    cluster.handler("top", "mapper", TOP)
    cluster.handler("middle_map", "mapper", FAN_OUT)
    cluster.handler("leaf_map", "mapper", LEAF)
    cluster.handler("add", "reducer", SUM_REDUCER)
    for step, mapper in [("top", "top"), ("middle", "middle_map"), ("leaf", "leaf_map")]:
        cluster.step(step, mapper, "add")
    cluster.job("t", "top")


def completions(cluster, request_id, parent_id) -> int:
    keys = cluster.engine.keys
    return cluster.engine.kv.range(keys.completions(cluster.workflow, request_id, parent_id),
                                   prefix=True, count_only=True).count


def deliver_again(cluster, message: InvocationMessage) -> Redelivery:
    """Hand ``message`` to the engine as a second delivery, as the queue does after a crash."""
    again = Redelivery(types.SimpleNamespace(id="again", body=signed(cluster.engine, message),
                                              attempts=1))
    run_handler(cluster.engine.handle, again)
    return again


class RecordedDelivery:
    """A delivery of ``message`` handed to the engine directly; its requeues are recorded."""
    id = "recorded"

    def __init__(self, engine: Engine, message: InvocationMessage, attempts: int = 1):
        self.body, self.attempts = signed(engine, message), attempts
        self.requeued: list[float] = []

    def requeue(self, delay_s=0.0):
        self.requeued.append(delay_s)

    def touch(self):
        pass


@dataclasses.dataclass
class Handled:
    """One delivery the worker handled: its attempt, whether the engine's handling returned,
    and whether it requeued the message (the only answer the engine itself gives)."""
    attempts: int
    returned: bool = False
    requeued: bool = False


def watch_handling(monkeypatch, cluster) -> list[Handled]:
    """What becomes of each delivery that the cluster's worker handles from now on."""
    handled, handle = [], cluster.engine.handle

    def watching(message):
        delivery = Handled(message.attempts)
        handled.append(delivery)
        handle(message)
        delivery.returned, delivery.requeued = True, message.has_responded

    monkeypatch.setattr(cluster.engine, "handle", watching)
    cluster.restart_worker()
    return handled


def long_leaf_request(cluster, run_log, seconds: float):
    """A request whose one leaf runs ``seconds``; its id and a reader of its active marks."""
    fan_out_job(cluster, run_log, leaf_body=f"import time\ntime.sleep({seconds})\n" + LEAF)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"c": 1}, blocking=False)
    active = cluster.engine.keys.active(cluster.workflow, accepted.request_id)
    return accepted.request_id, lambda: cluster.engine.kv.range(active, prefix=True).kvs


# What is published again, and what is not


def test_a_redelivered_branch_publishes_only_the_children_that_have_not_completed(
        cluster, monkeypatch, run_log):
    """The branch published its children and died before recording it; meanwhile some children
    completed. Its redelivery publishes the others, and only them; a further delivery publishes
    nothing again."""
    published = record_publishes(monkeypatch, cluster, lose=lambda message: (
        message.kind == MAP and message.ancestors and not message.redelivered
        and message.pair[1] % 2))
    fan_out_job(cluster, run_log)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"c": 6}, blocking=False)
    root_id = accepted.root_invocation_id
    until("the three even children completed",
          lambda: completions(cluster, accepted.request_id, root_id) == 3)
    cluster.engine.kv.delete(cluster.engine.keys.published(
        cluster.workflow, accepted.request_id, root_id, "children"))
    root = next(message for message in published if is_root_map(message))
    lost = {message.invocation_id for message in published
            if message.ancestors and message.pair[1] % 2}

    def published_again():
        return {(message.kind, message.invocation_id) for message in published
                if message.redelivered}

    def maps_published() -> int:  # the children publish the root's reduce meanwhile
        return sum(1 for message in published if message.kind == MAP)

    assert deliver_again(cluster, root).responses == ["finish"]
    assert len(lost) == 3 and published_again() == {(MAP, child) for child in lost}
    count = maps_published()
    assert deliver_again(cluster, root).responses == ["finish"]
    assert maps_published() == count, "a further delivery published again"
    finished = wait_done(cluster, accepted.request_id)
    assert dict(cluster.engine.result(finished)) == expected(6)
    assert_ran_once_each(run_log, 6)


def test_a_crash_before_a_leaf_published_its_reduce_for_another_capability_loses_nothing(
        cluster, second_worker, monkeypatch, run_log):
    """The leaf committed its combined pairs and died publishing the reduce that a worker of
    another capability runs: its redelivery publishes that reduce, over the same pairs, without
    running the mapper again; a further delivery publishes nothing again."""
    published, crashed = crash_on_first(monkeypatch, cluster,
                                        lambda message: message.kind == REDUCE)

    def published_again():
        return [message for message in published if message.redelivered]

    cluster.handler("m", "mapper", run_log_handler(run_log, "arguments", LEAF))
    cluster.handler("big_add", "reducer", SUM_REDUCER, capability="bigmem")
    cluster.step("s", "m", "big_add")
    cluster.job("j", "s")
    accepted = cluster.engine.submit(cluster.workflow, "j", {"a": 1, "b": 2}, blocking=False)
    until("the reduce published again", published_again)
    root = next(message for message in published if is_root_map(message))
    marker = cluster.engine.keys.published(cluster.workflow, accepted.request_id,
                                           root.invocation_id, "reduce")
    until("the publication recorded", lambda: cluster.engine.kv.get(marker))  # it follows
    assert deliver_again(cluster, root).responses == ["finish"]
    with running(second_worker, "bigmem"):
        request = wait_done(cluster, accepted.request_id)
    assert dict(cluster.engine.result(request)) == {"count": 2, "sum": 3}
    assert [(again.invocation_id, again.data_ref) for again in published_again()] == [
        (crashed[0].invocation_id, crashed[0].data_ref)] and crashed[0].data_ref
    assert runs_per_key(run_log) == {"a-b": 1}


def test_a_redelivery_publishes_nothing_that_was_published(cluster, second_worker,
                                                            monkeypatch):
    """Every message is handled a second time after its first handling finished: no
    redelivery publishes anything again, the reduces on another capability included (their
    worker starts once every map was handled twice, so none is reduced before)."""
    redeliveries = redeliver_after_handling(monkeypatch, cluster)
    published = record_publishes(monkeypatch, cluster)
    cluster.handler("fan_out", "mapper", FAN_OUT)
    cluster.handler("m", "mapper", LEAF)
    cluster.handler("big_add", "reducer", SUM_REDUCER, capability="bigmem")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("leaf", "m", "big_add")
    cluster.step("root", "fan_out", "add")
    cluster.job("j", "root")
    accepted = cluster.engine.submit(cluster.workflow, "j", {"c": 3}, blocking=False)
    until("every map handled twice",
          lambda: sum(bool(again.responses) for again in redeliveries) == 1 + 3)
    with running(second_worker, "bigmem"):
        request = wait_done(cluster, accepted.request_id)
    assert dict(cluster.engine.result(request)) == expected(3)
    assert all(again.responses == ["finish"] for again in redeliveries)
    assert not [message for message in published if message.redelivered], "published again"
    assert collections.Counter(kind for kind, _ in {
        (message.kind, message.invocation_id) for message in published}) == {
        MAP: 1 + 3, REDUCE: 3 + 1}


def test_the_reduce_a_redelivered_last_child_publishes_is_marked_redelivered(cluster,
                                                                            monkeypatch):
    """The last leaf of a middle branch completed it and died publishing its reduce; its
    redelivery publishes that reduce marked as published again, so that a copy handled after
    the first looks for its commit before running the reducer."""
    published, crashed = crash_on_first(
        monkeypatch, cluster, lambda message: message.kind == REDUCE and message.ancestors)
    three_level_job(cluster)
    request = cluster.run("t", {"m": 2})
    assert crashed and request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == {"count": 3, "sum": 1}
    assert [(again.invocation_id, again.ancestors) for again in published
            if again.redelivered] == [(crashed[0].invocation_id, crashed[0].ancestors)]


def test_the_sweeper_publishes_a_lost_reduce_again(cluster, monkeypatch):
    """A middle branch's last child completed it, and the reduce it published was lost: the
    sweeper publishes that reduce again, under its ancestors, and nothing else."""
    lost = []

    def lose_a_middle_reduce(message: InvocationMessage) -> bool:
        if message.kind == REDUCE and message.ancestors and not (lost or message.redelivered):
            lost.append(message)
            return True
        return False

    published = record_publishes(monkeypatch, cluster, lose=lose_a_middle_reduce)
    three_level_job(cluster)
    accepted = cluster.engine.submit(cluster.workflow, "t", {"m": 2}, blocking=False)
    until("the other middle completed", lambda: lost and completions(
        cluster, accepted.request_id, accepted.root_invocation_id) == 1)
    report = sweep_after_stall(cluster)
    assert (report.redriven, report.published) == (1, 1)
    assert [(again.kind, again.invocation_id, again.step, again.ancestors, again.data_ref)
            for again in published if again.redelivered] == [
        (REDUCE, lost[0].invocation_id, "middle", lost[0].ancestors, None)]
    finished = wait_done(cluster, accepted.request_id)
    assert dict(cluster.engine.result(finished)) == {"count": 3, "sum": 1}


# Duplicates


def test_a_map_message_delivered_twice_commits_once(cluster, monkeypatch, run_log):
    """Two first deliveries of the root: both may run its mapper, but only the first commit
    counts, so its children are published, and run, once."""
    queue = cluster.engine.queue
    published = record_publishes(monkeypatch, cluster)
    fan_out_job(cluster, run_log)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"c": 4}, blocking=False)
    queue.publish(topic_name(cluster.workflow, MAP, "general"),
                  signed(cluster.engine, published[0]))
    request = wait_done(cluster, accepted.request_id)
    assert dict(cluster.engine.result(request)) == expected(4)
    runs = runs_per_key(run_log)
    assert runs.pop("c") in (1, 2)
    assert runs == {"count-sum": 4 + 1, **{f"c{n}": 1 for n in range(4)}}


def test_a_duplicated_message_is_dropped_without_a_retry(cluster, monkeypatch, run_log):
    """Every message published twice: the copy whose commit is refused learns why from the same
    transaction and is done, rather than failing an attempt and coming back."""
    handled = watch_handling(monkeypatch, cluster)
    publish_everything_twice(monkeypatch, cluster.engine.queue)
    fan_out_job(cluster, run_log)
    request = cluster.run("j", {"c": 3})
    assert dict(cluster.engine.result(request)) == expected(3)
    assert not [delivery for delivery in handled if delivery.requeued]


def test_the_twin_of_a_last_child_publishes_the_reduce_that_was_lost(cluster, monkeypatch,
                                                                     run_log):
    """Every child is delivered twice at once; the copy that completed the parent lost the
    reduce it published. Its twin, whose commit is refused, sees from the counter that the
    other copy completed the parent and publishes the reduce again: nothing waits for the
    sweeper."""
    queue, twinned, lost = cluster.engine.queue, set(), []

    def twin_children_and_lose_the_reduce(message: InvocationMessage) -> bool:
        if message.kind == MAP and message.ancestors and message.invocation_id not in twinned:
            twinned.add(message.invocation_id)
            queue.publish(topic_name(cluster.workflow, MAP, "general"),
                          signed(cluster.engine, message))
        if message.kind == REDUCE and not (lost or message.redelivered):
            lost.append(message)
            return True
        return False

    published = record_publishes(monkeypatch, cluster, lose=twin_children_and_lose_the_reduce)
    fan_out_job(cluster, run_log)
    request = cluster.run("j", {"c": 2}, timeout_s=10)
    assert dict(cluster.engine.result(request)) == expected(2)
    assert [again.invocation_id for again in published
            if again.kind == REDUCE and again.redelivered] == [lost[0].invocation_id]


def test_children_that_keep_a_session_are_counted_like_the_others(cluster, run_log):
    """A child's session is committed with its completion, in the transaction that counts it:
    the parent's reduce still runs once, after the last child."""
    fan_out_job(cluster, run_log, leaf_body="S_SET('seen', len(arguments))\n" + LEAF)
    request = cluster.run("j", {"c": 3}, timeout_s=10)
    assert dict(cluster.engine.result(request)) == expected(3)
    assert_ran_once_each(run_log, 3)


# How workers answer messages


def test_without_faults_every_message_is_handled_once(cluster, monkeypatch, run_log):
    """No retry hides a failure: a branch with zero children, like every other invocation, is
    done at its first delivery."""
    handled = watch_handling(monkeypatch, cluster)
    fan_out_job(cluster, run_log)
    empty = cluster.run("j", {"c": 0})
    assert empty.state == "done" and cluster.engine.result(empty) == []
    assert [delivery.attempts for delivery in handled] == [1, 1], "the root's map and reduce"
    full = cluster.run("j", {"c": 2})
    assert dict(cluster.engine.result(full)) == expected(2)
    assert [delivery.attempts for delivery in handled] == [1] * (2 + 1 + 2 + 1)


def test_a_first_delivery_does_not_look_for_an_earlier_commit(cluster, monkeypatch, run_log):
    """Only a redelivery reads its invocation's commit before running: the common path costs
    no extra round trip."""
    handled = watch_handling(monkeypatch, cluster)
    kv, looks = cluster.engine.kv, []
    txn = kv.txn

    def recording_txn(compares, success=(), failure=()):
        handling = any(not delivery.returned for delivery in handled)
        if handling and not compares and all(isinstance(read, Get) for read in success):
            looks.append(success)
        return txn(compares, success, failure)

    monkeypatch.setattr(kv, "txn", recording_txn)
    fan_out_job(cluster, run_log)
    request = cluster.run("j", {"c": 2})
    assert dict(cluster.engine.result(request)) == expected(2)
    assert looks == []


def test_a_failed_attempt_goes_back_to_the_queue_after_a_growing_backoff(cluster,
                                                                         monkeypatch):
    """An error outside the handler (the data store, here) requeues the message with the
    backoff of its attempt, not at once, so a backend that is down is not hammered; so does the
    last attempt when the failure of the request cannot be recorded yet."""
    cluster.engine.settings = cluster.engine.settings.with_overrides(invocation_max_attempts=3)
    roots = record_publishes(monkeypatch, cluster, lose=is_root_map)
    slow_job(cluster, 0)
    # arguments too large to ride inline: the root reads them from the data store
    accepted = cluster.engine.submit(cluster.workflow, "j", {"a": "x" * INLINE_LIMIT_BYTES},
                                     blocking=False)

    def data_store_down(path):
        raise RuntimeError("the data store is down")

    monkeypatch.setattr(cluster.engine.data, "get_pairs", data_store_down)
    finish, refused = cluster.engine.finish, []

    def kv_refuses_once(request, state, **changes):
        if not refused:
            refused.append(state)
            raise RuntimeError("etcd is away too")
        return finish(request, state, **changes)

    monkeypatch.setattr(cluster.engine, "finish", kv_refuses_once)
    delays = []
    for attempt in (1, 2, 3, 3):
        delivery = RecordedDelivery(cluster.engine, roots[0], attempt)
        cluster.engine.handle(delivery)
        delays += delivery.requeued
    assert delays == [failure_backoff_s(1), failure_backoff_s(2), failure_backoff_s(3)]
    assert 0 < delays[0] < delays[1] < delays[2]
    failed = cluster.engine.get_request(cluster.workflow, accepted.request_id)
    assert refused and failed.state == "failed" and failed.error["message"].endswith(
        "gave up after 3 attempts; the last failed with: the data store is down")


def test_a_message_of_a_request_past_its_deadline_runs_nothing(cluster, monkeypatch, run_log):
    """The request is failed there and then, before any handler runs, even when the sweeper
    has not got to it."""
    cluster.engine.sweeper.stop()
    roots = record_publishes(monkeypatch, cluster, lose=is_root_map)
    fan_out_job(cluster, run_log)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"c": 1}, blocking=False,
                                     deadline_s=0.1)
    until("past the deadline", lambda: time.time() > accepted.deadline)
    cluster.engine.handle(RecordedDelivery(cluster.engine, roots[0]))
    failed = cluster.engine.get_request(cluster.workflow, accepted.request_id)
    assert failed.state == "failed" and failed.error["type"] == "DeadlineExceeded"
    assert runs_per_key(run_log) == {}


def test_the_leftover_messages_of_a_finished_request_cost_no_kv_read(cluster, monkeypatch,
                                                                    run_log):
    """Every process knows from its watch which requests finished: their messages are dropped
    without a round trip to the KV each."""
    published = record_publishes(monkeypatch, cluster)
    fan_out_job(cluster, run_log)
    request = cluster.run("j", {"c": 3})
    until("the request seen finished",
          lambda: cluster.engine.requests.is_finished(cluster.workflow, request.request_id))
    cluster.engine.sweeper.stop()  # its own reads are not the messages'
    kv, reads = cluster.engine.kv, []
    for method in ("get", "range", "txn"):
        monkeypatch.setattr(kv, method, lambda *args, read=getattr(kv, method), **kwargs:
                            reads.append(args) or read(*args, **kwargs))
    for message in published:
        delivery = RecordedDelivery(cluster.engine, message)
        cluster.engine.handle(delivery)
        assert delivery.requeued == []
    assert reads == []


def test_a_message_of_a_finished_request_no_longer_remembered_runs_nothing(cluster,
                                                                          monkeypatch,
                                                                          run_log):
    """A process remembers only so many finished requests; past those, it reads the record."""
    monkeypatch.setattr(tracker_module, "FINISHED_REMEMBERED", 0)
    published = record_publishes(monkeypatch, cluster)
    fan_out_job(cluster, run_log)
    cluster.run("j", {"c": 2})
    runs = runs_per_key(run_log)
    for message in published:
        cluster.engine.handle(RecordedDelivery(cluster.engine, message))
    assert runs_per_key(run_log) == runs


def test_an_invocation_stopped_because_its_request_failed_is_answered(cluster, monkeypatch):
    """A failure stops its running siblings; their messages are then finished, not left to
    come back after their timeout."""
    handled = watch_handling(monkeypatch, cluster)
    cluster.handler("fan_out", "mapper", "yield MrConfigureToMap('child')\n"
                                         "yield 'slow', 1\nyield 'fails', 1\n")
    cluster.handler("child_map", "mapper", "import time\nname, _ = arguments[0]\n"
                                           "if name == 'fails':\n"
                                           "    time.sleep(0.5)\n"
                                           "    raise RuntimeError('the fast failure')\n"
                                           "time.sleep(30)\nyield MrConfigureToReturn()\n")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("child", "child_map", "add")
    cluster.step("root", "fan_out", "add")
    cluster.job("j", "root")
    failed = cluster.run("j", {"a": 1}, timeout_s=20)
    assert failed.error["message"] == "the fast failure"
    until("every invocation answered", lambda: len(handled) == 3 and all(
        delivery.returned and not delivery.requeued for delivery in handled), timeout_s=5)


# Long invocations and the lease they are marked on


def test_a_long_invocation_is_left_alone_while_it_runs_and_unmarked_when_it_ends(cluster,
                                                                                 run_log):
    request_id, marks = long_leaf_request(cluster, run_log, 1.5)
    until("the leaf marked active", marks)
    assert sweep_after_stall(cluster).published == 0
    assert dict(cluster.engine.result(wait_done(cluster, request_id))) == expected(1)
    until("the mark removed", lambda: not marks())


def test_the_mark_of_a_long_invocation_ends_with_its_workers_lease(cluster, run_log):
    """A worker that dies stops renewing its lease: the marks on it go, and the sweeper
    publishes their invocations again."""
    request_id, marks = long_leaf_request(cluster, run_log, 2)
    until("the leaf marked active", marks)
    cluster.engine.kv.revoke_lease(marks()[0].lease)
    assert marks() == []
    assert sweep_after_stall(cluster).published == 1
    assert dict(cluster.engine.result(wait_done(cluster, request_id))) == expected(1)


def test_a_stopping_worker_gives_its_marks_up_at_once(cluster, run_log):
    """A worker stopped while an invocation runs revokes its lease, so the sweeper need not
    wait for the lease to expire before publishing that invocation again."""
    _, marks = long_leaf_request(cluster, run_log, 2)
    until("the leaf marked active", marks)
    cluster.worker.stop(timeout=0)
    cluster.engine.stop()
    assert marks() == []


def test_a_worker_stops_even_when_the_kv_refuses_to_revoke_its_lease(cluster, run_log,
                                                                      monkeypatch):
    """Its marks then last until the lease expires."""
    _, marks = long_leaf_request(cluster, run_log, 2)
    until("the leaf marked active", marks)

    def unreachable(lease_id):
        raise KVError("etcd is away")

    monkeypatch.setattr(cluster.engine.kv, "revoke_lease", unreachable)
    cluster.worker.stop(timeout=0)
    cluster.engine.stop()
    assert len(marks()) == 1


# Deadlines and waits


def test_a_blocking_client_is_answered_at_the_deadline_without_the_sweeper(cluster):
    """The front end does not rely on the sweeper: its wait ends at the request's deadline,
    and it fails the request itself."""
    cluster.engine.sweeper.stop()
    slow_job(cluster, 4)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"a": 1}, blocking=True,
                                     deadline_s=0.3)
    finished = cluster.engine.wait(cluster.workflow, accepted.request_id, 10)
    assert finished.state == "failed" and finished.error["type"] == "DeadlineExceeded"


def test_waiting_for_a_request_that_does_not_exist_says_so(cluster):
    slow_job(cluster, 0)
    missing = "0" * 32
    with pytest.raises(NotFoundError) as refused:
        cluster.engine.wait(cluster.workflow, missing, 1)
    assert str(refused.value) == (f"request '{missing}' of workflow '{cluster.workflow}' no "
                                  f"longer exists")


def test_a_request_removed_while_running_is_known_gone_without_a_read(kv, kv_prefix):
    """``mr request cleanup`` may remove a running request: every process sees it go, skips
    its leftover messages without reading the KV, and no longer serves it from its cache."""
    keys = Keys(kv_prefix)
    request_id = store_request(kv, keys, "running")
    tracker = RequestTracker(kv, keys)
    gone = gevent.event.Event()
    tracker.on_finish.append(lambda workflow, finished_id: gone.set())
    tracker.start("w")
    try:
        assert tracker.get("w", request_id).state == "running"
        assert not tracker.is_finished("w", request_id)
        kv.delete(keys.entity(Request.kind, "w", request_id))
        assert gone.wait(10), "the removal was not seen"
        assert tracker.is_finished("w", request_id)
        assert tracker.get("w", request_id) is None
    finally:
        tracker.stop()


# What a failure records


def test_a_failure_of_the_engine_says_it_is_not_the_handlers(cluster):
    """A request failed by the engine (here, past its deadline) records an error of kind
    ``engine`` with no traceback: nothing in the handlers' code is to blame."""
    slow_job(cluster, 4)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"a": 1}, blocking=False,
                                     deadline_s=0.2)
    assert cluster.engine.sweeper.sweep(accepted.deadline).expired == 1
    failed = cluster.engine.get_request(cluster.workflow, accepted.request_id)
    assert failed.state == "failed"
    assert {field: failed.error[field] for field in ("type", "traceback", "kind")} == {
        "type": "DeadlineExceeded", "traceback": "", "kind": "engine"}


def test_a_request_whose_reducer_code_is_gone_names_the_invocation_that_needed_it(cluster):
    leaf_job(cluster, "yield MrConfigureToReturn()\nyield 'a', 1\n")
    reducer = cluster.store.get(Handler, cluster.workflow, "add")
    cluster.engine.kv.delete(cluster.engine.keys.handler_code(cluster.workflow, reducer.version))
    request = cluster.run("j", {"a": 1})
    assert request.state == "failed" and request.error["type"] == "MissingHandlerCode"
    assert request.failed_invocation_id == request.root_invocation_id


def test_a_failure_keeps_as_much_of_what_the_handler_said_as_fits(cluster):
    """Message, traceback and captured output are cut to 256 KiB together, not less."""
    leaf_job(cluster, "import sys\nsys.stdout.write('o' * 3000000)\n"
                      "raise RuntimeError('x' * 5000000)\nyield MrConfigureToReturn()\n")
    request = cluster.run("j", {"a": 1})
    kept = sum(len(value.encode()) for value in request.error.values()
               if isinstance(value, str))
    assert FAILURE_RECORD_LIMIT_BYTES * 0.9 < kept <= FAILURE_RECORD_LIMIT_BYTES


def test_a_session_of_exactly_the_limit_fits_and_one_byte_more_fails(cluster):
    """Sessions may hold 512 KiB (keys and encoded values): exactly that commits."""
    prefix = cluster.engine.keys.session(cluster.workflow, "0" * 32, "0" * 32) + "big"
    overhead = len(codec.encode("x" * 100000)) - 100000
    fitting = SESSION_LIMIT_BYTES - len(prefix) - overhead
    leaf_job(cluster, "S_SET('big', 'x' * arguments[0][1])\n"
                      "yield MrConfigureToReturn()\nyield 'a', 1\n")
    assert cluster.run("j", {"size": fitting}).state == "done"
    too_large = cluster.run("j", {"size": fitting + 1})
    assert too_large.state == "failed" and too_large.error["type"] == "SessionTooLarge"


# What a request leaves and shows


def test_every_branch_records_its_place_in_the_tree(cluster):
    """What ``mr invocation list`` and ``get`` show of a request: each branching invocation,
    its parent, its step, and how many children it mapped to which step."""
    three_level_job(cluster)
    request = cluster.run("t", {"m": 2})
    root = request.root_invocation_id
    middles = [child_id(root, position) for position in range(2)]
    records = cluster.store.list(Invocation, cluster.workflow, request_id=request.request_id)
    assert sorted((record.invocation_id, record.parent_invocation_id, record.step_name,
                   record.mapped_count, record.mapped_step, record.state)
                  for record in records) == sorted([
                      (root, None, "top", 2, "middle", "waiting"),
                      (middles[0], root, "middle", 1, "leaf", "waiting"),
                      (middles[1], root, "middle", 2, "leaf", "waiting")])


@pytest.mark.parametrize("value", ["1", "'x' * 2000"], ids=["inline", "stored"])
def test_the_session_of_a_leaf_request_is_kept_for_inspection(cluster, value):
    """``mr session list`` shows what the mapper of a request stored, the root's included,
    whether the result rides in the request record or is stored beside it."""
    leaf_job(cluster, "S_SET('seen', len(arguments))\nyield MrConfigureToReturn()\n"
                      f"yield 'k', {value}\n", FIRST_VALUES)
    request = cluster.run("j", {"x": 1, "y": 2})
    assert request.state == "done" and (request.result_ref is not None) == (value != "1")
    session = Session(cluster.engine.kv, cluster.workflow, request.request_id,
                      request.root_invocation_id, cluster.engine.settings.kv_prefix)
    assert session.list() == {"seen": 2}


def test_a_released_request_leaves_nothing_in_the_data_store(cluster, second_worker):
    """Its arguments, its children's pairs, the pairs its leaves combined for a worker of
    another capability, their reductions too large for their markers, and its result: all
    go with it."""
    cluster.handler("fan_out", "mapper", FAN_OUT)
    cluster.handler("pad", "mapper", "yield MrConfigureToReturn()\n"
                                     "for name, number in arguments:\n"
                                     "    yield name, 'y' * 2000\n")
    cluster.handler("first", "reducer", FIRST_VALUES)
    cluster.handler("big_first", "reducer", FIRST_VALUES, capability="bigmem")
    cluster.step("leaf", "pad", "big_first")
    cluster.step("root", "fan_out", "first")
    cluster.job("j", "root")
    with running(second_worker, "bigmem"):
        request = cluster.run("j", {"c": 2})
    assert dict(cluster.engine.result(request)) == {"c0": "y" * 2000, "c1": "y" * 2000}
    assert cluster.engine.data.list_tree() != []
    cluster.engine.release(request)
    assert cluster.engine.data.list_tree() == []


# What handlers see


@pytest.fixture(params=["embedded", "distributed"])
def described_cluster(request, tmp_path):
    """A cluster whose executor children give handlers what the scope factory sees (INFO)."""
    with ExecutorPool(size=1, default_timeout_s=30,
                      scope_factory="tests.scope_factories.Described") as pool:
        yield from start_cluster(request, request.param, pool, tmp_path)


def test_a_scope_factory_sees_the_handler_as_the_request_pinned_it(described_cluster):
    cluster = described_cluster
    cluster.engine.settings = cluster.engine.settings.with_overrides(
        system_capabilities=("general", "gpu"))
    cluster.restart_worker()
    cluster.handler("show", "mapper", "yield MrConfigureToReturn()\nyield 'info', INFO\n",
                    capability="gpu")
    cluster.handler("first", "reducer", FIRST_VALUES)
    cluster.step("s", "show", "first")
    cluster.job("j", "s")
    request = cluster.run("j", {"a": 1})
    assert request.state == "done", request.error
    version = cluster.store.get(Handler, cluster.workflow, "show").version
    assert cluster.engine.result(request) == [["info", {
        "workflow": cluster.workflow, "name": "show", "handler_type": "mapper",
        "version": version, "required_capability": "gpu"}]]
