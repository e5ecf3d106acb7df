"""What the sweeper promises (docs/engine.rst, "Liveness: the sweeper and deadlines"), each
checked by calling it at chosen times: a request that grew is left alone, a stalled one is
published again marked as a redelivery, then only after twice the wait, each sweep reports all
it did, and one pass of its loop removes every due request; and what an engine promises of the
stores it shuffles through and of a workflow that does not exist.

Written for the mutants of ``mr/engine/sweeper.py`` and ``mr/engine/engine.py`` that the other
tests let through (scripts/mutation); the others cannot change what a caller sees.
"""
import functools
import os
import time
import types

import gevent
import gevent.event
import pytest

from mr.data.fsspec_store import FsspecDataStore
from mr.engine import sweeper as sweeper_module
from mr.engine.engine import Engine
from mr.engine.messages import MAP
from mr.kv.base import KVError
from mr.models import NotFoundError, Request
from mr.worker.worker import Worker
from tests.engine.test_guarantees import RecordedDelivery, is_root_map, record_publishes
from tests.engine.test_reliability import (expected, fan_out_job, run_log, slow_job,
                                           sweep_after_stall, wait_done)
from tests.engine.test_served import live_engine
from tests.engine.test_shuffle import TEXT, count_job, write_inputs

__all__ = ["run_log", "live_engine"]  # fixtures of test_reliability and test_served


def only_manual_sweeps(cluster):
    """The cluster's sweeper with its loop stopped, so that only the test's sweeps, at the
    times it chooses, see the requests."""
    sweeper = cluster.engine.sweeper
    sweeper.stop()
    return sweeper


def lost_request(monkeypatch, cluster, run_log, children: int = 2, **options):
    """A request of ``fan_out_job`` every message of which is lost; its root message and the
    request. ``options``: of the submit (``deadline_s``)."""
    published = record_publishes(monkeypatch, cluster, lose=lambda message: True)
    fan_out_job(cluster, run_log)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"c": children}, blocking=False,
                                     **options)
    (root,) = published
    return root, accepted


# What is published again, and when


def test_a_request_whose_run_state_grew_is_not_published_again_until_it_stalls_anew(
        cluster, monkeypatch, run_log):
    sweeper = only_manual_sweeps(cluster)
    stall_s = cluster.engine.settings.request_stall_s
    root, _ = lost_request(monkeypatch, cluster, run_log)
    first = time.time()
    sweeper.sweep(first)
    cluster.engine.handle(RecordedDelivery(cluster.engine, root))  # its branch commits
    report = sweeper.sweep(first + stall_s + 1)
    assert (report.redriven, report.published) == (0, 0)
    report = sweeper.sweep(first + 2 * stall_s + 1)
    assert (report.redriven, report.published) == (1, 2)  # its two lost children


def test_a_stalled_request_is_published_again_after_twice_the_wait_each_time(
        cluster, monkeypatch, run_log):
    sweeper = only_manual_sweeps(cluster)
    stall_s = cluster.engine.settings.request_stall_s
    lost_request(monkeypatch, cluster, run_log)
    since = float(int(time.time()))  # whole seconds: the sums below are exact
    sweeper.sweep(since)
    for patience_s in (stall_s, 2 * stall_s, 4 * stall_s):
        assert sweeper.sweep(since + patience_s - 1).redriven == 0
        assert sweeper.sweep(since + patience_s).redriven == 1
        since += patience_s


def test_a_map_that_never_committed_is_published_again_marked_redelivered(cluster, monkeypatch,
                                                                         run_log):
    """So that its worker looks for a commit of the first copy before running its mapper."""
    lost = []

    def lose_the_first_root(message) -> bool:
        if is_root_map(message) and not lost:
            lost.append(message)
            return True
        return False

    published = record_publishes(monkeypatch, cluster, lose=lose_the_first_root)
    fan_out_job(cluster, run_log)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"c": 2}, blocking=False)
    assert sweep_after_stall(cluster).published == 1
    assert [(again.kind, again.invocation_id) for again in published if again.redelivered] == [
        (MAP, lost[0].invocation_id)]
    assert dict(cluster.engine.result(wait_done(cluster, accepted.request_id))) == expected(2)


# What a sweep reports


