"""The request tracker over both KV backends: paged loading, bad records, bounded memory."""
import contextlib

import gevent
import pytest

from mr import codec
from mr.engine import tracker as tracker_module
from mr.engine.tracker import RequestTracker, WorkerRequests
from mr.kv.base import KVError
from mr.kv.memory import MemoryKV
from mr.models import Request
from mr.models.keys import Keys


def store(kv, keys, state, workflow="w", **extra):
    request = Request(workflow=workflow, job_name="j", root_invocation_id="a" * 32, state=state,
                      blocking=False)
    value = {**codec.decode(request.encode()), **extra}
    kv.put(keys.entity(Request.kind, workflow, request.request_id), codec.encode(value))
    return request.request_id


@contextlib.contextmanager
def following(kv, kv_prefix: str, tracker_class=RequestTracker):
    """A tracker following workflow ``w``, and the keys it reads; stopped afterwards."""
    keys = Keys(kv_prefix)
    tracker = tracker_class(kv, keys)
    tracker.start("w")
    try:
        yield tracker, keys
    finally:
        tracker.stop()


def test_loading_pages_skips_bad_records_and_keeps_only_running_ones(kv, kv_prefix,
                                                                     monkeypatch):
    monkeypatch.setattr(tracker_module, "LOAD_PAGE_SIZE", 3)
    keys = Keys(kv_prefix)
    running = [store(kv, keys, "running") for _ in range(7)]
    failed = store(kv, keys, "failed", error={"type": "E", "message": "m" * 100000})
    upgraded = store(kv, keys, "running", field_of_a_newer_version=1)
    kv.put(keys.entity(Request.kind, "w", "f" * 32), b"\xc1 not a record")
    tracker = RequestTracker(kv, keys)
    tracker.start("w")
    try:
        assert set(tracker._requests) == {("w", request_id) for request_id in
                                          running + [upgraded]}
        assert tracker.is_finished("w", failed) and not tracker.is_finished("w", running[0])
        assert tracker.get("w", failed).error["message"] == "m" * 100000  # read when asked
        later = store(kv, keys, "running")  # the watch goes on after the bad record
        deadline = 50
        while ("w", later) not in tracker._requests and deadline:
            gevent.sleep(0.1)
            deadline -= 1
        assert ("w", later) in tracker._requests
    finally:
        tracker.stop()


def test_finished_requests_are_remembered_within_a_bound(kv, kv_prefix, monkeypatch):
    monkeypatch.setattr(tracker_module, "FINISHED_REMEMBERED", 5)
    keys = Keys(kv_prefix)
    finished = [store(kv, keys, "done") for _ in range(8)]
    tracker = RequestTracker(kv, keys)
    tracker.start("w")
    try:
        assert len(tracker._finished) == 5 and tracker._requests == {}
    finally:
        tracker.stop()
    assert len(finished) == 8


def test_a_request_seen_finishing_during_a_read_is_not_cached_as_running(kv, kv_prefix,
                                                                          monkeypatch):
    with following(kv, kv_prefix) as (tracker, keys):
        request_id = store(kv, keys, "running")
        read = kv.get

        def read_then_finish_meanwhile(key):
            stale = read(key)
            stored = Request.decode(request_id, stale.value)
            kv.put(key, stored.replace(state="done").encode())
            with gevent.Timeout(5):
                while not tracker.is_finished("w", request_id):
                    gevent.sleep(0.01)
            return stale

        tracker._requests.pop(("w", request_id), None)  # as if its creation were not seen yet
        monkeypatch.setattr(tracker._kv, "get", read_then_finish_meanwhile)
        assert tracker.get("w", request_id).state == "running"  # what the read said
        assert ("w", request_id) not in tracker._requests


def test_a_waiter_learns_that_a_request_removed_while_running_is_gone(kv, kv_prefix):
    with following(kv, kv_prefix) as (tracker, keys):
        request_id = store(kv, keys, "running")
        with gevent.Timeout(5):
            while ("w", request_id) not in tracker._requests:
                gevent.sleep(0.01)
        waiter = gevent.spawn(tracker.wait, "w", request_id, 10)
        gevent.sleep(0.1)
        kv.delete(keys.entity(Request.kind, "w", request_id))
        assert waiter.get(timeout=5) is None  # gone, not "running"


