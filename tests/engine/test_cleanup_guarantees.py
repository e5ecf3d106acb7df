"""What removing a request (mr/engine/cleanup.py) promises beyond test_release.py: a removal
that names no cleanup entry (``mr request cleanup``) takes the request's files from every store,
shuffle store included; a batch of delivered requests whose removal fails does not keep the
next batch from going; failed requests are kept for their own retention; and one request whose
removal waits to be retried does not hold back those due after it.

Written for the mutants of ``cleanup.py`` that the other tests let through (scripts/mutation).
"""
from mr.engine import cleanup
from mr.kv.base import KVError
from tests.engine.test_data_guarantees import run_with_input
from tests.engine.test_release import (TxnCountingKV, finished_requests, left_of,
                                      refuse_removal, removed)
from tests.engine.test_reliability import wait_done
from tests.engine.test_shuffle import count_job


class FirstTxnFails(TxnCountingKV):
    """The KV as the cleaner uses it, whose first transaction fails."""

    def txn(self, *args, **kwargs):
        if self.transactions == 0:
            self.transactions += 1
            raise KVError("etcd is away")
        return super().txn(*args, **kwargs)


def test_removing_a_request_takes_its_files_from_the_shuffle_store_too(cluster, tmp_path):
    count_job(cluster, partitions=2)
    request = run_with_input(cluster, tmp_path)
    assert request.state == "done", request.error
    engine, prefix = cluster.engine, f"{cluster.workflow}/{request.request_id}"
    assert engine.shuffle_store.list_tree(prefix)
    engine.cleaner.remove(cluster.workflow, request.request_id)
    assert [store.list_tree(prefix) for store in engine.stores] == [[] for _ in engine.stores]


def test_a_batch_whose_removal_fails_leaves_the_next_batch_to_go(cluster, monkeypatch):
    """Batches of one: the first batch's transaction fails (its request waits for its cleanup
    entry), the second goes."""
    monkeypatch.setattr(cleanup, "RELEASE_BATCH", 1)
    first, second = finished_requests(cluster, 2)
    cleaner = cluster.engine.cleaner
    monkeypatch.setattr(cleaner, "kv", FirstTxnFails(cleaner.kv))
    cleaner.release_soon(first)
    cleaner.release_soon(second)
    assert removed(cluster, [second])
    assert left_of(cluster, first)


def test_a_failed_request_is_kept_for_the_failure_retention_a_done_one_for_the_result_one(
        cluster):
    cluster.engine.sweeper.stop()  # this test runs the removal pass itself
    cluster.engine.settings = cluster.engine.settings.with_overrides(
        result_retention_s=0.0, failure_retention_s=3600.0)
    (done,) = finished_requests(cluster, 1)
    cluster.handler("bad", "mapper", "raise ValueError('no good')\n")
    cluster.step("fails", "bad", "add")
    cluster.job("fails", "fails")
    failed = wait_done(cluster, cluster.engine.submit(cluster.workflow, "fails", {"a": 1},
                                                      blocking=False).request_id)
    assert failed.state == "failed"
    assert cluster.engine.cleaner.remove_due() == 1
    assert left_of(cluster, done) == [] and left_of(cluster, failed)


def test_a_request_waiting_to_be_retried_does_not_hold_back_those_due_after_it(cluster,
                                                                               monkeypatch):
    cluster.engine.sweeper.stop()  # this test runs the removal passes itself
    cluster.engine.settings = cluster.engine.settings.with_overrides(result_retention_s=0.0)
    (stuck,) = finished_requests(cluster, 1)
    refuse_removal(monkeypatch, cluster, stuck)
    assert cluster.engine.cleaner.remove_due() == 0  # its retry waits a second
    later = wait_done(cluster, cluster.engine.submit(cluster.workflow, "j", {"text": "a"},
                                                     blocking=False).request_id)
    assert cluster.engine.cleaner.remove_due() == 1
    assert left_of(cluster, later) == [] and left_of(cluster, stuck)
