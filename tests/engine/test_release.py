"""A front end removes each request whose result it delivered soon after, in the background:
the requests delivered meanwhile go together, in one transaction, and one that cannot be removed
is left to its cleanup entry. In embedded mode and over etcd."""
from typing import Callable

import gevent
import gevent.event

from mr.models import Request
from tests.engine.test_guarantees import leaf_job
from tests.engine.test_reliability import wait_done
from tests.engine.test_requests import LEAF_MAPPER


class TxnCountingKV:
    """The KV as the engine's cleaner uses it, counting its transactions and keeping the
    operations of each."""

    def __init__(self, inner):
        self._inner = inner
        self.transactions = 0
        self.operations = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def txn(self, compare, success, *args, **kwargs):
        self.transactions += 1
        self.operations.append(list(success))
        return self._inner.txn(compare, success, *args, **kwargs)


def finished_requests(cluster, count: int) -> list[Request]:
    leaf_job(cluster, LEAF_MAPPER)
    return [wait_done(cluster, cluster.engine.submit(
        cluster.workflow, "j", {"text": "a b"}, blocking=False).request_id)
        for _ in range(count)]


def counting_transactions(cluster, monkeypatch) -> TxnCountingKV:
    counting = TxnCountingKV(cluster.engine.kv)
    monkeypatch.setattr(cluster.engine.cleaner, "kv", counting)
    return counting


def left_of(cluster, request: Request) -> list:
    """What of ``request`` is still stored: its record, run state, cleanup entry and data."""
    engine, workflow = cluster.engine, cluster.workflow
    return ([kv.key for kv in engine.kv.range(engine.keys.workflow_scope(workflow),
                                              prefix=True).kvs
             if request.request_id in kv.key]
            + [kv.key for kv in engine.kv.range(engine.keys.cleanups(), prefix=True).kvs
               if kv.key.endswith(request.request_id)]
            + engine.data.list_tree(f"{workflow}/{request.request_id}"))


def removed(cluster, requests: list[Request], timeout_s: float = 10) -> bool:
    with gevent.Timeout(timeout_s, False):
        while any(left_of(cluster, request) for request in requests):
            gevent.sleep(0.01)
        return True
    return False


def test_requests_delivered_together_are_removed_in_one_transaction(cluster, monkeypatch):
    """And their data in one call to the data store (one handoff to its thread)."""
    requests = finished_requests(cluster, 3)
    assert all(left_of(cluster, request) for request in requests)
    counting = counting_transactions(cluster, monkeypatch)
    listings = []
    delete_trees = cluster.engine.data.delete_trees
    monkeypatch.setattr(cluster.engine.data, "delete_trees",
                        lambda prefixes: listings.append(prefixes) or delete_trees(prefixes))
    for request in requests:
        cluster.engine.cleaner.release_soon(request)
    assert removed(cluster, requests)
    assert counting.transactions == 1
    assert listings == [[f"{cluster.workflow}/{request.request_id}" for request in requests]]


def test_a_delivered_request_is_removed_with_three_deletes(cluster, monkeypatch):
    """Its record, run state and cleanup entry: delivered, it is done, so it has no finished
    key to remove."""
    requests = finished_requests(cluster, 2)
    counting = counting_transactions(cluster, monkeypatch)
    for request in requests:
        cluster.engine.cleaner.release_soon(request)
    assert removed(cluster, requests)
    [operations] = counting.operations
    keys = cluster.engine.keys
    assert sorted(operation.key for operation in operations) == sorted(
        key for request in requests for key in (
            keys.entity(Request.kind, cluster.workflow, request.request_id),
            keys.run(cluster.workflow, request.request_id),
            cluster.engine.cleaner.cleanup_key(request)))


def test_requests_delivered_one_after_another_within_the_linger_go_together(cluster,
                                                                            monkeypatch):
    """The removing greenlet runs as soon as the first is delivered; it waits for the others."""
    requests = finished_requests(cluster, 3)
    counting = counting_transactions(cluster, monkeypatch)
    for request in requests:
        cluster.engine.cleaner.release_soon(request)
        gevent.sleep(0)
    assert removed(cluster, requests)
    assert counting.transactions == 1


def test_requests_delivered_while_others_are_removed_go_together_next(cluster, monkeypatch):
    first, *later = finished_requests(cluster, 3)
    removing, go_on = gevent.event.Event(), gevent.event.Event()
    delete_trees = cluster.engine.data.delete_trees

    def held_for_the_first(prefixes):
        if any(prefix.endswith(first.request_id) for prefix in prefixes):
            removing.set()
            go_on.wait()
        return delete_trees(prefixes)

    monkeypatch.setattr(cluster.engine.data, "delete_trees", held_for_the_first)
    counting = counting_transactions(cluster, monkeypatch)
    cluster.engine.cleaner.release_soon(first)
    assert removing.wait(timeout=10)
    for request in later:
        cluster.engine.cleaner.release_soon(request)
    go_on.set()
    assert removed(cluster, [first, *later])
    assert counting.transactions == 2


def test_a_request_delivered_after_the_others_were_removed_is_removed_too(cluster):
    first, later = finished_requests(cluster, 2)
    cluster.engine.cleaner.release_soon(first)
    assert removed(cluster, [first])
    gevent.sleep(0)  # the removing greenlet ends
    cluster.engine.cleaner.release_soon(later)
    assert removed(cluster, [later])


def refuse_removal(monkeypatch, cluster, stuck: Request) -> Callable[[], None]:
    """The data store refuses to remove the files of ``stuck``, whether alone (``delete_tree``,
    the removal of due requests) or among delivered ones (``delete_trees``), until the
    returned function is called."""
    data = cluster.engine.data
    delete_tree, delete_trees = data.delete_tree, data.delete_trees

    def refuse_alone(prefix):
        if prefix.endswith(stuck.request_id):
            raise OSError("the disk says no")
        return delete_tree(prefix)

    def refuse_among(prefixes):
        outcomes = delete_trees([prefix for prefix in prefixes
                                 if not prefix.endswith(stuck.request_id)])
        return [OSError("the disk says no") if prefix.endswith(stuck.request_id)
                else outcomes.pop(0) for prefix in prefixes]

    monkeypatch.setattr(data, "delete_tree", refuse_alone)
    monkeypatch.setattr(data, "delete_trees", refuse_among)
    return lambda: (setattr(data, "delete_tree", delete_tree),
                    setattr(data, "delete_trees", delete_trees))


def test_a_delivered_request_that_cannot_be_removed_waits_for_its_cleanup_entry(cluster,
                                                                                 monkeypatch):
    """The others go at once; that one goes when its cleanup entry is due."""
    cluster.engine.sweeper.stop()  # this test runs the removal pass itself
    cluster.engine.settings = cluster.engine.settings.with_overrides(result_retention_s=0.0)
    stuck, *others = finished_requests(cluster, 3)
    accept_removal = refuse_removal(monkeypatch, cluster, stuck)
    for request in [stuck, *others]:
        cluster.engine.cleaner.release_soon(request)
    assert removed(cluster, others)
    assert cluster.engine.get_request(cluster.workflow, stuck.request_id).state == "done"
    accept_removal()
    assert cluster.engine.cleaner.remove_due() == 1
    assert left_of(cluster, stuck) == []


def test_nothing_is_released_when_requests_are_kept(cluster):
    (request,) = finished_requests(cluster, 1)
    cluster.engine.settings = cluster.engine.settings.with_overrides(do_cleanup_requests=False)
    cluster.engine.cleaner.release_soon(request)
    assert not removed(cluster, [request], timeout_s=0.5)