def wait_until(condition, timeout_s: float = 5) -> None:
    with gevent.Timeout(timeout_s):
        while not condition():
            gevent.sleep(0.01)


def finish(kv, keys, request_id: str) -> None:
    key = keys.entity(Request.kind, "w", request_id)
    kv.put(key, Request.decode(request_id, kv.get(key).value).replace(state="done").encode())


def reads_refused(monkeypatch, kv) -> None:
    """From now on the KV answers no read: what follows must come from the tracker's cache."""
    def refused(key):
        raise AssertionError(f"read {key} from the KV")

    monkeypatch.setattr(kv, "get", refused)


def test_the_oldest_finished_request_is_forgotten_first(kv, kv_prefix, monkeypatch):
    monkeypatch.setattr(tracker_module, "FINISHED_REMEMBERED", 2)
    with following(kv, kv_prefix) as (tracker, keys):
        finished = []
        for _ in range(3):
            finished.append(store(kv, keys, "done"))
            wait_until(lambda: tracker.is_finished("w", finished[-1]))
        assert [tracker.is_finished("w", request_id) for request_id in finished] == [
            False, True, True]


def test_a_request_recorded_here_is_known_without_a_kv_read(kv, kv_prefix, monkeypatch):
    """What the front end records, its wait and the worker's first look find in the cache."""
    with following(kv, kv_prefix) as (tracker, keys):
        request = Request(workflow="w", job_name="j", root_invocation_id="a" * 32,
                          state="running", blocking=True)
        tracker.track(request)
        reads_refused(monkeypatch, kv)
        assert tracker.get("w", request.request_id) is request
        assert tracker.running_count("w") == 1


def test_the_record_of_a_request_recorded_here_is_not_decoded_again_when_its_watch_sees_it(
        kv_prefix, monkeypatch):
    """Only its later versions are (its final state, here). Over the memory store, whose writes
    do not yield: a record's watch event cannot come before the process tracks it (over etcd
    it may, and is then decoded: only a saving is lost)."""
    kv = MemoryKV()
    decoded = []
    decode = Request.decode.__func__
    monkeypatch.setattr(Request, "decode", classmethod(
        lambda cls, key, data: decoded.append(key) or decode(cls, key, data)))
    with following(kv, kv_prefix) as (tracker, keys):
        request_id = store(kv, keys, "running")
        wait_until(lambda: tracker.running_count("w") == 1)  # another front end's: decoded
        mine = Request(workflow="w", job_name="j", root_invocation_id="a" * 32,
                       state="running", blocking=True)
        key = keys.entity(Request.kind, "w", mine.request_id)
        tracker.track(mine.with_revision(kv.put(key, mine.encode()).revision))
        finish(kv, keys, mine.request_id)  # decoded: a read for the test, and by the watch
        wait_until(lambda: tracker.is_finished("w", mine.request_id))
        assert decoded == [request_id, mine.request_id, mine.request_id]


def test_a_request_seen_finished_is_not_tracked_as_running_afterwards(kv, kv_prefix):
    with following(kv, kv_prefix) as (tracker, keys):
        request_id = store(kv, keys, "done")
        wait_until(lambda: tracker.is_finished("w", request_id))
        running = Request.decode(request_id, kv.get(
            keys.entity(Request.kind, "w", request_id)).value).replace(state="running")
        tracker.track(running)  # a late copy of what it was when recorded
        assert tracker.running_count("w") == 0


