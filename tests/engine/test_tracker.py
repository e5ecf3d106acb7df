"""The request tracker over both KV backends: paged loading, bad records, bounded memory."""
import gevent

from mr import codec
from mr.engine import tracker as tracker_module
from mr.engine.tracker import RequestTracker
from mr.models import Request
from mr.models.keys import Keys


def store(kv, keys, state, **extra):
    request = Request(workflow="w", job_name="j", root_invocation_id="a" * 32, state=state,
                      blocking=False)
    value = {**codec.decode(request.encode()), **extra}
    kv.put(keys.entity(Request.kind, "w", request.request_id), codec.encode(value))
    return request.request_id


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
    keys = Keys(kv_prefix)
    tracker = RequestTracker(kv, keys)
    tracker.start("w")
    try:
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
    finally:
        tracker.stop()


def test_a_waiter_learns_that_a_request_removed_while_running_is_gone(kv, kv_prefix):
    keys = Keys(kv_prefix)
    tracker = RequestTracker(kv, keys)
    tracker.start("w")
    try:
        request_id = store(kv, keys, "running")
        with gevent.Timeout(5):
            while ("w", request_id) not in tracker._requests:
                gevent.sleep(0.01)
        waiter = gevent.spawn(tracker.wait, "w", request_id, 10)
        gevent.sleep(0.1)
        kv.delete(keys.entity(Request.kind, "w", request_id))
        assert waiter.get(timeout=5) is None  # gone, not "running"
    finally:
        tracker.stop()
