"""``mr request get|tree|trace``, ``mr invocation logs``, JobX's tracing scripts and
``GET /request/<wf>/<id>/graph.svg``, as a user meets them: on a local cluster (gunicorn's front
end, a worker process, etcd and nsqd), with requests submitted by ``mr submit``."""
import json
import socket
import subprocess
import sys
import urllib.request

import pytest

from mr.cli.cluster import start_cluster
from mr.engine.dispatch import child_id
from mr.handlers.load import read_definition
from tests.cli.conftest import SCRIPTS, Mr, environment_without_settings
from tests.engine.test_sync import write_handler
from tests.engine.test_trace import COUNT, QUIET_LEAF, SPLIT, TOTAL

WORKFLOW = "traced"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_definition(directory) -> None:
    """``count``: split the documents (a branch that prints and counts), count each one's words
    (leaves that print, count and set their status), add up; ``quiet``: a leaf that prints
    nothing."""
    for name, handler_type, body in (("split", "mapper", SPLIT), ("count", "mapper", COUNT),
                                     ("total", "reducer", TOTAL),
                                     ("quiet", "mapper", QUIET_LEAF)):
        write_handler(directory, f"{name}.py", handler_type, body)
    (directory / "workflow.yaml").write_text(
        f"workflow: {WORKFLOW}\n"
        "steps:\n"
        "  split: {mapper: split, reducer: total}\n"
        "  count: {mapper: count, reducer: total}\n"
        "  quiet: {mapper: quiet, reducer: total}\n"
        "jobs:\n"
        "  count: {step: split}\n"
        "  quiet: {step: quiet}\n")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    directory = tmp_path_factory.mktemp("traced")
    write_definition(directory / "definition")
    local = start_cluster(directory / "cluster", [read_definition(directory / "definition")],
                          workers=1, tie_to_parent=True,
                          extra_env={"MR_EXECUTOR_PROCESSES": "1"})
    yield local
    local.stop()


@pytest.fixture(scope="module")
def mr(cluster):
    return Mr({**environment_without_settings(), **cluster.env, "MR_URL": cluster.url})


def submitted(mr: Mr, job: str, *arguments: str) -> str:
    """Submit with ``mr submit``, wait with ``mr request wait``; the request id."""
    pairs = [option for argument in arguments for option in ("--arg", argument)]
    request_id = mr.ok("submit", WORKFLOW, job, *pairs, "--no-wait").split()[0]
    mr.run("request", "wait", WORKFLOW, request_id)
    return request_id


@pytest.fixture(scope="module")
def requests(mr):
    """A done request of two documents, a failed one, a done request that printed nothing;
    each with its root's id."""
    ids = {"done": submitted(mr, "count", "a=the cat", "b=the hat"),
           "failed": submitted(mr, "count", "b=boom"),
           "quiet": submitted(mr, "quiet", "a=1")}
    return {name: (request_id, mr.json("request", "get", WORKFLOW, request_id)[
        "root_invocation_id"]) for name, request_id in ids.items()}


def worker(cluster) -> str:
    return f"{socket.gethostname()}:{cluster.process('worker-1').pid}"


def in_directory(mr: Mr, directory, *arguments: str, script: str | None = None):
    """Run a command in ``directory`` (where ``trace`` writes by default)."""
    command = [str(SCRIPTS / script)] if script else [sys.executable, "-m", "mr.cli.main"]
    return subprocess.run([*command, *arguments], capture_output=True, env=mr.env,
                          cwd=directory, timeout=60)


def test_the_tree_shows_every_invocation_with_its_run(mr, requests, cluster):
    request_id, root = requests["done"]
    first, second = child_id(root, 0), child_id(root, 1)
    on = f" · on {worker(cluster)} · "
    lines = mr.ok("request", "tree", WORKFLOW, request_id).splitlines()
    assert lines[0].startswith(f"request {request_id} ({WORKFLOW}/count): done, ")
    assert lines[1] == "counters: documents.seen=2, reduce.calls=3, words.total=4"
    assert lines[2].startswith(f"- {root} split (branch) done ")
    assert lines[2].endswith(f"{on}status: splitting 2 documents · documents.seen=2, "
                             f"reduce.calls=1")
    assert lines[3].startswith(f"  - {first} count (leaf) done ")
    assert lines[3].endswith(f"{on}status: counted a · reduce.calls=1, words.total=2")
    assert lines[4].startswith(f"  - {second} count (leaf) done ")
    assert len(lines) == 5
    assert mr.ok(WORKFLOW, request_id, script="mr_get_invocation_flat_list").splitlines()[
        2:] == lines[2:]

    tree = mr.json("request", "tree", WORKFLOW, request_id)
    assert (tree["state"], tree["counters"]) == ("done", {
        "documents": {"seen": 2}, "reduce": {"calls": 3}, "words": {"total": 4}})
    assert [child["invocation_id"] for child in tree["root"]["children"]] == [first, second]
    (run,) = tree["root"]["children"][0]["runs"]
    assert (run["phase"], f"{run['host']}:{run['pid']}", run["attempts"]) == (
        "map and reduce", worker(cluster), 1)
    assert mr.json("request", "get", WORKFLOW, request_id)["counters"] == tree["counters"]


