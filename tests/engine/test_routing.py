"""Capability routing and retries, in both modes."""
import pytest

from mr.data.base import DataError
from mr.models import Handler
from tests.engine.test_requests import SUM_REDUCER

GPU_MAPPER = "yield MrConfigureToReturn()\nfor key, value in arguments:\n    yield key, value\n"


def test_an_invocation_runs_only_on_a_worker_with_its_capability(cluster, second_worker):
    cluster.handler("gpu_map", "mapper", GPU_MAPPER, capability="GPU")
    cluster.handler("add", "reducer", SUM_REDUCER, capability="GPU")
    cluster.step("s", "gpu_map", "add")
    cluster.job("j", "s")
    request = cluster.engine.submit(cluster.workflow, "j", {"a": 1}, blocking=True)
    assert cluster.engine.wait(cluster.workflow, request.request_id, 1.5) is None, \
        "a general worker ran a GPU handler"
    worker = second_worker(("gpu",))  # declared in another case: capabilities are normalized
    try:
        done = cluster.engine.wait(cluster.workflow, request.request_id, 20)
        assert done.state == "done" and dict(cluster.engine.result(done)) == {"a": 1}
    finally:
        worker.stop(timeout=2)


def test_a_reducer_needing_another_capability_runs_on_its_own_worker(cluster, second_worker):
    cluster.handler("m", "mapper", "S_SET('pairs', len(arguments))\n" + GPU_MAPPER)
    cluster.handler("big_add", "reducer", """
yield 'pairs seen by the mapper', S_GET('pairs')
for key, values in results:
    yield key, sum(values)
""", capability="bigmem")
    cluster.step("s", "m", "big_add")
    cluster.job("j", "s")
    worker = second_worker(("bigmem",))
    try:
        request = cluster.run("j", {"a": 1, "b": 2})
    finally:
        worker.stop(timeout=2)
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == {"a": 1, "b": 2,
                                                    "pairs seen by the mapper": 2}


def flaky_puts(monkeypatch, data, failures):
    """Make the data store's puts of reduced pairs fail ``failures`` times, then work."""
    put_data, left = data.put, [failures]

    def put(path, encoded):
        if "/reduced-" in path and left[0] > 0:
            left[0] -= 1
            raise DataError("the data store is away")
        put_data(path, encoded)

    monkeypatch.setattr(data, "put", put)
    return left


@pytest.mark.parametrize("failures, outcome", [(2, "done"), (100, "failed")])
def test_failures_outside_handlers_are_retried_up_to_the_limit(cluster, monkeypatch, failures,
                                                               outcome):
    cluster.engine.settings = cluster.engine.settings.with_overrides(invocation_max_attempts=3)
    left = flaky_puts(monkeypatch, cluster.engine.data, failures)
    cluster.handler("m", "mapper", GPU_MAPPER)
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("s", "m", "add")
    cluster.job("j", "s")
    arguments = {f"key{number}": number for number in range(200)}  # a result put in the store
    request = cluster.run("j", arguments)
    assert request.state == outcome
    if outcome == "done":
        assert left == [0], "the failures did not happen"
        assert dict(cluster.engine.result(request)) == arguments
    else:
        assert request.error["type"] == "DataError"
        assert request.error["message"].endswith(
            "gave up after 3 attempts; the last failed with: the data store is away")


def test_a_request_whose_handler_code_is_gone_fails_with_a_clear_error(cluster):
    cluster.handler("m", "mapper", GPU_MAPPER)
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("s", "m", "add")
    cluster.job("j", "s")
    mapper = cluster.store.get(Handler, cluster.workflow, "m")
    cluster.engine.kv.delete(cluster.engine.keys.handler_code(cluster.workflow, mapper.version))
    request = cluster.run("j", {"a": 1})
    assert request.state == "failed"
    assert request.error["type"] == "MissingHandlerCode"
    assert "'m'" in request.error["message"]
