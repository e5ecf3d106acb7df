"""``mr request|invocation|session``: looking into a request that an engine and worker in this
process ran (on the real etcd and nsqd, with a data directory), then removing it by hand."""
import json
import textwrap
import uuid

import pytest

from mr.data.fsspec_store import FsspecDataStore
from mr.engine.dispatch import child_id
from mr.engine.engine import Engine
from mr.executor import ExecutorPool
from mr.models import Keys
from mr.queue.nsq import NsqQueue
from mr.settings import Settings
from mr.worker.worker import Worker
from tests.cli.conftest import Mr
from tests.conftest import TEST_MESSAGE_TIMEOUT_S, etcd_client

DOCUMENTS = {"a": "the cat", "b": "the hat and the bat"}

HANDLERS = {
    "split.py": ("mapper", """\
        S_SET("documents", len(arguments))
        yield MrConfigureToMap("count")
        for name, text in arguments:
            yield (name, text)
        """),
    "count_words.py": ("mapper", """\
        (name, text), = arguments
        S_SET("document", name)
        S_SET("words", len(text.split()))
        yield MrConfigureToReturn()
        for word in text.split():
            yield (word, 1)
        """),
    "add.py": ("reducer", """\
        for word, counts in results:
            yield (word, sum(counts))
        """),
}


def write_definition(directory, workflow: str) -> None:
    """Split documents, count each one's words, add up: two levels, a session on each map."""
    directory.mkdir()
    for filename, (handler_type, body) in HANDLERS.items():
        argument = "arguments" if handler_type == "mapper" else "results"
        (directory / filename).write_text(
            f'"""\n{filename}\n\n**\nargument_spec:\n    - {{name: {argument}, type: list}}\n'
            f'handler_type: {handler_type}\nrequired_capability: none\n"""\n'
            + textwrap.dedent(body))
    (directory / "workflow.yaml").write_text(
        f"workflow: {workflow}\n"
        "steps:\n"
        "  split: {mapper: split, reducer: add}\n"
        "  count: {mapper: count_words, reducer: add}\n"
        "jobs:\n"
        "  count: {step: split}\n")


@pytest.fixture
def finished_request(mr, etcd_server, nsqd_server, tmp_path):
    """A done request of a workflow loaded with ``mr workflow load``, kept (no cleanup)."""
    workflow = f"w{uuid.uuid4().hex[:12]}"
    write_definition(tmp_path / "definition", workflow)
    mr.ok("workflow", "load", str(tmp_path / "definition"))
    data_dir = str(tmp_path / "data")
    mr.env["MR_DATA_STORE_URL"] = data_dir
    settings = Settings.load({}).with_overrides(
        workflow_names=(workflow,), kv_prefix=mr.env["MR_KV_PREFIX"],
        do_cleanup_requests=False, message_timeout_s=TEST_MESSAGE_TIMEOUT_S,
        invocation_timeout_s=10.0)
    kv = etcd_client(etcd_server)
    queue = NsqQueue([nsqd_server.addresses["tcp"]])
    executor = ExecutorPool(size=2, default_timeout_s=10)
    engine = Engine(settings, kv, queue, FsspecDataStore(data_dir), executor).serve()
    worker = Worker(engine).start()
    try:
        request = engine.submit(workflow, "count", DOCUMENTS, blocking=True)
        assert engine.wait(workflow, request.request_id, 30).state == "done"
        yield engine, request
    finally:
        worker.stop(timeout=2)
        engine.stop()
        executor.close()
        queue.close()
        kv.close()


