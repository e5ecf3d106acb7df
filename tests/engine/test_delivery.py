"""Delivery and lifecycle, in both modes: duplicates, cancellation, cleanup, large data."""
import time

import gevent

from mr.models import Handler
from tests.engine.test_requests import SUM_REDUCER, wordcount


def publish_everything_twice(monkeypatch, queue):
    publish, multi_publish = queue.publish, queue.multi_publish

    def publish_twice(topic, body, delay_s=0.0):
        publish(topic, body, delay_s)
        publish(topic, body, delay_s)

    monkeypatch.setattr(queue, "publish", publish_twice)
    monkeypatch.setattr(queue, "multi_publish",
                        lambda topic, bodies: multi_publish(topic, list(bodies) * 2))


def test_every_message_delivered_twice_gives_the_same_result(any_cluster, monkeypatch):
    """Both copies are first deliveries, handled at the same time: the commits decide."""
    cluster = any_cluster
    publish_everything_twice(monkeypatch, cluster.engine.queue)
    wordcount(cluster, with_branch=True)
    documents = {f"doc{n}": f"word{n % 3} common" for n in range(30)}
    request = cluster.run("wordcount", documents)
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == {"word0": 10, "word1": 10, "word2": 10,
                                                    "common": 30}


def run_state_keys(cluster):
    return [kv.key for kv in cluster.engine.kv.range(cluster.engine.settings.kv_prefix + "/",
                                                      prefix=True).kvs
            if "/request/" in kv.key or "/run/" in kv.key or "/cleanup/" in kv.key]


def lasting_keys(cluster):
    """Every key of the installation but the sweeper's, which comes and goes with a lease."""
    return [kv.key for kv in cluster.engine.kv.range(cluster.engine.settings.kv_prefix + "/",
                                                      prefix=True, keys_only=True).kvs
            if kv.key != cluster.engine.keys.sweeper()]


def test_released_and_expired_requests_leave_nothing_behind(cluster):
    wordcount(cluster, with_branch=True)
    keys_before = lasting_keys(cluster)
    for _ in range(250):  # blocking: the front end releases each once it has the result
        request = cluster.run("wordcount", {"a": "x y", "b": "y"})
        assert dict(cluster.engine.result(request)) == {"x": 1, "y": 2}
        cluster.engine.release(request)
    cluster.engine.settings = cluster.engine.settings.with_overrides(result_retention_s=0.0)
    for _ in range(250):  # never fetched: removed by the worker once finished and due
        cluster.engine.submit(cluster.workflow, "wordcount", {"a": "x"}, blocking=False)
    deadline = time.monotonic() + 60
    while run_state_keys(cluster) and time.monotonic() < deadline:
        gevent.sleep(0.2)
    assert run_state_keys(cluster) == []
    assert lasting_keys(cluster) == keys_before
    assert cluster.engine.data.list_tree() == []


def test_failed_requests_are_kept_for_inspection(cluster):
    cluster.handler("m", "mapper", "raise RuntimeError('kept')\nyield MrConfigureToReturn()\n")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("s", "m", "add")
    cluster.job("j", "s")
    request = cluster.run("j", {"a": 1})
    assert request.state == "failed"
    gevent.sleep(1.5)  # a cleanup pass has run; the failure retention is hours
    assert cluster.engine.get_request(cluster.workflow, request.request_id).error["message"] \
        == "kept"


def test_a_cancelled_request_stops_and_its_children_are_dropped(cluster):
    cluster.handler("fan_out", "mapper", """
yield MrConfigureToMap('slow')
for n in range(40):
    yield str(n), n
""")
    cluster.handler("slow_map", "mapper", """
import time
time.sleep(0.2)
yield MrConfigureToReturn()
yield 'n', 1
""")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("slow", "slow_map", "add")
    cluster.step("root", "fan_out", "add")
    cluster.job("j", "root")
    request = cluster.engine.submit(cluster.workflow, "j", {"a": 1}, blocking=False)
    gevent.sleep(0.5)
    cancelled = cluster.engine.cancel(cluster.workflow, request.request_id)
    assert cancelled.state == "cancelled"
    gevent.sleep(2.5)  # what was queued is dropped, what ran could not commit
    final = cluster.engine.get_request(cluster.workflow, request.request_id)
    assert final.state == "cancelled" and final.result_ref is None
    assert cluster.engine.cancel(cluster.workflow, request.request_id).state == "cancelled"


def test_fifty_megabytes_in_and_out(cluster):
    cluster.handler("echo", "mapper", """
yield MrConfigureToReturn()
for key, value in arguments:
    yield key, value + value
""")
    cluster.handler("first", "reducer", """
for key, values in results:
    yield key, values[0]
""")
    cluster.step("s", "echo", "first")
    cluster.job("j", "s")
    blob = "0123456789abcdef" * (25 * 1024 * 1024 // 16)  # 25 MiB in, 50 MiB out
    request = cluster.run("j", {"blob": blob, "other": "x"}, timeout_s=120)
    assert request.state == "done", request.error
    result = dict(cluster.engine.result(request))
    assert result["other"] == "xx"
    assert len(result["blob"]) == 2 * len(blob) and result["blob"] == blob + blob


def test_handlers_run_with_the_versions_of_acceptance(cluster):
    cluster.handler("m", "mapper", """
import time
time.sleep(1.0)
yield MrConfigureToReturn()
yield 'version', 1
""")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("s", "m", "add")
    cluster.job("j", "s")
    request = cluster.engine.submit(cluster.workflow, "j", {"a": 1}, blocking=True)
    gevent.sleep(0.2)
    current = cluster.store.get(Handler, cluster.workflow, "m")
    cluster.store.update(current.replace(source_code="yield MrConfigureToReturn()\n"
                                                     "yield 'version', 2\n"))
    pinned = cluster.engine.wait(cluster.workflow, request.request_id, 30)
    assert dict(cluster.engine.result(pinned)) == {"version": 1}
    assert dict(cluster.engine.result(cluster.run("j", {"a": 1}))) == {"version": 2}


def test_a_failure_stops_the_running_siblings_of_its_request(cluster):
    cluster.handler("fan_out", "mapper", """
yield MrConfigureToMap('child')
yield 'slow', 1
yield 'fails', 1
""")
    cluster.handler("child_map", "mapper", """
import time
name, _ = arguments[0]
if name == 'fails':
    time.sleep(0.5)
    raise RuntimeError('the fast failure')
time.sleep(30)
yield MrConfigureToReturn()
""")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("child", "child_map", "add")
    cluster.step("root", "fan_out", "add")
    cluster.job("j", "root")
    executor = cluster.engine.executor
    children_before = set(executor.pids)
    failed = cluster.run("j", {"a": 1}, timeout_s=20)
    assert failed.error["message"] == "the fast failure"
    # The slow sibling's executor child is killed (and replaced) rather than left to run 30 s.
    deadline = time.monotonic() + 3
    while set(executor.pids) == children_before and time.monotonic() < deadline:
        gevent.sleep(0.1)
    assert set(executor.pids) != children_before
    assert len(executor.pids) == executor.size