def test_a_sweep_reports_every_request_it_published_again_or_failed_and_every_message(
        cluster, monkeypatch, run_log):
    sweeper = only_manual_sweeps(cluster)
    lost_request(monkeypatch, cluster, run_log)
    second = cluster.engine.submit(cluster.workflow, "j", {"c": 1}, blocking=False)
    report = sweep_after_stall(cluster)
    assert (report.expired, report.redriven, report.published) == (0, 2, 2)
    report = sweeper.sweep(second.deadline)
    assert (report.expired, report.redriven, report.published) == (2, 0, 0)


# What the sweeper's loop removes


class PassOver(BaseException):
    """Ends the sweeper's loop at its first pause (not an Exception: the loop outlives those)."""


def run_the_loop(monkeypatch, sweeper, passes: int = 1) -> list[float]:
    """Run the sweeper's loop for ``passes`` passes; the pause after each."""
    pauses = []

    def sleep(seconds):
        if seconds > 0:
            pauses.append(seconds)
            if len(pauses) == passes:
                raise PassOver()
        gevent.sleep(0)

    monkeypatch.setattr(sweeper_module, "gevent", types.SimpleNamespace(sleep=sleep))
    with pytest.raises(PassOver):
        sweeper._run_forever()
    return pauses


def test_one_pass_removes_every_due_request_however_few_each_batch_removes(cluster,
                                                                          monkeypatch):
    """Each batch here removes one request, as a batch does whose other requests all wait to
    be retried: the pass goes on until a batch removes none."""
    sweeper = only_manual_sweeps(cluster)
    engine = cluster.engine
    engine.settings = engine.settings.with_overrides(result_retention_s=0.0)
    slow_job(cluster, 0)
    finished = [wait_done(cluster, engine.submit(cluster.workflow, "j", {"a": 1},
                                                 blocking=False).request_id)
                for _ in range(3)]
    monkeypatch.setattr(engine.cleaner, "remove_due",
                        functools.partial(engine.cleaner.remove_due, limit=1))
    run_the_loop(monkeypatch, sweeper)
    for request in finished:
        with pytest.raises(NotFoundError):
            engine.get_request(cluster.workflow, request.request_id)


def test_the_loop_fails_a_request_past_its_deadline(cluster, monkeypatch, run_log):
    sweeper = only_manual_sweeps(cluster)
    _, accepted = lost_request(monkeypatch, cluster, run_log, deadline_s=0.05)
    gevent.sleep(0.1)
    run_the_loop(monkeypatch, sweeper)
    failed = cluster.engine.get_request(cluster.workflow, accepted.request_id)
    assert failed.state == "failed" and failed.error["type"] == "DeadlineExceeded"


def test_a_failing_sweep_is_tried_again_after_a_doubling_pause_of_at_most_a_minute(
        cluster, monkeypatch):
    """And once a pass succeeds, the loop is back to its interval."""
    sweeper = only_manual_sweeps(cluster)
    interval_s = cluster.engine.settings.sweep_interval_s
    failures = iter([KVError("etcd is away")] * 9)

    def lead():
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return False

    monkeypatch.setattr(sweeper, "lead", lead)
    pauses = run_the_loop(monkeypatch, sweeper, passes=10)
    doubled = [interval_s * 2 ** number for number in range(1, 10)]
    assert pauses == [min(pause, sweeper_module.MAX_ERROR_BACKOFF_S) for pause in doubled] + [
        interval_s]
    assert pauses[-2] == sweeper_module.MAX_ERROR_BACKOFF_S


def test_a_record_that_cannot_be_read_does_not_hide_the_requests_after_it(cluster, monkeypatch,
                                                                         run_log):
    sweeper = only_manual_sweeps(cluster)
    _, accepted = lost_request(monkeypatch, cluster, run_log)
    unreadable = cluster.engine.keys.entity(Request.kind, cluster.workflow, "0" * 32)
    cluster.engine.kv.put(unreadable, b"not a record")  # listed first: the lowest id
    assert sweeper.sweep(accepted.deadline).expired == 1


# Who sweeps


def granted_leases(monkeypatch, kv) -> list[tuple[int, int]]:
    """(lease id, ttl) of every lease granted through ``kv`` from now on."""
    granted = []
    grant = kv.grant_lease

    def recorded(ttl):
        lease_id = grant(ttl)
        granted.append((lease_id, ttl))
        return lease_id

    monkeypatch.setattr(kv, "grant_lease", recorded)
    return granted


