"""The KV contract: every test runs against the embedded store and a real etcd.

Revisions are compared relative to each other only, since the etcd server is shared.
"""
import random
import time

import gevent
import pytest

from mr import devservers
from mr.kv.base import (CompactedError, Compare, Delete, DeleteResult, Get, LeaseNotFoundError,
                        Put, PutResult, RangeResult)
from mr.kv.memory import MemoryKV
from tests.conftest import etcd_client


def test_put_then_get_returns_value_and_revisions(kv, kv_prefix):
    key = f"{kv_prefix}/a"
    first = kv.put(key, b"one")
    second = kv.put(key, b"two")
    stored = kv.get(key)
    assert stored.value == b"two"
    assert stored.version == 2
    assert stored.create_revision == first.revision
    assert stored.mod_revision == second.revision > first.revision


def test_get_of_missing_key_is_none(kv, kv_prefix):
    assert kv.get(f"{kv_prefix}/missing") is None


def test_values_are_binary_safe(kv, kv_prefix):
    value = bytes(range(256)) * 64
    kv.put(f"{kv_prefix}/bin", value)
    assert kv.get(f"{kv_prefix}/bin").value == value


def test_put_with_prev_kv_returns_previous_value(kv, kv_prefix):
    key = f"{kv_prefix}/p"
    assert kv.put(key, b"1", prev_kv=True).prev_kv is None
    assert kv.put(key, b"2", prev_kv=True).prev_kv.value == b"1"


def test_range_by_prefix_is_sorted_and_respects_the_prefix_boundary(kv, kv_prefix):
    for name in ["b", "a", "c"]:
        kv.put(f"{kv_prefix}/dir/{name}", name.encode())
    kv.put(f"{kv_prefix}/dirx/z", b"outside")
    result = kv.range(f"{kv_prefix}/dir/", prefix=True)
    assert [kv_.key.rsplit("/", 1)[1] for kv_ in result.kvs] == ["a", "b", "c"]
    assert result.count == 3 and not result.more


def test_range_with_limit_reports_more_and_total_count(kv, kv_prefix):
    for index in range(5):
        kv.put(f"{kv_prefix}/l/{index}", b"x")
    result = kv.range(f"{kv_prefix}/l/", prefix=True, limit=2)
    assert [k.key for k in result.kvs] == [f"{kv_prefix}/l/0", f"{kv_prefix}/l/1"]
    assert result.more is True
    assert result.count == 5


def test_range_count_only_and_keys_only(kv, kv_prefix):
    for index in range(3):
        kv.put(f"{kv_prefix}/c/{index}", b"value")
    counted = kv.range(f"{kv_prefix}/c/", prefix=True, count_only=True)
    assert counted.count == 3 and counted.kvs == []
    keys = kv.range(f"{kv_prefix}/c/", prefix=True, keys_only=True)
    assert len(keys.kvs) == 3 and all(k.value == b"" for k in keys.kvs)


def test_delete_single_key_and_prefix(kv, kv_prefix):
    for name in ["a", "b", "c"]:
        kv.put(f"{kv_prefix}/d/{name}", name.encode())
    kv.put(f"{kv_prefix}/keep", b"k")
    single = kv.delete(f"{kv_prefix}/d/a", prev_kv=True)
    assert single.deleted == 1 and single.prev_kvs[0].value == b"a"
    assert kv.delete(f"{kv_prefix}/d/", prefix=True).deleted == 2
    assert kv.range(f"{kv_prefix}/d/", prefix=True).count == 0
    assert kv.get(f"{kv_prefix}/keep").value == b"k"
    assert kv.delete(f"{kv_prefix}/d/a").deleted == 0


@pytest.mark.parametrize("target, operator, operand, expected", [
    ("value", "==", b"v2", True), ("value", "==", b"other", False),
    ("value", "!=", b"other", True), ("value", ">", b"v1", True), ("value", "<", b"v1", False),
    ("version", "==", 2, True), ("version", "!=", 2, False),
    ("version", ">", 1, True), ("version", "<", 2, False),
])
def test_txn_compares_value_and_version(kv, kv_prefix, target, operator, operand, expected):
    key = f"{kv_prefix}/t"
    kv.put(key, b"v1")
    kv.put(key, b"v2")
    result = kv.txn([Compare(key, target, operator, operand)],
                    success=[Put(f"{kv_prefix}/branch", b"success")],
                    failure=[Put(f"{kv_prefix}/branch", b"failure")])
    assert result.succeeded is expected
    assert kv.get(f"{kv_prefix}/branch").value == (b"success" if expected else b"failure")


