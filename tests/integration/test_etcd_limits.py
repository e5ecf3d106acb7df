"""etcd's limits as mr starts it: a transaction larger than etcd allows fails clearly,
changing nothing; the history is compacted without anyone asking."""
import gevent
import pytest

from mr import devservers
from mr.handlers.sync import sync_handlers
from mr.kv.base import CompactedError, TransactionTooLargeError
from mr.models import EntityStore, Handler, Workflow
from tests.conftest import etcd_client
from tests.engine.test_sync import MAPPER, write_handler

#: A guard against a compaction that never comes; with a retention of 1 s it takes a few.
COMPACTION_GUARD_S = 30


def test_a_sync_larger_than_etcd_allows_fails_clearly_and_changes_nothing(tmp_path):
    server = devservers.etcd(tmp_path / "etcd", tie_to_parent=True, max_txn_ops=128).start()
    kv = etcd_client(server)
    try:
        store = EntityStore(kv, "/limits")
        store.create(Workflow(name="w", description="d"))
        for number in range(80):  # two operations each, and the marker: over 128
            write_handler(tmp_path / "handlers", f"m{number}.py", "mapper", MAPPER)
        with pytest.raises(TransactionTooLargeError, match="start etcd with a larger "
                                                          "--max-txn-ops"):
            sync_handlers(store, "w", tmp_path / "handlers")
        assert store.list(Handler, "w") == []
    finally:
        kv.close()
        server.stop()


def test_etcd_compacts_its_history_by_itself(tmp_path):
    server = devservers.etcd(tmp_path / "etcd", tie_to_parent=True,
                             compaction_retention="1s").start()
    kv = etcd_client(server)
    try:
        first = kv.put("/compacted", b"0").revision
        with gevent.Timeout(COMPACTION_GUARD_S):
            while not history_is_compacted(kv, "/compacted", first):
                kv.put("/compacted", b"1")
                gevent.sleep(0.2)
    finally:
        kv.close()
        server.stop()


def history_is_compacted(kv, key: str, revision: int) -> bool:
    with kv.watch(key, start_revision=revision) as watch:
        try:
            watch.get(timeout=5)
        except CompactedError:
            return True
    return False