def test_the_failed_path_is_marked(mr, requests):
    request_id, root = requests["failed"]
    failing = child_id(root, 0)
    lines = mr.ok("request", "tree", WORKFLOW, request_id).splitlines()
    assert lines[0].startswith(f"request {request_id} ({WORKFLOW}/count): failed, ")
    assert lines[1] == "counters: documents.seen=1, words.before the failure=7"
    assert lines[2].startswith(f"✗ {root} split (branch) failed ")
    assert lines[3].startswith(f"  ✗ {failing} count (leaf) failed ")
    assert lines[3].endswith(" · words.before the failure=7 · ValueError: no such word")
    shown = mr.json("request", "get", WORKFLOW, request_id)
    assert shown["counters"] == {"documents": {"seen": 1}, "words": {"before the failure": 7}}
    assert shown["finished_by"]["invocation_id"] == failing


def test_invocation_logs_prints_what_each_handler_wrote(mr, requests, cluster):
    request_id, root = requests["done"]
    lines = mr.ok("invocation", "logs", WORKFLOW, request_id, child_id(root, 0)).splitlines()
    assert lines[0].startswith(f"== map and reduce on {worker(cluster)}, attempt 1, started ")
    assert lines[1:] == ["--- count stdout ---", "counting a"]
    lines = mr.ok("invocation", "logs", WORKFLOW, request_id, root).splitlines()
    assert lines[0].startswith("== map on ")  # its reduce printed nothing
    assert lines[1:] == ["--- split stdout ---", "split ['a', 'b']"]
    failed_id, failed_root = requests["failed"]
    lines = mr.ok("invocation", "logs", WORKFLOW, failed_id,
                  child_id(failed_root, 0)).splitlines()
    assert lines[0].startswith("== failed on ")
    assert lines[1:] == ["--- count stdout ---", "about to fail"]
    quiet_id, quiet_root = requests["quiet"]
    assert mr.ok("invocation", "logs", WORKFLOW, quiet_id, quiet_root) == (
        f"invocation {quiet_root} left no output (done)\n")


def test_trace_draws_the_tree_with_graphviz(mr, requests, tmp_path):
    done, _ = requests["done"]
    failed, failed_root = requests["failed"]
    svg = tmp_path / "tree.svg"
    assert mr.ok("request", "trace", WORKFLOW, failed, "-o", str(svg)) == f"wrote {svg}\n"
    drawing = svg.read_text()
    assert drawing.startswith("<?xml") and "<svg" in drawing
    assert f"i{child_id(failed_root, 0)}" in drawing
    assert "ValueError: no such word" in drawing

    dot = mr.ok(WORKFLOW, done, script="mr_get_invocation_graph")
    assert dot.startswith(f"digraph \"request-{done}\" {{")
    assert dot.count(" -> ") == 3  # the request to its root, the root to its two children

    drawn = in_directory(mr, tmp_path, WORKFLOW, done, script="mr_draw_invocation_graph")
    assert drawn.returncode == 0, drawn.stderr
    png = tmp_path / f"request-{done}.png"
    assert drawn.stdout.decode() == f"wrote {png.name}\n"
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    written = in_directory(mr, tmp_path, "request", "trace", WORKFLOW, done, "--format", "dot",
                           "--collapse", "1")
    assert written.returncode == 0, written.stderr
    assert "2 × count · leaf" in (tmp_path / f"request-{done}.dot").read_text()


def test_trace_and_logs_errors_are_one_line(mr, requests, tmp_path):
    done, root = requests["done"]
    missing = "0" * 32
    assert mr.fails("invocation", "logs", WORKFLOW, done, missing) == (
        f"request {done!r} of workflow {WORKFLOW!r} has no invocation {missing!r}")
    assert mr.fails("invocation", "logs", WORKFLOW, done, "xyz") == (
        "invocation id 'xyz' is not 32 lowercase hex digits")
    assert mr.fails("request", "tree", WORKFLOW, missing) == (
        f"request {missing!r} of workflow {WORKFLOW!r} does not exist")
    nowhere = tmp_path / "nowhere" / "tree.svg"
    assert mr.fails("request", "trace", WORKFLOW, done, "-o", str(nowhere)) == (
        f"cannot write {nowhere}: No such file or directory")
    without_dot = Mr({**mr.env, "PATH": str(tmp_path)})
    assert without_dot.fails("request", "trace", WORKFLOW, done, "-o", "-") == (
        "graphviz's dot program is not installed (Debian: apt-get install graphviz), so the "
        "trace cannot be drawn as svg; --format dot writes its source")
    elsewhere = Mr({**mr.env, "MR_DATA_STORE_URL": str(tmp_path / "other")})
    first = child_id(root, 0)
    assert elsewhere.fails("invocation", "logs", WORKFLOW, done, first).startswith(
        f"the output at {WORKFLOW}/{done}/{first}/log-")


def get(cluster, path: str) -> tuple[str, bytes]:
    request = urllib.request.Request(cluster.url + path, headers={
        "Authorization": f"Bearer {cluster.env['MR_TOKEN']}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.headers["Content-Type"], response.read()


def test_the_front_end_draws_the_tree_and_sums_the_counters(cluster, requests):
    done, _ = requests["done"]
    failed, _ = requests["failed"]
    content_type, svg = get(cluster, f"/request/{WORKFLOW}/{failed}/graph.svg")
    assert content_type == "image/svg+xml; charset=utf-8"
    assert b"<svg" in svg and b"ValueError: no such word" in svg
    for request_id, counters in ((done, {"documents": {"seen": 2}, "reduce": {"calls": 3},
                                         "words": {"total": 4}}),
                                 (failed, {"documents": {"seen": 1},
                                           "words": {"before the failure": 7}})):
        _, status = get(cluster, f"/request/{WORKFLOW}/{request_id}")
        assert json.loads(status)["counters"] == counters
