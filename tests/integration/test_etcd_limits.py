"""An etcd with its default transaction size refuses a large sync clearly, changing nothing."""
import pytest

from mr import devservers
from mr.handlers.sync import sync_handlers
from mr.kv.base import TransactionTooLargeError
from mr.models import EntityStore, Handler, Workflow
from tests.conftest import etcd_client
from tests.engine.test_sync import MAPPER, write_handler


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