def test_a_request_read_from_the_kv_is_cached_when_its_workflow_is_followed(kv, kv_prefix,
                                                                          monkeypatch):
    with following(kv, kv_prefix) as (tracker, keys):
        request_id = store(kv, keys, "running")
        wait_until(lambda: ("w", request_id) in tracker._requests)
        tracker._requests.pop(("w", request_id))  # as if its creation were not seen yet
        stored = kv.get(keys.entity(Request.kind, "w", request_id))
        read = tracker.get("w", request_id)
        assert (read.request_id, read.state, read.mod_revision) == (
            request_id, "running", stored.mod_revision)
        reads_refused(monkeypatch, kv)
        assert tracker.get("w", request_id).request_id == request_id
        assert tracker.running_count("w") == 1


def test_a_request_of_a_workflow_not_followed_is_read_afresh_every_time(kv, kv_prefix):
    """Nothing would tell this process that it finished: it is never cached."""
    keys = Keys(kv_prefix)
    tracker = RequestTracker(kv, keys)
    request_id = store(kv, keys, "running")
    assert tracker.get("w", request_id).state == "running"
    finish(kv, keys, request_id)
    assert tracker.get("w", request_id).state == "done"
    assert tracker.running_count("w") == 0


def test_a_finished_request_no_longer_remembered_is_read_but_not_counted(kv, kv_prefix,
                                                                         monkeypatch):
    monkeypatch.setattr(tracker_module, "FINISHED_REMEMBERED", 1)
    with following(kv, kv_prefix) as (tracker, keys):
        forgotten, later = store(kv, keys, "done"), store(kv, keys, "done")
        wait_until(lambda: not tracker.is_finished("w", forgotten)
                   and tracker.is_finished("w", later))
        assert tracker.get("w", forgotten).state == "done"
        assert tracker.running_count("w") == 0


def test_a_wait_that_ends_leaves_no_waiter_behind(kv, kv_prefix):
    """However a wait ends (timed out, or finished before it began), its process keeps
    nothing of it: a front end waits for millions of requests."""
    with following(kv, kv_prefix) as (tracker, keys):
        running, done = store(kv, keys, "running"), store(kv, keys, "done")
        wait_until(lambda: tracker.is_finished("w", done))
        with pytest.raises(gevent.Timeout):
            tracker.wait("w", running, 0.05)
        assert tracker.wait("w", done, 5).state == "done"
        assert tracker._waiters == {}


def test_a_watch_that_fell_behind_compaction_reloads_what_it_missed():
    """Its requests are read again: those that finished meanwhile are known finished, those
    removed are no longer counted (other workflows' are kept), and the watch goes on."""
    kv, keys = MemoryKV(), Keys("/t")
    tracker = RequestTracker(kv, keys)
    removed, finishing = store(kv, keys, "running"), store(kv, keys, "running")
    missed_from = kv.current_revision()
    tracker._load("w")
    tracker.track(Request(workflow="v", job_name="j", root_invocation_id="a" * 32,
                          state="running", blocking=True))  # another workflow's: kept
    kv.delete(keys.entity(Request.kind, "w", removed))
    finish(kv, keys, finishing)
    kv.compact(kv.current_revision())
    follower = gevent.spawn(tracker._follow, "w", missed_from)
    tracker._greenlets["w"] = follower
    try:
        wait_until(lambda: tracker.is_finished("w", finishing))
        assert (tracker.running_count("w"), tracker.running_count("v")) == (0, 1)
        later = store(kv, keys, "running")
        wait_until(lambda: tracker.running_count("w") == 1)
        assert tracker.get("w", later).state == "running"
    finally:
        tracker.stop()


def test_a_request_loaded_at_start_keeps_the_revision_it_was_read_at(kv, kv_prefix):
    keys = Keys(kv_prefix)
    request_id = store(kv, keys, "running")
    tracker = RequestTracker(kv, keys)
    tracker.start("w")
    try:
        assert tracker.get("w", request_id).mod_revision == kv.get(
            keys.entity(Request.kind, "w", request_id)).mod_revision
    finally:
        tracker.stop()


