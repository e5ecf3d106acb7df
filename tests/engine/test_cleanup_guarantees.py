"""What removing a request (mr/engine/cleanup.py) promises beyond test_release.py: a removal
that names no cleanup entry (``mr request cleanup``) takes the request's files from every store,
shuffle store included, and a batch of delivered requests whose removal fails does not keep the
next batch from going.

Written for the mutants of ``cleanup.py`` that the other tests let through (scripts/mutation).
"""
from mr.engine import cleanup
from mr.kv.base import KVError
from tests.engine.test_data_guarantees import run_with_input
from tests.engine.test_release import TxnCountingKV, finished_requests, left_of, removed
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
