"""Small arguments and results ride inline (docs/engine.rst, "Messages"): a request's arguments
in its record, its result in its final record, with no data store operation; one byte over the
limit, they go through the data store, and the answer is the same."""
import json

import pytest

from mr import codec
from mr.data.fsspec_store import FsspecDataStore
from mr.models import Request, ValidationError
from mr.models.base import new_id
from mr.models.request import INLINE_LIMIT_BYTES
from mr.web.app import create_app
from tests.engine.faults import redeliver_after_handling
from tests.engine.test_guarantees import leaf_job, until

#: Returns its arguments as they are, or, with ``"repeat"``, pairs ``[name, "x" * value]``.
ECHO = "yield MrConfigureToReturn()\nfor name, value in arguments:\n    yield name, value\n"
REPEAT = ("yield MrConfigureToReturn()\nfor name, value in arguments:\n"
          "    yield name, 'x' * value\n")
FIRST = "for key, values in results:\n    yield key, values[0]\n"


def count_operations(monkeypatch, store) -> dict[str, list]:
    """Record the paths of the data store operations from now on, and what each delete_tree
    removed, by operation."""
    seen: dict[str, list] = {"put": [], "get": [], "delete_tree": []}
    for name in ("put", "get"):
        def counted(path, *rest, _name=name, _method=getattr(store, name)):
            seen[_name].append(path)
            return _method(path, *rest)
        monkeypatch.setattr(store, name, counted)
    delete_tree = store.delete_tree

    def counted_delete(prefix):
        removed = delete_tree(prefix)
        seen["delete_tree"].append((prefix, removed))
        return removed

    monkeypatch.setattr(store, "delete_tree", counted_delete)
    return seen


def pair_of_size(size: int, name: str = "a") -> list:
    """``[name, "x" * n]``, with n such that ``[[name, "x" * n]]`` encodes to ``size`` bytes."""
    length = next(n for n in range(size) if len(codec.encode([[name, "x" * n]])) == size)
    return [name, "x" * length]


def post(cluster, arguments: dict) -> dict:
    response = create_app(cluster.engine).test_client().post(
        f"/job/{cluster.workflow}/j", data=json.dumps({"arguments": arguments}),
        headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_a_trivial_request_makes_no_data_store_operation(cluster, monkeypatch):
    leaf_job(cluster, ECHO)
    seen = count_operations(monkeypatch, cluster.engine.data)
    finished = cluster.run("j", {"x": 1})
    assert finished.state == "done", finished.error
    assert cluster.engine.result(finished) == [["x", 1]]
    assert finished.arguments == [["x", 1]] and finished.arguments_ref is None
    assert finished.result == [["x", 1]] and finished.result_ref is None
    assert seen == {"put": [], "get": [], "delete_tree": []}
    cluster.engine.release(finished)
    assert cluster.engine.store.find(Request, cluster.workflow, finished.request_id) is None
    assert seen["put"] == seen["get"] == []
    assert [removed for _prefix, removed in seen["delete_tree"]] == [0]
    assert cluster.engine.data.list_tree(cluster.workflow) == []


def test_a_result_of_exactly_the_limit_rides_inline_and_one_byte_more_goes_to_the_store(
        cluster, monkeypatch):
    leaf_job(cluster, REPEAT, FIRST)
    seen = count_operations(monkeypatch, cluster.engine.data)
    for size, inline in ((INLINE_LIMIT_BYTES, True), (INLINE_LIMIT_BYTES + 1, False)):
        expected = [pair_of_size(size)]
        arguments = {"a": len(expected[0][1])}
        finished = cluster.run("j", arguments)
        assert finished.state == "done", finished.error
        assert (finished.result is not None) is inline
        assert (finished.result_ref is not None) is not inline
        assert cluster.engine.result(finished) == expected
        assert post(cluster, arguments)["result"] == {"pairs": expected}
    reduced = [path for path in seen["put"] if "/reduced-" in path]
    assert len(reduced) == 2  # one byte over the limit: once by run, once over HTTP
    assert all(path.startswith(f"{cluster.workflow}/") for path in reduced)


def test_arguments_of_exactly_the_limit_ride_inline_and_one_byte_more_go_to_the_store(
        cluster, monkeypatch):
    leaf_job(cluster, ECHO, FIRST)
    seen = count_operations(monkeypatch, cluster.engine.data)
    for size, inline in ((INLINE_LIMIT_BYTES, True), (INLINE_LIMIT_BYTES + 1, False)):
        name, value = pair_of_size(size)
        finished = cluster.run("j", {name: value})
        assert finished.state == "done", finished.error
        assert (finished.arguments == [[name, value]]) is inline
        assert (finished.arguments_ref is not None) is not inline
        assert cluster.engine.result(finished) == [[name, value]]
        assert post(cluster, {name: value})["result"] == {"pairs": [[name, value]]}
    stored = [path for path in seen["put"] if "/arguments-" in path]
    read = [path for path in seen["get"] if "/arguments-" in path]
    assert len(stored) == 2 and sorted(read) == sorted(stored)


def test_a_final_commit_delivered_again_commits_nothing_more(cluster, monkeypatch):
    leaf_job(cluster, ECHO)
    redeliveries = redeliver_after_handling(monkeypatch, cluster)
    seen = count_operations(monkeypatch, cluster.engine.data)
    running = cluster.engine.submit(cluster.workflow, "j", {"x": 1}, blocking=True)
    finished = cluster.engine.wait(cluster.workflow, running.request_id, 30)
    assert finished.state == "done" and finished.result == [["x", 1]]
    until("the redelivery handled",
          lambda: redeliveries and all(again.has_responded for again in redeliveries))
    cluster.engine.tree.results.finish(running, running.root_invocation_id, [["x", 2]], [])
    stored = cluster.engine.kv.get(cluster.engine.request_key(finished))
    assert stored.version == 2  # created, then finished once
    assert Request.decode(finished.request_id, stored.value).result == [["x", 1]]
    assert seen["put"] == []


def request_with(**fields) -> Request:
    return Request(workflow="w", job_name="j", root_invocation_id=new_id(), blocking=True,
                   **fields)


@pytest.mark.parametrize("field", ["arguments", "result"])
def test_the_request_model_bounds_inline_pairs_to_the_byte(field):
    at_limit = [pair_of_size(INLINE_LIMIT_BYTES)]
    assert getattr(request_with(**{field: at_limit}), field) == at_limit
    over = [pair_of_size(INLINE_LIMIT_BYTES + 1)]
    with pytest.raises(ValidationError, match=(
            f"field '{field}' takes {INLINE_LIMIT_BYTES + 1} bytes encoded, more than the "
            f"{INLINE_LIMIT_BYTES} that ride inline")):
        request_with(**{field: over})


def test_removing_a_tree_that_was_never_written_costs_one_look(tmp_path, monkeypatch):
    store = FsspecDataStore(str(tmp_path / "data"))
    store.put("w/kept/a", b"1")
    store.put("w/kept/b/c", b"2")
    calls = []
    for name in ("isdir", "find", "mv", "rm", "exists", "info", "ls"):
        def recorded(*args, _name=name, _method=getattr(store.fs, name), **kwargs):
            calls.append(_name)
            return _method(*args, **kwargs)
        monkeypatch.setattr(store.fs, name, recorded)
    assert store.delete_tree("w/never") == 0
    assert calls == ["isdir"]
    assert store.delete_tree("w/kept") == 2
    monkeypatch.undo()
    assert store.list_tree("w") == []
