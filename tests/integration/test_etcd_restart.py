"""A real etcd is restarted under load: the client recovers by itself and its watch loses nothing."""
import signal
import time
from typing import Callable

import gevent
import gevent.event
import pytest

from mr import devservers
from mr.kv.base import KVError
from mr.kv.etcd import EtcdKV
from tests.conftest import etcd_client


def _drain(watch, until_revision, timeout):
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (not events or events[-1].revision < until_revision):
        event = watch.get(timeout=0.2)
        if event is not None:
            events.append(event)
    return events


def assert_writes_and_a_watch_come_through(kv: EtcdKV, prefix: str,
                                           fault: Callable[[], None]) -> None:
    """Three writers put keys under ``prefix`` while a watch of it is open, and ``fault()``
    strikes after a second. The writes must recover, and the watch must deliver exactly what a
    watch opened afterwards delivers, every acknowledged write among it."""
    start = kv.current_revision() + 1
    watch = kv.watch(prefix, prefix=True, start_revision=start)
    acknowledged: list[int] = []
    stopping = gevent.event.Event()

    def writer(number):
        index = 0
        while not stopping.is_set():
            try:
                acknowledged.append(kv.put(f"{prefix}{number}/{index}", b"x").revision)
            except KVError:
                pass  # cut off by the fault: applied or not, the watch tells
            index += 1
            gevent.sleep(0.01)

    writers = [gevent.spawn(writer, number) for number in range(3)]
    gevent.sleep(1.0)
    acknowledged_before_fault = len(acknowledged)
    fault()
    # Writes forwarded to a dead leader wait for etcd's request timeout (7 s) to fail.
    with gevent.Timeout(30, False):
        while len(acknowledged) < acknowledged_before_fault + 50:
            gevent.sleep(0.1)
    stopping.set()
    gevent.joinall(writers, raise_error=True)

    assert len(acknowledged) >= acknowledged_before_fault + 50, "writes did not recover"
    last = kv.current_revision()
    resumed = _drain(watch, last, timeout=15)
    watch.cancel()
    with kv.watch(prefix, prefix=True, start_revision=start) as reference_watch:
        reference = _drain(reference_watch, last, timeout=15)
    assert reference and reference[-1].revision == last
    assert [(e.revision, e.kv.key) for e in resumed] == [(e.revision, e.kv.key) for e in reference]
    assert set(acknowledged) <= {e.revision for e in resumed}


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_watch_resumes_and_writes_recover_across_an_etcd_restart(tmp_path, stop_signal):
    server = devservers.etcd(tmp_path, tie_to_parent=True).start()
    kv = etcd_client(server, timeout_s=15)
    try:
        assert_writes_and_a_watch_come_through(
            kv, "/restart/", lambda: (server.stop(stop_signal), gevent.sleep(0.5),
                                      server.start()))
    finally:
        kv.close()
        server.stop()
