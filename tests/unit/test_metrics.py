"""The metrics of mr.metrics: what each call moves, the KV timing, the scrape-time gauges, the
gunicorn directory and its sums over processes, a worker's own port, and ``/metrics`` of an
embedded mr running real requests.

Metrics are the process's: every test compares a scrape after with a scrape before.
"""
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Callable, TypeVar

import gevent
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mr.executor import ExecutorPool
from mr.kv.base import LeaseNotFoundError, Put
from mr.kv.memory import MemoryKV
from mr.metrics import exposition, instruments, multiprocess
from mr.metrics.kv import TimedKV
from mr.metrics.queue_depth import EmbeddedQueueDepth, NsqdQueueDepth
from mr.models import Request
from mr.queue.memory import MemoryQueue
from mr.service import Service
from mr.settings import Settings, SettingsError
from mr.web.app import create_app
from tests.unit.executor_helpers import task
from tests.web.workflow import WORKFLOW, populate

T = TypeVar("T")


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, by name and labels."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def scrape() -> dict:
    return samples(generate_latest(REGISTRY).decode())


def first_scrape_where(read: Callable[[], T], holds: Callable[[T], bool],
                       timeout_s: float = 30.0) -> T:
    """Scrapes (``read``) until one where ``holds`` (the last one, after ``timeout_s``): an
    invocation is counted just after its commit, which a client may hear of first."""
    deadline = time.monotonic() + timeout_s
    scraped = read()
    while not holds(scraped) and time.monotonic() < deadline:
        gevent.sleep(0.05)
        scraped = read()
    return scraped


def finished_request(state: str, seconds: float) -> Request:
    return Request(workflow="wf", request_id="1" * 32, job_name="count",
                   root_invocation_id="2" * 32, root_step="s", blocking=True, state=state,
                   created_at=1000.0, finished_at=1000.0 + seconds)


def test_a_finished_request_counts_once_by_outcome_with_its_duration():
    before = scrape()
    instruments.request_finished(finished_request("failed", 3.0))
    after = scrape()
    for outcome, moved in (("failed", 1), ("done", 0), ("cancelled", 0)):
        assert value(after, "mr_requests_total", workflow="wf", job="count", outcome=outcome) \
            - value(before, "mr_requests_total", workflow="wf", job="count", outcome=outcome) \
            == moved
    labels = {"workflow": "wf", "job": "count"}
    assert value(after, "mr_request_duration_seconds_count", **labels) \
        - value(before, "mr_request_duration_seconds_count", **labels) == 1
    assert value(after, "mr_request_duration_seconds_sum", **labels) \
        - value(before, "mr_request_duration_seconds_sum", **labels) == pytest.approx(3.0)
    for bound, moved in (("2.5", 0), ("5.0", 1)):  # the 3 s went into the buckets from 5 s
        assert value(after, "mr_request_duration_seconds_bucket", le=bound, **labels) \
            - value(before, "mr_request_duration_seconds_bucket", le=bound, **labels) == moved


def test_a_running_invocation_is_in_flight_until_it_ends_even_by_an_error():
    before = scrape()
    with pytest.raises(RuntimeError):
        with instruments.invocation_running("reduce", redelivered=True):
            during = scrape()
            raise RuntimeError("the tree failed")
    after = scrape()
    in_flight = value(before, "mr_invocations_in_flight", kind="reduce")
    assert value(during, "mr_invocations_in_flight", kind="reduce") == in_flight + 1
    assert value(after, "mr_invocations_in_flight", kind="reduce") == in_flight
    for name, moved in (("mr_invocation_duration_seconds_count", 1),
                        ("mr_invocation_redeliveries_total", 1)):
        assert value(after, name, kind="reduce") - value(before, name, kind="reduce") == moved
        assert value(after, name, kind="map") == value(before, name, kind="map")