def test_stopping_one_workflow_keeps_following_the_others(kv, kv_prefix):
    keys = Keys(kv_prefix)
    tracker = RequestTracker(kv, keys)
    tracker.start("w")
    tracker.start("v")
    try:
        tracker.stop("w")
        tracker.stop("never-followed")  # no error
        store(kv, keys, "running", workflow="w")
        store(kv, keys, "running", workflow="v")
        wait_until(lambda: tracker.running_count("v") == 1)
        gevent.sleep(0.2)  # what the stopped watch would have seen by now
        assert tracker.running_count("w") == 0
    finally:
        tracker.stop()


class WatchBreaksOnce:
    """The KV, whose first watch breaks after its first event (a connection lost)."""

    def __init__(self, inner):
        self._inner = inner
        self.broken = False

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def watch(self, *args, **kwargs):
        watch = self._inner.watch(*args, **kwargs)
        if self.broken:
            return watch
        self.broken = True
        return BreaksAfterOneEvent(watch)


class BreaksAfterOneEvent:
    def __init__(self, inner):
        self._inner = inner

    def __enter__(self):
        self._inner.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self._inner.__exit__(*exc_info)

    def __iter__(self):
        for event in self._inner:
            yield event
            raise KVError("the connection broke")


def test_a_watch_that_breaks_goes_on_after_the_last_event_it_saw(kv_prefix):
    """After a pause, from the revision after that event: nothing is missed or seen twice."""
    kv, keys = WatchBreaksOnce(MemoryKV()), Keys(kv_prefix)
    tracker = RequestTracker(kv, keys)
    tracker.start("w")
    try:
        first = store(kv, keys, "running")
        wait_until(lambda: kv.broken and tracker.running_count("w") == 1)
        second = store(kv, keys, "running")  # while the watch is down
        finish(kv, keys, first)
        wait_until(lambda: tracker.is_finished("w", first))
        assert tracker.running_count("w") == 1 and tracker.get("w", second).state == "running"
    finally:
        tracker.stop()


def test_a_worker_alone_follows_finished_keys_not_records(kv, kv_prefix):
    keys = Keys(kv_prefix)
    finished_before = store(kv, keys, "failed")
    kv.put(keys.finished("w") + finished_before, b"")
    with following(kv, kv_prefix, WorkerRequests) as (tracker, _):
        assert tracker.is_finished("w", finished_before)
        done = store(kv, keys, "done")  # a record: only the front ends follow those
        cancelled = store(kv, keys, "cancelled")
        kv.put(keys.finished("w") + cancelled, b"")
        wait_until(lambda: tracker.is_finished("w", cancelled))
        assert not tracker.is_finished("w", done)


def test_a_worker_alone_keeps_a_bounded_number_of_the_running_requests_it_read(
        kv, kv_prefix, monkeypatch):
    monkeypatch.setattr(tracker_module, "WORKER_CACHED", 2)
    with following(kv, kv_prefix, WorkerRequests) as (tracker, keys):
        first, second, third = (store(kv, keys, "running") for _ in range(3))
        assert [tracker.get("w", request_id).request_id
                for request_id in (first, second, third)] == [first, second, third]
        reads_refused(monkeypatch, kv)
        assert tracker.get("w", third).request_id == third
        assert tracker.get("w", second).request_id == second
        with pytest.raises(AssertionError, match="read .* from the KV"):
            tracker.get("w", first)


def test_a_worker_alone_drops_its_copy_of_a_request_and_stops_its_invocations_when_it_finishes(
        kv, kv_prefix):
    with following(kv, kv_prefix, WorkerRequests) as (tracker, keys):
        stopped = []
        tracker.on_finish.append(lambda *identity: stopped.append(identity))
        request_id = store(kv, keys, "running")
        assert tracker.get("w", request_id).state == "running"
        assert ("w", request_id) in tracker._requests
        finish(kv, keys, request_id)
        kv.put(keys.finished("w") + request_id, b"")
        wait_until(lambda: tracker.is_finished("w", request_id))
        assert tracker._requests == {} and stopped == [("w", request_id)]
        kv.delete(keys.finished("w") + request_id)  # its release: nothing to learn, once more
        second = store(kv, keys, "running")
        kv.put(keys.finished("w") + second, b"")
        wait_until(lambda: tracker.is_finished("w", second))
        assert stopped == [("w", request_id), ("w", second)]


