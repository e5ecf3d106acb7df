"""Transactions made while another is in flight go to etcd together (mr.kv.batching), and
each still has the outcome it would have had alone."""
import gevent
import pytest

from benchmarks import etcd_batching
from mr.kv import batching
from mr.kv.base import Compare, Get, LeaseNotFoundError, Put
from tests.conftest import etcd_client


@pytest.fixture
def kv(etcd_server):
    client = etcd_client(etcd_server)
    yield client
    client.close()


@pytest.fixture
def calls(kv, monkeypatch):
    """The transaction calls that reach etcd: how many transactions each carried."""
    sent = []
    pool = kv.members[kv.base_url]
    post = pool.post

    def counted(path, body, *arguments):
        if path == "/v3/kv/txn":
            sent.append(body.count(b"request_txn") or 1)
        return post(path, body, *arguments)

    monkeypatch.setattr(pool, "post", counted)
    return sent


def absent(key):
    return Compare(key, "create_revision", "==", 0)


def all_at_once(*transactions):
    """Run each (compare, success, failure) in a greenlet of its own, spawned together: the
    first is in flight while the others are made. Returns their results, in order."""
    greenlets = [gevent.spawn(kv_txn, *transaction) for kv_txn, *transaction in transactions]
    gevent.joinall(greenlets, raise_error=True)
    return [greenlet.value for greenlet in greenlets]


def test_transactions_made_while_one_is_in_flight_go_in_one_call_with_their_own_answers(
        kv, kv_prefix, calls):
    """Comparing a key that no one writes (the marker) is no conflict."""
    marker = f"{kv_prefix}/marker"
    kv.put(f"{kv_prefix}/taken", b"before")
    results = all_at_once(
        (kv.txn, [absent(f"{kv_prefix}/first")], [Put(f"{kv_prefix}/first", b"1")]),
        *((kv.txn, [absent(marker), absent(f"{kv_prefix}/{n}")], [Put(f"{kv_prefix}/{n}", b"n")])
          for n in range(10)),
        (kv.txn, [absent(marker), absent(f"{kv_prefix}/taken")],
         [Put(f"{kv_prefix}/taken", b"again")], [Get(f"{kv_prefix}/taken")]))
    assert calls == [1, 11]
    assert [result.succeeded for result in results] == [True] * 11 + [False]
    assert results[-1].responses[0].kvs[0].value == b"before"
    assert len({result.revision for result in results[1:]}) == 1
    assert [stored.value for stored in kv.range(f"{kv_prefix}/", prefix=True).kvs] == [
        b"n"] * 10 + [b"1", b"before"]


def test_transactions_that_write_what_another_reads_never_go_together(kv, kv_prefix, calls):
    """Each pair writes what the other compares: one after the other, exactly one of each
    pair succeeds; together, both would (etcd compares before it writes)."""
    pairs = [(f"{kv_prefix}/x{n}", f"{kv_prefix}/y{n}") for n in range(5)]
    results = all_at_once(
        (kv.txn, [], [Put(f"{kv_prefix}/first", b"1")]),
        *((kv.txn, [absent(x)], [Put(y, b"1")]) for x, y in pairs),
        *((kv.txn, [absent(y)], [Put(x, b"1")]) for x, y in pairs))
    outcomes = [result.succeeded for result in results[1:]]
    assert [outcomes[n] + outcomes[n + 5] for n in range(5)] == [1] * 5
    assert calls == [1, 5, 5]


def test_a_transaction_etcd_refuses_gets_its_own_error_and_the_others_go_through(kv,
                                                                                kv_prefix):
    lease = kv.grant_lease(10)
    kv.revoke_lease(lease)
    greenlets = [gevent.spawn(kv.txn, [], [Put(f"{kv_prefix}/first", b"1")]),
                 gevent.spawn(kv.txn, [], [Put(f"{kv_prefix}/ok", b"1")]),
                 gevent.spawn(kv.txn, [], [Put(f"{kv_prefix}/leased", b"1", lease=lease)]),
                 gevent.spawn(kv.txn, [], [Put(f"{kv_prefix}/also-ok", b"1")])]
    gevent.joinall(greenlets)
    assert [greenlet.successful() for greenlet in greenlets] == [True, True, False, True]
    assert isinstance(greenlets[2].exception, LeaseNotFoundError)
    assert [stored.key for stored in kv.range(f"{kv_prefix}/", prefix=True).kvs] == [
        f"{kv_prefix}/{name}" for name in ("also-ok", "first", "ok")]


def test_a_transaction_whose_caller_stops_before_it_is_sent_is_never_sent(kv, kv_prefix):
    first = gevent.spawn(kv.txn, [], [Put(f"{kv_prefix}/first", b"1")])
    stopped = gevent.spawn(kv.txn, [], [Put(f"{kv_prefix}/stopped", b"1")])
    gevent.sleep(0)  # both made: the first in flight, the second waiting for it
    stopped.kill()
    first.get()
    gevent.sleep(0.2)
    assert kv.get(f"{kv_prefix}/stopped") is None


def test_a_large_transaction_goes_alone_at_once(kv, kv_prefix, calls):
    large = b"v" * (batching.MAX_SIZE_TOGETHER + 1)
    all_at_once((kv.txn, [], [Put(f"{kv_prefix}/first", b"1")]),
                (kv.txn, [], [Put(f"{kv_prefix}/large", large)]),
                (kv.txn, [], [Put(f"{kv_prefix}/small", b"1")]))
    assert calls == [1, 1, 1]
    assert kv.get(f"{kv_prefix}/large").value == large


def test_the_batching_benchmark_measures_both_ways(monkeypatch, capsys):
    monkeypatch.setattr(etcd_batching, "TRANSACTIONS", 64)
    assert etcd_batching.main(["--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        " 1 at once, alone   ", " 8 at once, alone   ", " 8 at once, together",
        "16 at once, alone   ", "16 at once, together"]
    assert all("transactions/s; CPU ms per transaction: etcd " in line for line in lines)
    assert batching.CALLS_IN_FLIGHT == 1  # put back after each case