def test_txn_compares_create_and_mod_revision(kv, kv_prefix):
    key = f"{kv_prefix}/r"
    created = kv.put(key, b"1").revision
    modified = kv.put(key, b"2").revision
    checks = [
        (Compare(key, "create_revision", "==", created), True),
        (Compare(key, "create_revision", "<", modified), True),
        (Compare(key, "mod_revision", "==", modified), True),
        (Compare(key, "mod_revision", "==", created), False),
        (Compare(key, "mod_revision", ">", created), True),
        (Compare(key, "mod_revision", "!=", modified), False),
    ]
    for condition, expected in checks:
        assert kv.txn([condition]).succeeded is expected, condition


def test_txn_create_if_absent_succeeds_once(kv, kv_prefix):
    key = f"{kv_prefix}/once"
    absent = Compare(key, "create_revision", "==", 0)
    outcomes = [kv.txn([absent], success=[Put(key, str(n).encode())]).succeeded for n in range(3)]
    assert outcomes == [True, False, False]
    assert kv.get(key).value == b"0"


def test_txn_value_compare_on_missing_key_fails(kv, kv_prefix):
    assert kv.txn([Compare(f"{kv_prefix}/none", "value", "==", b"")]).succeeded is False


def test_txn_runs_all_operations_atomically_at_one_revision(kv, kv_prefix):
    kv.put(f"{kv_prefix}/gone", b"x")
    result = kv.txn([], success=[Put(f"{kv_prefix}/a", b"1"), Put(f"{kv_prefix}/b", b"2"),
                                 Delete(f"{kv_prefix}/gone"), Get(f"{kv_prefix}/", prefix=True)])
    assert result.succeeded
    put_a, put_b, deleted, read = result.responses
    assert isinstance(put_a, PutResult) and put_a.revision == put_b.revision == result.revision
    assert isinstance(deleted, DeleteResult) and deleted.deleted == 1
    assert isinstance(read, RangeResult)
    assert sorted(k.key for k in read.kvs) == [f"{kv_prefix}/a", f"{kv_prefix}/b"]
    assert kv.get(f"{kv_prefix}/a").mod_revision == kv.get(f"{kv_prefix}/b").mod_revision


def test_txn_reads_see_the_transaction_s_own_writes_and_can_count(kv, kv_prefix):
    kv.put(f"{kv_prefix}/n/a", b"1")
    first = kv.txn([Compare(f"{kv_prefix}/n/b", "version", "==", 0)],
                   success=[Put(f"{kv_prefix}/n/b", b"2"), Get(f"{kv_prefix}/n/", prefix=True,
                                                               count_only=True)])
    counted = first.responses[1]
    assert counted.count == 2 and counted.kvs == []


def test_txn_put_with_prev_kv_counts_its_writes(kv, kv_prefix):
    """A counter that costs one write whatever its value: the previous version + 1."""
    counter = f"{kv_prefix}/counter"
    seen = []
    for _ in range(3):
        put = kv.txn([], success=[Put(counter, b"", prev_kv=True)]).responses[0]
        seen.append((put.prev_kv.version if put.prev_kv else 0) + 1)
    plain = kv.txn([], success=[Put(counter, b"")]).responses[0]
    assert seen == [1, 2, 3] and plain.prev_kv is None
    assert kv.get(counter).version == 4


def test_pages_walk_a_prefix_in_order_without_gaps_or_repeats(kv, kv_prefix):
    keys = [f"{kv_prefix}/p/{n:03d}" for n in range(23)]
    kv.txn([], success=[Put(key, key.encode()) for key in keys])
    kv.put(f"{kv_prefix}/q", b"outside")
    pages = list(kv.pages(f"{kv_prefix}/p/", page_size=5))
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    assert [kv.key for page in pages for kv in page] == keys
    assert all(kv.value == kv.key.encode() for page in pages for kv in page)
    started = kv.range(f"{kv_prefix}/p/", prefix=True, start=keys[20])
    assert [kv.key for kv in started.kvs] == keys[20:] and started.count == 3
    assert list(kv.pages(f"{kv_prefix}/none/")) == []