def carried(kv, keys, request_id: str) -> tuple[int, bytes]:
    """A request's record as its root message carries it: (revision, encoded)."""
    stored = kv.get(keys.entity(Request.kind, "w", request_id))
    return stored.mod_revision, stored.value


def finished_and_marked(kv, keys, request_id: str) -> None:
    finish(kv, keys, request_id)
    kv.put(keys.finished("w") + request_id, b"")


def test_a_worker_alone_takes_the_carried_record_of_a_request_created_since_it_listed(
        kv, kv_prefix, monkeypatch):
    with following(kv, kv_prefix, WorkerRequests) as (tracker, keys):
        request_id = store(kv, keys, "running", context={"n": 1})
        record = carried(kv, keys, request_id)
        reads_refused(monkeypatch, kv)
        request = tracker.get("w", request_id, record)
        assert (request.request_id, request.state, request.context) == (request_id, "running",
                                                                        {"n": 1})
        assert request.mod_revision == record[0]
        assert tracker.get("w", request_id) == request  # cached, as one read would be


def test_a_worker_alone_reads_a_request_created_before_it_listed_whatever_came_with_it(
        kv, kv_prefix):
    """Its finish may have come and gone before the listing: only the KV knows."""
    keys = Keys(kv_prefix)
    request_id = store(kv, keys, "running")
    record = carried(kv, keys, request_id)
    finish(kv, keys, request_id)  # finished and released: no finished key left to list
    with following(kv, kv_prefix, WorkerRequests) as (tracker, _):
        assert tracker.get("w", request_id, record).state == "done"


def test_a_worker_alone_reads_a_request_whose_finish_it_may_have_forgotten(kv, kv_prefix,
                                                                          monkeypatch):
    monkeypatch.setattr(tracker_module, "FINISHED_REMEMBERED", 1)
    with following(kv, kv_prefix, WorkerRequests) as (tracker, keys):
        older, forgotten, remembered = (store(kv, keys, "running") for _ in range(3))
        records = {request_id: carried(kv, keys, request_id)
                   for request_id in (older, forgotten, remembered)}
        finished_and_marked(kv, keys, forgotten)
        finished_and_marked(kv, keys, older)
        wait_until(lambda: tracker.is_finished("w", older))  # and ``forgotten`` no longer is
        newer = store(kv, keys, "running")
        newer_record = carried(kv, keys, newer)
        assert tracker.get("w", forgotten, records[forgotten]).state == "done"
        assert tracker.get("w", remembered, records[remembered]).state == "running"
        reads_refused(monkeypatch, kv)
        assert tracker.get("w", newer, newer_record).state == "running"


def test_a_worker_alone_reads_a_request_whose_carried_record_it_cannot_take(kv, kv_prefix,
                                                                           monkeypatch):
    with following(kv, kv_prefix, WorkerRequests) as (tracker, keys):
        finished_record = store(kv, keys, "failed")
        undecodable = store(kv, keys, "running")
        records = [carried(kv, keys, finished_record), (carried(kv, keys, undecodable)[0],
                                                        b"not a record")]
        got = []
        monkeypatch.setattr(kv, "get", lambda key, read=kv.get: got.append(key) or read(key))
        assert tracker.get("w", finished_record, records[0]).state == "failed"
        assert tracker.get("w", undecodable, records[1]).state == "running"
        assert got == [keys.entity(Request.kind, "w", request_id)
                       for request_id in (finished_record, undecodable)]


def test_a_front_end_reads_what_it_does_not_follow_whatever_came_with_it(kv, kv_prefix):
    with following(kv, kv_prefix) as (tracker, keys):
        request_id = store(kv, keys, "running")
        record = carried(kv, keys, request_id)
        finish(kv, keys, request_id)
        wait_until(lambda: tracker.is_finished("w", request_id))
        assert tracker.get("w", request_id, record).state == "done"
