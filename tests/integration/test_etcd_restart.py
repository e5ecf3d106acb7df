"""A real etcd is restarted under load: the client recovers by itself and its watch loses nothing."""
import signal
import time

import gevent
import gevent.event
import pytest

from mr import devservers
from mr.kv.base import KVError
from tests.conftest import etcd_client


def _drain(watch, until_revision, timeout):
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (not events or events[-1].revision < until_revision):
        event = watch.get(timeout=0.2)
        if event is not None:
            events.append(event)
    return events


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_watch_resumes_and_writes_recover_across_an_etcd_restart(tmp_path, stop_signal):
    server = devservers.etcd(tmp_path, tie_to_parent=True).start()
    kv = etcd_client(server, timeout_s=15)
    try:
        start = kv.current_revision() + 1
        watch = kv.watch("/restart/", prefix=True, start_revision=start)
        acknowledged: list[int] = []
        stopping = gevent.event.Event()

        def writer(number):
            index = 0
            while not stopping.is_set():
                try:
                    acknowledged.append(kv.put(f"/restart/{number}/{index}", b"x").revision)
                except KVError:
                    pass  # cut off mid-request by the restart: applied or not, the watch tells
                index += 1
                gevent.sleep(0.01)

        writers = [gevent.spawn(writer, number) for number in range(3)]
        gevent.sleep(1.0)
        acknowledged_before_restart = len(acknowledged)
        server.stop(stop_signal)
        gevent.sleep(0.5)
        server.start()
        gevent.sleep(1.5)
        stopping.set()
        gevent.joinall(writers, raise_error=True)

        assert len(acknowledged) > acknowledged_before_restart + 10, "writes did not recover"
        last = kv.current_revision()
        resumed = _drain(watch, last, timeout=15)
        watch.cancel()
        with kv.watch("/restart/", prefix=True, start_revision=start) as reference_watch:
            reference = _drain(reference_watch, last, timeout=15)

        assert reference and reference[-1].revision == last
        assert [(e.revision, e.kv.key) for e in resumed] == [
            (e.revision, e.kv.key) for e in reference]
        assert set(acknowledged) <= {e.revision for e in resumed}
    finally:
        kv.close()
        server.stop()