@pytest.mark.parametrize("interval_s, ttl_s", [(0.5, 5), (4.0, 12)])
def test_the_sweeper_holds_its_key_on_a_lease_of_three_intervals_and_at_least_5_s(
        cluster, monkeypatch, interval_s, ttl_s):
    """How long the key of a sweeper that died outlives it: another takes over after that."""
    sweeper = only_manual_sweeps(cluster)  # and its key given up: the next to ask takes it
    cluster.engine.settings = cluster.engine.settings.with_overrides(sweep_interval_s=interval_s)
    granted = granted_leases(monkeypatch, cluster.engine.kv)
    assert sweeper.lead()
    [(lease_id, ttl)] = granted
    assert ttl == ttl_s
    assert cluster.engine.kv.lease_time_to_live(lease_id) > 0


@pytest.mark.parametrize("asking", ["loop", "notifier"])
def test_a_sweeper_stopped_while_it_takes_the_lead_leaves_the_key_to_the_next(
        cluster, monkeypatch, asking):
    """Its key, just taken by its loop or by the notifier (which asks for the lead too), goes
    with it: the next process to ask leads at once, not after the key's lease runs out."""
    sweeper = only_manual_sweeps(cluster)
    kv, key = cluster.engine.kv, cluster.engine.keys.sweeper()
    txn, taken = kv.txn, gevent.event.Event()

    def taking_the_key_slowly(compare, *args, **options):
        result = txn(compare, *args, **options)
        if compare and compare[0].key == key:
            taken.set()
            gevent.sleep(0.05)  # between the key's commit and the lease's keeper
        return result

    monkeypatch.setattr(kv, "txn", taking_the_key_slowly)
    if asking == "loop":
        sweeper.start()
    else:
        gevent.spawn(sweeper.lead)
    assert taken.wait(timeout=5)
    sweeper.stop()
    assert kv.get(key) is None
    assert sweeper.lead()


def test_a_process_that_finds_another_sweeping_gives_back_the_lease_it_took(
        cluster, executor, monkeypatch):
    assert cluster.engine.sweeper.lead()
    other = Engine(cluster.engine.settings, cluster.engine.kv, cluster.engine.queue,
                   cluster.engine.data, executor)
    try:
        granted = granted_leases(monkeypatch, cluster.engine.kv)
        assert not other.sweeper.lead()
        [(lease_id, _)] = granted
        assert cluster.engine.kv.lease_time_to_live(lease_id) == -1
    finally:
        other.stop()


# The engine's stores and the workflows it serves


def test_an_engine_over_a_store_its_children_can_open_shuffles_through_that_store(
        cluster, executor, tmp_path):
    """So that a partition's runs, spilled by one worker, can be read by any other."""
    data = FsspecDataStore(str(tmp_path / "shared"))
    engine = Engine(cluster.engine.settings, cluster.engine.kv, cluster.engine.queue, data,
                    executor).serve()
    cluster.worker.stop(timeout=2)
    worker = Worker(engine).start()
    try:
        count_job(cluster, partitions=2)
        accepted = engine.submit(cluster.workflow, "wordcount", {}, blocking=False,
                                 input={"url": write_inputs(tmp_path / "in", {"a.txt": TEXT})})
        assert wait_done(cluster, accepted.request_id).state == "done"
        request_tree = f"{cluster.workflow}/{accepted.request_id}"
        assert any(path.startswith(f"{request_tree}/shuffle/")
                   for path in data.list_tree(request_tree))
    finally:
        worker.stop(timeout=2)
        engine.stop()


def test_stopping_an_engine_removes_its_temporary_shuffle_directory_and_nothing_else(cluster):
    engine = cluster.engine
    shuffle_url, temporary = engine.shuffle_store.url, engine.shuffle_store is not engine.data
    cluster.worker.stop(timeout=2)
    engine.stop()
    assert os.path.isdir(shuffle_url) != temporary


def test_a_missing_workflow_is_refused_naming_no_filter_when_none_is_set(live_engine):
    with pytest.raises(NotFoundError) as refused:
        live_engine.get_request("nothing_here", "r1")
    assert str(refused.value) == "workflow 'nothing_here' is not served here: it does not exist"
