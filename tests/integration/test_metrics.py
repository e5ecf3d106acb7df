"""The metrics of a local distributed mr: the front end under gunicorn with two workers (their
metrics summed, whichever answers, even after one of them died) and each ``mr worker`` on its
own port, scraped before and after requests."""
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from mr.cli.cluster import start_cluster
from mr.handlers.load import read_definition
from tests.integration.test_cluster import FAULTS, front
from tests.unit.test_metrics import first_scrape_where, samples, value

WORKERS = ("worker-1", "worker-2")
#: Each "children" request: the root maps into this many leaves, each mapped and reduced at
#: once, then the root's reduce.
LEAVES = 4


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("front-end-metrics")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, metrics_dir):
    local = start_cluster(tmp_path_factory.mktemp("cluster"), [read_definition(FAULTS)],
                          workers=len(WORKERS), tie_to_parent=True,
                          extra_env={"MR_EXECUTOR_PROCESSES": "2",
                                     "MR_METRICS_DIR": str(metrics_dir),
                                     "GUNICORN_CMD_ARGS": "--workers 2"})
    yield local
    local.stop()


def scrape(url: str, token: str = "") -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                timeout=30) as answer:
        assert answer.status == 200
        return samples(answer.read().decode())


def front_end_metrics(cluster) -> dict:
    return scrape(f"{cluster.url}/metrics", cluster.env["MR_TOKEN"])


def worker_metrics(cluster) -> list[dict]:
    return [scrape(cluster.process(name).addresses["metrics"]) for name in WORKERS]


def summed(scrapes: list[dict], name: str, **labels: str) -> float:
    return sum(value(scraped, name, **labels) for scraped in scrapes)


def test_cluster_start_names_each_workers_metrics_url(cluster):
    for name in WORKERS:
        url = cluster.process(name).addresses["metrics"]
        assert f"metrics: {url}" in cluster.process(name).describe()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")


def test_the_workers_count_the_requests_and_invocations_they_run(cluster):
    before = worker_metrics(cluster)
    requests = 3
    for start in range(requests):
        status, body = front(cluster, "/job/faults/children",
                             {"arguments": {"span": [start, start + LEAVES]}})
        assert status == 200, body
    status, body = front(cluster, "/job/faults/explode", {"arguments": {"a": 1}})
    assert status == 422, body
    invocations = {"map": requests * (1 + LEAVES) + 1,  # and explode's, mapped and reduced
                   "reduce": requests}

    def moved(name: str, **labels: str) -> float:
        return summed(after, name, **labels) - summed(before, name, **labels)

    after = first_scrape_where(lambda: worker_metrics(cluster), lambda scrapes: all(
        summed(scrapes, "mr_invocation_duration_seconds_count", kind=kind)
        - summed(before, "mr_invocation_duration_seconds_count", kind=kind) >= count
        for kind, count in invocations.items()))
    for job, outcome, count in (("children", "done", requests), ("explode", "failed", 1),
                                ("children", "failed", 0)):
        assert moved("mr_requests_total", workflow="faults", job=job, outcome=outcome) == count
    assert moved("mr_request_duration_seconds_count", workflow="faults", job="children") == \
        requests
    for kind, count in invocations.items():
        assert moved("mr_invocation_duration_seconds_count", kind=kind) == count
    assert moved("mr_invocation_retries_total", kind="map") == 0
    assert summed(after, "mr_invocations_in_flight", kind="map") == 0
    assert moved("mr_executor_busy_seconds_total") > 0
    assert moved("mr_kv_operation_duration_seconds_count", operation="txn") > 0
    for scraped in after:
        assert value(scraped, "mr_executor_children") == 2
        for kind in ("map", "reduce"):  # read from nsqd's /stats: nothing waits any more
            assert value(scraped, "mr_queue_depth", topic=f"mr.faults.{kind}.general") == 0
            assert ("mr_queue_depth", frozenset({("topic", f"mr.faults.{kind}.general")})) \
                in scraped


def test_the_front_end_sums_its_gunicorn_workers_even_after_one_died(cluster, metrics_dir):
    gunicorn_pids = _pids_writing(metrics_dir)
    assert len(gunicorn_pids) >= 2, "each gunicorn worker keeps its metrics in the directory"
    before = front_end_metrics(cluster)
    status, accepted = front(cluster, "/job/faults/spin?blocking=false", {"arguments": {"a": 1}})
    assert status == 202, accepted
    request = urllib.request.Request(f"{cluster.url}{accepted['status_url']}", method="DELETE",
                                     headers={"Authorization": f"Bearer {cluster.env['MR_TOKEN']}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
        answering = int(answer.headers["X-FULFILLED-BY"].rsplit("/", 1)[1])
    labels = {"workflow": "faults", "job": "spin"}

    def cancelled(scraped: dict) -> float:
        return value(scraped, "mr_requests_total", outcome="cancelled", **labels) - \
            value(before, "mr_requests_total", outcome="cancelled", **labels)

    assert cancelled(front_end_metrics(cluster)) == 1  # the front end finished it
    assert value(front_end_metrics(cluster), "mr_kv_operation_duration_seconds_count",
                 operation="txn") > value(before, "mr_kv_operation_duration_seconds_count",
                                          operation="txn")
    # The gunicorn worker that cancelled it dies; the master starts another.
    master = cluster.process("frontend").pid
    assert _parent_of(answering) == master, "the answering process is a gunicorn worker"
    os.kill(answering, signal.SIGKILL)
    live_gauges = metrics_dir / f"gauge_livesum_{answering}.db"
    deadline = time.monotonic() + 30
    while live_gauges.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not live_gauges.exists(), "gunicorn's child_exit forgot its live gauges"
    after = front_end_metrics(cluster)
    assert cancelled(after) == 1  # still counted: its counters outlive it
    assert value(after, "mr_request_duration_seconds_count", **labels) - \
        value(before, "mr_request_duration_seconds_count", **labels) == 1


def _pids_writing(directory: Path) -> set[int]:
    return {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("counter_*.db")}


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