def test_a_first_delivery_is_no_redelivery_and_a_retry_counts_by_kind():
    before = scrape()
    with instruments.invocation_running("map", redelivered=False):
        pass
    instruments.invocation_retried("map")
    after = scrape()
    assert value(after, "mr_invocation_redeliveries_total", kind="map") == \
        value(before, "mr_invocation_redeliveries_total", kind="map")
    assert value(after, "mr_invocation_retries_total", kind="map") - \
        value(before, "mr_invocation_retries_total", kind="map") == 1


def test_every_kv_call_is_timed_by_operation_and_failures_are_counted():
    kv = TimedKV(MemoryKV())
    before = scrape()
    kv.put("a", b"1")
    assert kv.get("a").value == b"1"  # a convenience: timed as the range it makes
    assert kv.txn([], [Put("b", b"2")]).succeeded
    with pytest.raises(LeaseNotFoundError):
        kv.refresh_lease(12345)
    after = scrape()
    name = "mr_kv_operation_duration_seconds_count"
    for operation, moved in (("put", 1), ("range", 1), ("txn", 1), ("refresh_lease", 1),
                             ("delete", 0)):
        assert value(after, name, operation=operation) - \
            value(before, name, operation=operation) == moved, operation
    assert value(after, "mr_kv_errors_total", operation="refresh_lease") - \
        value(before, "mr_kv_errors_total", operation="refresh_lease") == 1
    assert value(after, "mr_kv_errors_total", operation="put") == \
        value(before, "mr_kv_errors_total", operation="put")
    kv.close()


def test_the_executor_gauges_count_busy_children_and_their_busy_time():
    before = scrape()
    with ExecutorPool(size=2) as pool:
        started = scrape()
        running = gevent.spawn(pool.run, task("mapper", """
            import time
            time.sleep(0.5)  # long enough to be seen busy by the scrape below
            yield MrConfigureToReturn()
        """))
        while pool.busy == 0:
            gevent.sleep(0.01)
        during = scrape()
        assert running.get().ok
        after = scrape()
    closed = scrape()
    children = value(before, "mr_executor_children")
    assert value(started, "mr_executor_children") == children + 2
    assert value(during, "mr_executor_busy_children") == \
        value(before, "mr_executor_busy_children") + 1
    assert value(after, "mr_executor_busy_children") == value(before, "mr_executor_busy_children")
    assert value(after, "mr_executor_busy_seconds_total") - \
        value(before, "mr_executor_busy_seconds_total") >= 0.5
    assert value(closed, "mr_executor_children") == children


def test_the_embedded_queue_depth_counts_what_waits_for_the_channel():
    queue = MemoryQueue()
    depth = EmbeddedQueueDepth(queue)
    queue.publish("t", b"before any channel")
    assert depth.read("c", ["t", "other"]) == {"t": 1, "other": 0}
    consumer = queue.consume("t", "c", lambda message: gevent.sleep(10), max_in_flight=1)
    gevent.sleep(0)
    queue.publish("t", b"ready")
    queue.publish("t", b"deferred", delay_s=60)
    assert depth.read("c", ["t"]) == {"t": 2}  # the first is in flight, not waiting
    consumer.stop(timeout=0)
    queue.close()


def test_the_nsqd_queue_depth_reads_stats_of_the_workers_channel(nsqd_server):
    http = nsqd_server.addresses["http"]
    topic = f"depth{uuid.uuid4().hex[:12]}"

    def post(path: str, body: bytes = b"") -> None:
        urllib.request.urlopen(urllib.request.Request(f"http://{http}{path}", data=body)).read()

    post(f"/topic/create?topic={topic}")
    try:
        post(f"/channel/create?topic={topic}&channel=workers")
        post(f"/channel/create?topic={topic}&channel=others")
        post(f"/mpub?topic={topic}", b"one\ntwo\nthree")
        post(f"/pub?topic={topic}&defer=60000", b"later")
        assert NsqdQueueDepth([http]).read("workers", [topic, f"{topic}x"]) == \
            {topic: 4, f"{topic}x": 0}  # 3 ready, 1 deferred; a topic never used holds none
    finally:
        post(f"/topic/delete?topic={topic}")