def test_txn_writing_one_key_twice_is_refused_and_changes_nothing(kv, kv_prefix):
    with pytest.raises(ValueError):
        kv.txn([], success=[Put(f"{kv_prefix}/dup", b"1"), Put(f"{kv_prefix}/dup", b"2")])
    assert kv.get(f"{kv_prefix}/dup") is None


def _collect(watch, count, timeout=10.0):
    events = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        event = watch.get(timeout=max(deadline - time.monotonic(), 0.01))
        if event is not None:
            events.append(event)
    return events


def test_watch_from_a_past_revision_replays_every_change_once_in_order(kv, kv_prefix):
    start = kv.current_revision() + 1
    expected = []
    for index in range(10):
        kv.put(f"{kv_prefix}/w/{index}", b"%d" % index)
        expected.append(("put", f"{kv_prefix}/w/{index}", b"%d" % index))
    for index in range(0, 10, 3):
        kv.delete(f"{kv_prefix}/w/{index}")
        expected.append(("delete", f"{kv_prefix}/w/{index}", b""))
    kv.txn([], success=[Put(f"{kv_prefix}/w/1", b"t1"), Put(f"{kv_prefix}/w/2", b"t2")])
    expected += [("put", f"{kv_prefix}/w/1", b"t1"), ("put", f"{kv_prefix}/w/2", b"t2")]
    kv.put(f"{kv_prefix}/elsewhere", b"ignored")
    with kv.watch(f"{kv_prefix}/w/", prefix=True, start_revision=start) as watch:
        kv.put(f"{kv_prefix}/w/live", b"after")
        expected.append(("put", f"{kv_prefix}/w/live", b"after"))
        events = _collect(watch, len(expected))
        assert watch.get(timeout=0.3) is None
    assert [(e.type, e.kv.key, e.kv.value) for e in events] == expected
    revisions = [e.revision for e in events]
    assert revisions == sorted(revisions)
    assert len(set(revisions)) == len(revisions) - 1  # the two writes of the txn share one


def test_watch_from_now_sees_only_later_changes_of_its_key(kv, kv_prefix):
    key = f"{kv_prefix}/single"
    kv.put(key, b"before")
    with kv.watch(key) as watch:
        kv.put(f"{kv_prefix}/single2", b"other key")
        kv.put(key, b"after")
        kv.delete(key)
        events = _collect(watch, 2)
        assert watch.get(timeout=0.3) is None
    assert [(e.type, e.kv.value) for e in events] == [("put", b"after"), ("delete", b"")]


def test_a_puts_only_watch_leaves_deletions_out_past_and_live(kv, kv_prefix):
    start = kv.current_revision() + 1
    kv.put(f"{kv_prefix}/p/a", b"1")
    kv.delete(f"{kv_prefix}/p/a")
    with kv.watch(f"{kv_prefix}/p/", prefix=True, start_revision=start,
                  puts_only=True) as watch:
        kv.put(f"{kv_prefix}/p/b", b"2")
        kv.delete(f"{kv_prefix}/p/", prefix=True)
        kv.put(f"{kv_prefix}/p/c", b"3")
        events = _collect(watch, 3)
        assert watch.get(timeout=0.3) is None
    assert [(e.type, e.kv.key, e.kv.value) for e in events] == [
        ("put", f"{kv_prefix}/p/{name}", value) for name, value in
        (("a", b"1"), ("b", b"2"), ("c", b"3"))]


def test_watch_with_prev_kv(kv, kv_prefix):
    key = f"{kv_prefix}/pk"
    kv.put(key, b"old")
    with kv.watch(key, prev_kv=True) as watch:
        kv.put(key, b"new")
        kv.delete(key)
        update, deletion = _collect(watch, 2)
    assert update.prev_kv.value == b"old" and deletion.prev_kv.value == b"new"