def test_request_invocation_and_session_views(mr, finished_request):
    engine, request = finished_request
    workflow, request_id, root = request.workflow, request.request_id, request.root_invocation_id

    shown = mr.json("request", "get", workflow, request_id)
    assert (shown["state"], shown["job_name"], shown["root_invocation_id"]) == (
        "done", "count", root)
    human = mr.ok(workflow, request_id, script="mr_kv_request_get").splitlines()
    assert [line.split() for line in human[:3]] == [
        ["workflow:", workflow], ["request_id:", request_id], ["job_name:", "count"]]
    assert mr.ok("request", "list", workflow) == f"{request_id}\tcount\tdone\n"

    invocations = mr.json("invocation", "list", workflow, request_id)
    assert [(i["invocation_id"], i["mapped_count"], i["mapped_step"]) for i in invocations] == [
        (root, 2, "count")]
    assert json.loads(mr.ok(workflow, request_id, root, "--json",
                            script="mr_kv_invocation_get")) == invocations[0]

    first, second = child_id(root, 0), child_id(root, 1)
    expected = {root: {"documents": 2}, first: {"document": "a", "words": 2},
                second: {"document": "b", "words": 5}}
    assert mr.json("session", "list", workflow, request_id) == dict(sorted(expected.items()))
    assert mr.json("session", "list", workflow, request_id, second) == {second: expected[second]}
    listing = mr.ok(workflow, request_id, script="mr_get_request_sessions").splitlines()
    assert listing[listing.index(f"Invocation: {first}") + 1:][:2] == [
        '  document: "a"', "  words: 2"]
    assert f"Invocation: {root}" in listing and "  documents: 2" in listing


def test_request_cleanup_removes_the_record_the_run_state_and_the_data(mr, finished_request):
    engine, request = finished_request
    workflow, request_id = request.workflow, request.request_id
    run_prefix = Keys(engine.settings.kv_prefix).run(workflow, request_id)
    assert engine.kv.range(run_prefix, prefix=True).kvs
    assert engine.data.list_tree(f"{workflow}/{request_id}")

    simulated = mr.ok("request", "cleanup", workflow, request_id, "-s")
    assert simulated == (f"would remove request {request_id} of workflow {workflow!r} (job "
                         f"'count', done): its record, its run-state keys (count: 1, done: 2, "
                         f"invocation: 1, published: 2, session: 5) and its data\n")
    assert mr.json("request", "get", workflow, request_id)["state"] == "done"

    removed = mr.ok(workflow, request_id, script="mr_kv_request_cleanup")
    assert removed.startswith(f"removed request {request_id} of workflow {workflow!r}")
    assert mr.fails("request", "get", workflow, request_id) == (
        f"request {request_id!r} of workflow {workflow!r} does not exist")
    assert mr.fails("session", "list", workflow, request_id) == (
        f"request {request_id!r} of workflow {workflow!r} does not exist")
    assert engine.kv.range(run_prefix, prefix=True).kvs == []
    assert engine.data.list_tree(f"{workflow}/{request_id}") == []


@pytest.mark.parametrize("arguments, message", [
    (["request", "get", "w", "12345"], "request: request_id '12345' is not 32 lowercase hex "
                                       "digits"),
    (["request", "cleanup", "w", "0" * 32], f"request {'0' * 32!r} of workflow 'w' does not "
                                            f"exist"),
    (["invocation", "list", "w", "0" * 32], f"request {'0' * 32!r} of workflow 'w' does not "
                                            f"exist"),
    (["session", "list", "w", "0" * 32], f"request {'0' * 32!r} of workflow 'w' does not exist"),
    (["request", "list", "nowhere"], "workflow 'nowhere' does not exist"),
])
def test_run_state_errors_are_one_line(mr, arguments, message):
    mr.ok("workflow", "create", "w")
    assert mr.fails(*arguments).startswith(message)


def test_a_worker_refuses_to_start_on_a_data_store_only_it_can_see(mr):
    """A worker on a private data store would answer with data nobody else can read."""
    nsqd = Mr({**mr.env, "MR_QUEUE_BACKEND": "nsq", "MR_DATA_STORE_URL": "memory"})
    message = nsqd.fails("worker")
    assert message.startswith("MR_DATA_STORE_URL name the embedded (in-process) backends")
    assert "a worker needs" in message