def test_an_nsqd_that_does_not_answer_gives_no_depth_rather_than_a_low_one(caplog):
    silent = f"127.0.0.1:{_closed_port()}"
    assert NsqdQueueDepth([silent]).read("workers", ["t"]) == {}
    assert f"cannot read the queue depth from nsqd {silent}" in caplog.text


def test_a_worker_serves_its_metrics_on_its_own_port_and_reports_its_topics(caplog):
    caplog.set_level("INFO")
    service = embedded_service(worker_metrics_port=0)
    try:
        port = service.worker.metrics_server.server_port
        assert f"serving metrics at http://127.0.0.1:{port}/metrics" in caplog.text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            scraped = samples(answer.read().decode())
        for kind in ("map", "reduce"):
            assert (("mr_queue_depth", frozenset({("topic", f"mr.{WORKFLOW}.{kind}.general")}))
                    in scraped)
        assert value(scraped, "mr_executor_children") >= 1
    finally:
        service.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)


def test_a_worker_metrics_port_in_use_is_a_settings_error():
    with gevent.socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(SettingsError, match=f"MR_WORKER_METRICS_PORT: cannot serve "
                                                f"metrics on 127.0.0.1:{port}"):
            exposition.serve("127.0.0.1", port)


@pytest.mark.parametrize("text, port", [("", -1), ("-1", -1), ("0", 0), ("9400", 9400)])
def test_the_worker_metrics_port_is_a_port_or_none(text, port):
    assert Settings.load({"MR_WORKER_METRICS_PORT": text}).worker_metrics_port == port


@pytest.mark.parametrize("text", ["-2", "65536", "any"])
def test_a_worker_metrics_port_out_of_range_is_refused(text):
    with pytest.raises(SettingsError, match="MR_WORKER_METRICS_PORT"):
        Settings.load({"MR_WORKER_METRICS_PORT": text})


def test_the_metrics_directory_is_emptied_at_start_or_made_and_removed(tmp_path, monkeypatch):
    monkeypatch.setenv(multiprocess.DIRECTORY_VARIABLE, "")  # restored after the test
    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"stale")
    (given / "README").write_text("not ours")
    assert multiprocess.prepare(str(given)) == str(given)
    assert sorted(path.name for path in given.iterdir()) == ["README"]
    assert os.environ[multiprocess.DIRECTORY_VARIABLE] == str(given)
    made = Path(multiprocess.prepare(""))
    assert made.is_dir() and os.environ[multiprocess.DIRECTORY_VARIABLE] == str(made)
    multiprocess.remove_temporary()
    assert not made.exists() and given.is_dir()


#: Run in a process of its own, as a gunicorn worker: it writes to the metrics directory.
WRITER = """
import sys
from mr.metrics import instruments
instruments.REQUESTS.labels("wf", "count", "done").inc()
instruments.IN_FLIGHT.labels("map").inc()
print("written", flush=True)
sys.stdin.read()  # alive until told to exit
"""
#: Any process of the front end: what its /metrics would serve.
READER = """
from mr.metrics.exposition import exposition
print(exposition(None)[0].decode())
"""