def test_watch_delivers_concurrent_writes_exactly_once_in_revision_order(kv, kv_prefix):
    start = kv.current_revision() + 1
    written = []

    def writer(number):
        for index in range(40):
            written.append(kv.put(f"{kv_prefix}/cw/{number}/{index}", b"x").revision)
            if random.random() < 0.3:
                gevent.sleep(0)

    with kv.watch(f"{kv_prefix}/cw/", prefix=True, start_revision=start) as watch:
        gevent.joinall([gevent.spawn(writer, n) for n in range(5)], raise_error=True)
        events = _collect(watch, len(written))
        assert watch.get(timeout=0.3) is None
    assert [e.revision for e in events] == sorted(written)


def test_cancelled_watch_returns_none_and_stops_iteration(kv, kv_prefix):
    watch = kv.watch(f"{kv_prefix}/x", prefix=True)
    waiter = gevent.spawn(lambda: list(watch))
    gevent.sleep(0.1)
    watch.cancel()
    assert waiter.get(timeout=5) == []
    assert watch.cancelled and watch.get(timeout=0.1) is None


@pytest.fixture(params=["memory", "etcd"])
def own_kv(request, tmp_path):
    """A store of this test's own: compacting the session's shared etcd would cut the history
    that other tests' watches may still need."""
    if request.param == "memory":
        store, server = MemoryKV(), None
    else:
        server = devservers.etcd(tmp_path, tie_to_parent=True).start()
        store = etcd_client(server)
    yield store
    store.close()
    if server is not None:
        server.stop()


def test_watch_from_a_compacted_revision_raises(own_kv, kv_prefix):
    kv = own_kv
    old = kv.put(f"{kv_prefix}/cmp", b"1").revision
    kv.put(f"{kv_prefix}/cmp", b"2")
    latest = kv.put(f"{kv_prefix}/cmp", b"3").revision
    kv.compact(latest)
    watch = kv.watch(f"{kv_prefix}/cmp", start_revision=old)
    with pytest.raises(CompactedError) as raised:
        watch.get(timeout=5)
    assert raised.value.compact_revision == latest
    watch.cancel()
    with kv.watch(f"{kv_prefix}/cmp", start_revision=latest) as kept:
        assert kept.get(timeout=5).kv.value == b"3"


def test_lease_keys_vanish_when_the_lease_is_revoked(kv, kv_prefix):
    lease = kv.grant_lease(30)
    kv.put(f"{kv_prefix}/leased/a", b"1", lease=lease)
    kv.put(f"{kv_prefix}/leased/b", b"2", lease=lease)
    assert kv.get(f"{kv_prefix}/leased/a").lease == lease
    assert 0 < kv.lease_time_to_live(lease) <= 30
    with kv.watch(f"{kv_prefix}/leased/", prefix=True) as watch:
        kv.revoke_lease(lease)
        events = _collect(watch, 2)
    assert sorted((e.type, e.kv.key) for e in events) == [
        ("delete", f"{kv_prefix}/leased/a"), ("delete", f"{kv_prefix}/leased/b")]
    assert kv.lease_time_to_live(lease) == -1
    with pytest.raises(LeaseNotFoundError):
        kv.refresh_lease(lease)
    kv.revoke_lease(lease)  # revoking again is harmless


def test_put_with_an_unknown_lease_is_refused(kv, kv_prefix):
    lease = kv.grant_lease(30)
    kv.revoke_lease(lease)
    with pytest.raises(LeaseNotFoundError):
        kv.put(f"{kv_prefix}/orphan", b"x", lease=lease)
    assert kv.get(f"{kv_prefix}/orphan") is None


def test_lease_expires_unless_kept_alive(kv, kv_prefix):
    # etcd raises TTLs below its minimum (about 2 s at default election settings) to it.
    kept, dropped = kv.grant_lease(2), kv.grant_lease(2)
    kv.put(f"{kv_prefix}/kept", b"k", lease=kept)
    kv.put(f"{kv_prefix}/dropped", b"d", lease=dropped)
    keeper = kv.keep_lease_alive(kept, 2)
    try:
        deadline = time.monotonic() + 8
        while kv.get(f"{kv_prefix}/dropped") is not None and time.monotonic() < deadline:
            gevent.sleep(0.2)
        assert kv.get(f"{kv_prefix}/dropped") is None
        assert time.monotonic() < deadline
        assert kv.get(f"{kv_prefix}/kept").value == b"k"
        assert not keeper.lost
    finally:
        keeper.stop()
        kv.revoke_lease(kept)