def test_in_multiprocess_mode_each_process_serves_the_sums_of_all(tmp_path, monkeypatch):
    """gunicorn's case: two workers write, a third process reads; a worker that exits keeps
    counting in the counters but no longer in the gauge of invocations in flight."""
    monkeypatch.setenv(multiprocess.DIRECTORY_VARIABLE, str(tmp_path))
    writers = [subprocess.Popen([sys.executable, "-c", WRITER], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for writer in writers:
            assert writer.stdout.readline() == "written\n"
        assert read_in_another_process() == (2, 2)
        writers[0].stdin.close()
        assert writers[0].wait(timeout=30) == 0
        multiprocess.forget_process(writers[0].pid)
        assert read_in_another_process() == (2, 1)
    finally:
        for writer in writers:
            writer.kill()
            writer.wait()


def read_in_another_process() -> tuple[float, float]:
    """The requests done and the invocations in flight that a scrape of any process shows."""
    scraped = samples(subprocess.run([sys.executable, "-c", READER], capture_output=True,
                                     text=True, timeout=60, check=True).stdout)
    return (value(scraped, "mr_requests_total", workflow="wf", job="count", outcome="done"),
            value(scraped, "mr_invocations_in_flight", kind="map"))


# An embedded mr, as ``mr run`` assembles it, behind the front end's app.

def embedded_service(**overrides) -> Service:
    service = Service.embedded(Settings.load({}).with_overrides(
        workflow_names=(WORKFLOW,), executor_processes=1, **overrides))
    populate(service.engine.store)
    while not service.engine.served.serves(WORKFLOW):
        gevent.sleep(0.01)
    return service


@pytest.fixture
def front_end():
    service = embedded_service()
    yield create_app(service.engine).test_client()
    service.stop()


def metrics_of(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return samples(response.get_data(as_text=True))


def test_the_metrics_of_an_embedded_mr_move_with_its_requests(front_end):
    before = metrics_of(front_end)
    for arguments in ({"a": 1}, {"b": 2, "c": 3}):
        assert front_end.post(f"/job/{WORKFLOW}/j", json={"arguments": arguments}) \
            .status_code == 200
    assert front_end.post(f"/job/{WORKFLOW}/fails", json={"arguments": {"a": 1}}) \
        .status_code == 422

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    after = first_scrape_where(lambda: metrics_of(front_end), lambda scraped: value(
        scraped, "mr_invocation_duration_seconds_count", kind="map") - value(
        before, "mr_invocation_duration_seconds_count", kind="map") >= 3)

    for job, outcome, count in (("j", "done", 2), ("fails", "failed", 1),
                                ("j", "failed", 0), ("j", "cancelled", 0)):
        assert moved("mr_requests_total", workflow=WORKFLOW, job=job, outcome=outcome) == count
    assert moved("mr_request_duration_seconds_count", workflow=WORKFLOW, job="j") == 2
    assert moved("mr_request_duration_seconds_count", workflow=WORKFLOW, job="fails") == 1
    # Each request is one map invocation that maps and reduces at once.
    assert moved("mr_invocation_duration_seconds_count", kind="map") == 3
    assert moved("mr_invocation_duration_seconds_count", kind="reduce") == 0
    assert moved("mr_invocation_retries_total", kind="map") == 0
    assert value(after, "mr_invocations_in_flight", kind="map") == 0
    assert moved("mr_kv_operation_duration_seconds_count", operation="txn") >= 3
    assert moved("mr_executor_busy_seconds_total") > 0
    assert value(after, "mr_executor_children") >= 1
    assert value(after, "mr_queue_depth", topic=f"mr.{WORKFLOW}.map.general") == 0


def test_a_request_cancelled_at_the_front_end_counts_there_as_cancelled():
    service = embedded_service(consume=False)  # nothing runs it: it waits to be cancelled
    try:
        client = create_app(service.engine).test_client()
        before = metrics_of(client)
        accepted = client.post(f"/job/{WORKFLOW}/j?blocking=false",
                               json={"arguments": {"a": 1}}).get_json()
        assert client.delete(f"/request/{WORKFLOW}/{accepted['request_id']}") \
            .get_json()["state"] == "cancelled"
        after = metrics_of(client)
    finally:
        service.stop()
    for outcome, moved in (("cancelled", 1), ("done", 0)):
        assert value(after, "mr_requests_total", workflow=WORKFLOW, job="j", outcome=outcome) \
            - value(before, "mr_requests_total", workflow=WORKFLOW, job="j", outcome=outcome) \
            == moved
    assert value(after, "mr_request_duration_seconds_count", workflow=WORKFLOW, job="j") - \
        value(before, "mr_request_duration_seconds_count", workflow=WORKFLOW, job="j") == 1


def test_the_metrics_are_served_as_openmetrics_when_asked(front_end):
    response = front_end.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status_code == 200
    assert response.mimetype == "application/openmetrics-text"
    assert response.get_data(as_text=True).endswith("# EOF\n")


def _closed_port() -> int:
    with gevent.socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]
