"""Tracing, in both modes: what every invocation records of itself (where, when, how many
attempts), its kept output, its counters and status, and the tree read back and drawn."""
import os
import socket

import gevent
import pytest

from mr import codec
from mr.cli.trace_command import RED, RESET, tree_lines
from mr.data.base import DataError, DataNotFoundError
from mr.engine.dispatch import child_id
from mr.engine.trace_graph import FAILED_LINE, draw
from mr.engine.trace_tree import Collapsed, read_trace, shown_children
from mr.executor.reporting import MAX_COUNTERS
from mr.models import Invocation, Request
from mr.queue.base import QueueError
from mr.web.app import create_app
from tests.engine.conftest import start_cluster
from tests.engine.faults import intercept_publishes, redeliver_after_handling
from tests.engine.test_delivery import publish_everything_twice
from tests.engine.test_guarantees import RecordedDelivery, is_root_map, record_publishes
from tests.engine.test_handler_environment import exec_handler
from tests.engine.test_requests import SUM_REDUCER, wordcount
from tests.engine.test_shuffle import count_job, write_inputs

SPLIT = """
set_status(f"splitting {len(arguments)} documents")
increment_counter("documents", "seen", len(arguments))
print("split", sorted(name for name, _ in arguments))
yield MrConfigureToMap('count')
for name, text in arguments:
    yield name, text
"""
COUNT = """
(name, text), = arguments
if text == "boom":
    increment_counter("words", "before the failure", 7)
    print("about to fail")
    raise ValueError("no such word")
increment_counter("words", "total", len(text.split()))
set_status(f"counted {name}")
print("counting", name)
yield MrConfigureToReturn()
for word in text.split():
    yield word, 1
"""
TOTAL = """
increment_counter("reduce", "calls")
for key, values in results:
    yield key, sum(values)
"""
QUIET_LEAF = "yield MrConfigureToReturn()\nyield from arguments\n"
DOCUMENTS = {"a": "the cat sat", "b": "the dog"}


def fan_job(cluster, values: str, leaf_mapper: str) -> None:
    """``fan``: a root that maps to one child of step ``leaf`` per number, whose pair is
    ``(number, <values>)``, then adds up."""
    cluster.handler("fan", "mapper", f"yield MrConfigureToMap('leaf')\n{values}")
    cluster.handler("leaf_map", "mapper", leaf_mapper)
    cluster.handler("total", "reducer", TOTAL)
    cluster.step("leaf", "leaf_map", "total")
    cluster.step("fan", "fan", "total")
    cluster.job("fan", "fan")


def traced_job(cluster):
    """``count``: split the documents (a branch), count each one's words (leaves), add up."""
    cluster.handler("split", "mapper", SPLIT)
    cluster.handler("count", "mapper", COUNT)
    cluster.handler("total", "reducer", TOTAL)
    cluster.step("count", "count", "total")
    cluster.step("split", "split", "total")
    cluster.job("count", "split")


def test_every_invocation_records_where_and_when_it_ran(cluster):
    traced_job(cluster)
    request = cluster.run("count", DOCUMENTS)
    assert request.state == "done", request.error
    trace = read_trace(cluster.engine, cluster.workflow, request.request_id)
    root = trace.root
    assert (root.invocation_id, root.step, root.kind, root.state) == (
        request.root_invocation_id, "split", "branch", "done")
    assert [run.phase for run in root.runs] == ["map", "reduce"]
    children = [child_id(root.invocation_id, position) for position in range(2)]
    assert [(child.invocation_id, child.step, child.kind, child.state)
            for child in root.children] == [(child, "count", "leaf", "done")
                                            for child in children]
    assert [[run.phase for run in child.runs] for child in root.children] == [
        ["map and reduce"], ["map and reduce"]]  # a leaf: one commit, in its mapper's exchange
    for node in root.walk():
        for run in node.runs:  # this process's worker ran them all, each at its first delivery
            assert (run.host, run.pid, run.attempts) == (socket.gethostname(), os.getpid(), 1)
            assert request.created_at <= run.started_at <= run.finished_at <= request.finished_at
    map_run, reduce_run = root.runs
    assert root.queued_at == request.created_at
    for child in root.children:  # queued when the branch committed, before they started
        assert child.queued_at == map_run.finished_at <= child.started_at
        assert child.finished_at <= reduce_run.started_at
    assert [child.status for child in root.children] == ["counted a", "counted b"]
    assert root.status == "splitting 2 documents"


def test_counters_are_summed_per_invocation_and_per_request(cluster):
    traced_job(cluster)
    request = cluster.run("count", DOCUMENTS)
    expected = {"documents": {"seen": 2}, "words": {"total": 5}, "reduce": {"calls": 3}}
    assert request.counters == expected
    trace = read_trace(cluster.engine, cluster.workflow, request.request_id)
    assert trace.counters == expected
    assert trace.root.counters == {"documents": {"seen": 2}, "reduce": {"calls": 1}}
    assert [child.counters for child in trace.root.children] == [
        {"words": {"total": 3}, "reduce": {"calls": 1}},
        {"words": {"total": 2}, "reduce": {"calls": 1}}]
    status = create_app(cluster.engine).test_client().get(
        f"/request/{cluster.workflow}/{request.request_id}").get_json()
    assert status["counters"] == expected


def test_commits_that_count_nothing_write_no_counters(cluster):
    """A commit writes its counters beside it only when it counted something: the run state
    of a request without counters has none."""
    wordcount(cluster, with_branch=True)
    request = cluster.run("wordcount", {"a": "x y", "b": "z"})
    assert request.state == "done" and request.counters is None
    assert cluster.engine.kv.range(cluster.engine.keys.counters(
        cluster.workflow, request.request_id), prefix=True).kvs == []


def test_records_written_before_steps_were_recorded_show_no_step(cluster):
    """A request record from before ``root_step``, and a branch's from before
    ``mapped_step``, are drawn with an empty step rather than a made-up one."""
    root_id = "c" * 32
    request = cluster.store.create(Request(
        workflow=cluster.workflow, job_name="j", root_invocation_id=root_id, blocking=False,
        state="running", created_at=1.0))
    cluster.store.create(Invocation(
        workflow=cluster.workflow, invocation_id=root_id, request_id=request.request_id,
        step_name="s", direction="map", state="waiting", mapped_count=2))
    root = read_trace(cluster.engine, cluster.workflow, request.request_id).root
    assert (root.step, [child.step for child in root.children]) == ("", ["", ""])


def test_a_leaf_request_counts_too(cluster):
    cluster.handler("count", "mapper", COUNT)
    cluster.handler("total", "reducer", TOTAL)
    cluster.step("count", "count", "total")
    cluster.job("count", "count")
    request = cluster.run("count", {"a": "x y z"})
    assert request.counters == {"words": {"total": 3}, "reduce": {"calls": 1}}
    assert request.finished_by["invocation_id"] == request.root_invocation_id
    assert request.finished_by["status"] == "counted a"


def test_a_duplicated_invocation_counts_once(any_cluster, monkeypatch):
    """Both copies of each message may run their handlers; only the commit that wins counts."""
    cluster = any_cluster
    publish_everything_twice(monkeypatch, cluster.engine.queue)
    traced_job(cluster)
    request = cluster.run("count", {f"doc{number}": "a b" for number in range(10)})
    assert request.counters == {"documents": {"seen": 10}, "words": {"total": 20},
                                "reduce": {"calls": 11}}


def test_a_redelivered_invocation_neither_runs_nor_counts_again(cluster, monkeypatch):
    """Every message handled a second time right after its commit: the trace keeps the
    delivery that committed, and nothing is counted twice."""
    redeliveries = redeliver_after_handling(monkeypatch, cluster)
    traced_job(cluster)
    request = cluster.run("count", DOCUMENTS)
    assert request.state == "done", request.error
    assert redeliveries
    assert request.counters == {"documents": {"seen": 2}, "words": {"total": 5},
                                "reduce": {"calls": 3}}
    root = read_trace(cluster.engine, cluster.workflow, request.request_id).root
    assert {run.attempts for node in root.walk() for run in node.runs} == {1}


def test_an_invocation_that_failed_once_is_recorded_at_its_second_attempt(cluster):
    cluster.handler("quiet", "mapper", QUIET_LEAF)
    cluster.handler("total", "reducer", TOTAL)
    cluster.step("leaf", "quiet", "total")
    cluster.job("leaf", "leaf")
    run = cluster.engine.tree.run
    failed = []

    def fail_the_first_attempt(request, invocation, recheck):
        if not failed:
            failed.append(invocation.invocation_id)
            raise ConnectionError("the store went away for a moment")
        return run(request, invocation, recheck)
    cluster.engine.tree.run = fail_the_first_attempt
    request = cluster.run("leaf", {"a": 1})
    assert request.state == "done", request.error
    assert failed == [request.root_invocation_id]
    assert request.finished_by["attempts"] == 2
    assert request.counters == {"reduce": {"calls": 1}}


def test_what_handlers_print_is_kept_bounded_and_silent_handlers_store_nothing(cluster):
    cluster.engine.settings = cluster.engine.settings.with_overrides(invocation_log_bytes=300)
    cluster.handler("chatty", "mapper", "print('x' * 1000)\nimport sys\n"
                                        "print('careful', file=sys.stderr)\n" + QUIET_LEAF)
    cluster.handler("quiet", "mapper", QUIET_LEAF)
    cluster.handler("total", "reducer", TOTAL)
    cluster.step("chatty", "chatty", "total")
    cluster.step("quiet", "quiet", "total")
    cluster.job("chatty", "chatty")
    cluster.job("quiet", "quiet")
    request = cluster.run("chatty", {"a": 1})
    (run,) = read_trace(cluster.engine, cluster.workflow, request.request_id).root.runs
    (stdout_label, stdout), (stderr_label, stderr) = codec.decode(
        cluster.engine.data.get(run.log))
    assert (stdout_label, stderr_label) == ("chatty stdout", "chatty stderr")
    assert stderr == "careful\n"
    assert stdout.startswith("x" * 200)
    assert stdout.endswith("\n[mr: truncated: 1001 bytes, the first 244 kept]")
    assert len(stdout) + len(stderr) == 300  # MR_INVOCATION_LOG_BYTES, shared by the streams
    quiet = cluster.run("quiet", {"a": 1})
    assert "log" not in quiet.finished_by
    # arguments and result ride inline, and there is no log: nothing at all is stored
    assert cluster.engine.data.list_tree(f"{cluster.workflow}/{quiet.request_id}") == []
    cluster.engine.settings = cluster.engine.settings.with_overrides(invocation_log_bytes=0)
    assert "log" not in cluster.run("chatty", {"a": 1}).finished_by
    cluster.engine.release(request)  # the output goes with its request
    assert cluster.engine.data.list_tree(f"{cluster.workflow}/{request.request_id}") == []
    with pytest.raises(DataNotFoundError):
        cluster.engine.data.get(run.log)


def test_the_failed_path_records_the_failed_invocation_and_what_it_counted(cluster):
    traced_job(cluster)
    request = cluster.run("count", {"a": "one two", "b": "boom"})
    assert request.state == "failed"
    failed = child_id(request.root_invocation_id, 1)
    assert request.failed_invocation_id == failed
    assert request.finished_by["invocation_id"] == failed
    assert request.counters is None  # summed when read: not every commit was made
    trace = read_trace(cluster.engine, cluster.workflow, request.request_id)
    root = trace.root
    assert (root.state, root.on_failed_path) == ("failed", True)
    by_id = {child.invocation_id: child for child in root.children}
    node = by_id[failed]
    assert (node.state, node.on_failed_path, node.error["type"]) == ("failed", True,
                                                                      "ValueError")
    assert [run.phase for run in node.runs] == ["failed"]
    assert node.counters == {"words": {"before the failure": 7}}
    assert ["count stdout", "about to fail\n"] in codec.decode(
        cluster.engine.data.get(node.runs[0].log))
    sibling = by_id[child_id(request.root_invocation_id, 0)]
    assert not sibling.on_failed_path and sibling.state in ("done", "cancelled")
    coloured = list(tree_lines(trace, 10, colour=True))  # as on a terminal: the path in red
    assert coloured[2].startswith(f"{RED}✗ {root.invocation_id} split (branch) failed ")
    assert coloured[-1].startswith(f"  {RED}✗ {failed} count (leaf) failed ")
    assert coloured[-1].endswith(f"ValueError: no such word{RESET}")
    assert trace.counters["words"]["before the failure"] == 7
    assert trace.counters["documents"] == {"seen": 2}
    cluster.engine.release(request)  # its counters go with it, as its whole run state
    assert cluster.engine.kv.range(cluster.engine.keys.run(
        cluster.workflow, request.request_id), prefix=True).kvs == []


def chatty_job_whose_logs_are_refused(cluster, monkeypatch, ending: str) -> None:
    """Job ``chatty``: one leaf that sets a status, counts, prints, then does ``ending``; the
    data store refuses to keep what it printed."""
    cluster.handler("chatty", "mapper", 'set_status("halfway")\n'
                                        'increment_counter("words", "seen", 3)\n'
                                        f'print("about to end")\n{ending}\n')
    cluster.handler("total", "reducer", TOTAL)
    cluster.step("chatty", "chatty", "total")
    cluster.job("chatty", "chatty")
    put = cluster.engine.data.put

    def refuse_logs(path, data):
        if "/log-" in path:
            raise DataError("the disk is full")
        return put(path, data)

    monkeypatch.setattr(cluster.engine.data, "put", refuse_logs)


def test_a_failure_whose_output_cannot_be_stored_is_recorded_without_it(cluster, monkeypatch):
    """The data store refuses the failed handler's output: the request still fails with the
    handler's error, its status and counters recorded, only the output left out."""
    chatty_job_whose_logs_are_refused(cluster, monkeypatch,
                                      'raise ValueError("no such word")\nyield 1, 1')
    request = cluster.run("chatty", {"a": 1})
    assert (request.state, request.error["type"]) == ("failed", "ValueError"), request.error
    assert request.error["stdout"] == "about to end\n"
    assert request.failed_invocation_id == request.root_invocation_id
    finished_by = request.finished_by
    assert (finished_by["invocation_id"], finished_by["status"], finished_by["attempts"]) == (
        request.root_invocation_id, "halfway", 1)
    assert "log" not in finished_by
    root = read_trace(cluster.engine, cluster.workflow, request.request_id).root
    assert [run.phase for run in root.runs] == ["failed"]
    assert root.counters == {"words": {"seen": 3}}


def test_a_request_that_gives_up_records_its_last_attempt_without_the_output(cluster,
                                                                            monkeypatch):
    """Every attempt's commit fails to store what the handler printed; the last one fails the
    request, recording where that attempt ran and what it reported, but the output."""
    cluster.engine.settings = cluster.engine.settings.with_overrides(invocation_max_attempts=2)
    published = record_publishes(monkeypatch, cluster, lose=is_root_map)
    chatty_job_whose_logs_are_refused(cluster, monkeypatch,
                                      "yield MrConfigureToReturn()\nyield 'a', 1")
    accepted = cluster.engine.submit(cluster.workflow, "chatty", {"a": 1}, blocking=False)
    (root,) = published
    for attempt in (1, 2):
        cluster.engine.handle(RecordedDelivery(cluster.engine, root, attempt))
    request = cluster.engine.get_request(cluster.workflow, accepted.request_id)
    assert request.state == "failed"
    assert request.error["message"].endswith(
        "gave up after 2 attempts; the last failed with: the disk is full")
    assert (request.finished_by["status"], request.finished_by["attempts"]) == ("halfway", 2)
    assert "log" not in request.finished_by


def test_what_a_landed_commit_counted_is_not_counted_again_by_the_failure_after_it(
        cluster, monkeypatch):
    """The branch commits, then its children cannot be published, and that was its last
    attempt: the failure records where it ran, but not the counters its commit had taken."""
    cluster.engine.settings = cluster.engine.settings.with_overrides(invocation_max_attempts=1)

    def queue_away_for_children(message):
        if message.ancestors:
            raise QueueError("nsqd is away")
        return True

    intercept_publishes(monkeypatch, cluster.engine, queue_away_for_children)
    traced_job(cluster)
    request = cluster.run("count", DOCUMENTS)
    assert request.state == "failed"
    assert request.error["message"].endswith("the last failed with: nsqd is away")
    trace = read_trace(cluster.engine, cluster.workflow, request.request_id)
    assert [run.phase for run in trace.root.runs] == ["map", "failed"]
    assert request.finished_by["attempts"] == 1  # recorded at once, by that attempt
    assert trace.counters == {"documents": {"seen": 2}}


def test_a_running_request_shows_what_is_done_running_and_queued(cluster, tmp_path):
    release = tmp_path / "release"
    fan_job(cluster, "for number in range(4):\n    yield number, number\n", f"""
import os, time
(key, value), = arguments
increment_counter("leaves", "run")
while key == 3 and not os.path.exists({str(release)!r}):
    time.sleep(0.02)
yield MrConfigureToReturn()
yield key, value
""")
    accepted = cluster.engine.submit(cluster.workflow, "fan", {"a": 1}, blocking=False)
    held = child_id(accepted.root_invocation_id, 3)

    def children_states():
        trace = read_trace(cluster.engine, cluster.workflow, accepted.request_id)
        return [child.state for child in trace.root.children]

    with gevent.Timeout(20):  # the held leaf is marked active at its message's first touch
        while children_states() != ["done", "done", "done", "running"]:
            gevent.sleep(0.05)
    trace = read_trace(cluster.engine, cluster.workflow, accepted.request_id)
    node = trace.root.children[3]
    assert (trace.root.state, node.invocation_id) == ("running", held)
    (run,) = node.runs
    assert (run.phase, run.host, run.pid, run.attempts) == ("running", socket.gethostname(),
                                                            os.getpid(), 1)
    so_far = {"leaves": {"run": 3}, "reduce": {"calls": 3}}  # the held leaf's are not in
    assert trace.counters == so_far
    status = create_app(cluster.engine).test_client().get(
        f"/request/{cluster.workflow}/{accepted.request_id}").get_json()
    assert status["counters"] == so_far
    release.touch()
    finished = cluster.engine.wait(cluster.workflow, accepted.request_id, 30)
    assert finished.counters == {"leaves": {"run": 4}, "reduce": {"calls": 5}}


def test_a_queued_invocation_is_shown_queued(cluster):
    """Children published but not delivered yet: the worker is stopped after the branch."""
    fan_job(cluster, "yield 1, 1\n", QUIET_LEAF)
    original = cluster.engine.dispatch.publish
    published = []

    def hold_children(request, messages, **options):
        if any(message.ancestors for message in messages):
            published.append(messages)  # never delivered
            return
        original(request, messages, **options)
    cluster.engine.dispatch.publish = hold_children
    accepted = cluster.engine.submit(cluster.workflow, "fan", {"a": 1}, blocking=False)
    with gevent.Timeout(20):
        while not published:
            gevent.sleep(0.02)
    trace = read_trace(cluster.engine, cluster.workflow, accepted.request_id)
    assert (trace.root.state, [child.state for child in trace.root.children]) == (
        "running", ["queued"])
    assert trace.root.children[0].started_at is None
    cluster.engine.cancel(cluster.workflow, accepted.request_id)
    trace = read_trace(cluster.engine, cluster.workflow, accepted.request_id)
    assert [child.state for child in trace.root.children] == ["cancelled"]


def partitioned_job(cluster, reducer: str) -> None:
    """Job ``count``: split the documents into leaves, then reduce in 2 partitions with
    ``reducer``."""
    cluster.handler("split", "mapper", "yield MrConfigureToMap('count')\n"
                                       "for name, text in arguments:\n    yield name, text\n")
    cluster.handler("count", "mapper", COUNT)
    cluster.handler("total", "reducer", TOTAL)
    cluster.handler("partition_total", "reducer", reducer)
    cluster.step("count", "count", "total")
    cluster.step("split", "split", "partition_total", partitions=2)
    cluster.job("count", "split")


def test_partition_reduces_are_traced_under_their_branch_queued_then_done(cluster, tmp_path):
    release = tmp_path / "release"
    partitioned_job(cluster, f"import os, time\nwhile not os.path.exists({str(release)!r}):\n"
                             f"    time.sleep(0.02)\n{TOTAL}")
    accepted = cluster.engine.submit(cluster.workflow, "count", {"a": "x y", "b": "y z"},
                                     blocking=False)

    def shown():
        root = read_trace(cluster.engine, cluster.workflow, accepted.request_id).root
        return root, [(node.kind, node.partition, node.state) for node in root.children]

    with gevent.Timeout(20):  # the leaves are done, the partition reduces wait for release
        while shown()[1] != [("leaf", None, "done"), ("leaf", None, "done"),
                             ("partition", 0, "queued"), ("partition", 1, "queued")]:
            gevent.sleep(0.05)
    root, _ = shown()
    children_done_at = max(leaf.finished_at for leaf in root.children[:2])
    for node in root.children[2:]:
        assert (node.invocation_id, node.step, node.queued_at, node.runs) == (
            root.invocation_id, "split", children_done_at, [])
    release.touch()
    request = cluster.engine.wait(cluster.workflow, accepted.request_id, 30)
    assert request.state == "done", request.error
    root, states = shown()
    assert states == [("leaf", None, "done"), ("leaf", None, "done"),
                      ("partition", 0, "done"), ("partition", 1, "done")]
    for node in root.children[2:]:
        (run,) = node.runs
        assert (node.invocation_id, node.queued_at) == (root.invocation_id, children_done_at)
        assert (run.phase, run.host, run.counters) == (
            "partition reduce", socket.gethostname(), {"reduce": {"calls": 1}})
    # each partition's reducer counted once, each leaf's reducer once
    assert request.counters == {"words": {"total": 4}, "reduce": {"calls": 4}}


def test_partition_reduces_of_a_failed_request_are_shown_cancelled(cluster):
    partitioned_job(cluster, "raise ValueError('no total')\nyield 1, 1\n")
    request = cluster.run("count", {"a": "x y", "b": "y z"})
    assert (request.state, request.failed_invocation_id) == ("failed",
                                                             request.root_invocation_id)
    root = read_trace(cluster.engine, cluster.workflow, request.request_id).root
    assert [(node.kind, node.partition, node.state, node.on_failed_path)
            for node in [root, *root.children]] == [
        ("branch", None, "failed", True), ("leaf", None, "done", False),
        ("leaf", None, "done", False), ("partition", 0, "cancelled", False),
        ("partition", 1, "cancelled", False)]


def test_the_root_of_a_request_over_an_input_shows_its_partition_reduce(cluster, tmp_path):
    """Without partitions in its step, a root over input files reduces in one partition."""
    count_job(cluster)
    request = cluster.run("wordcount", {}, input={
        "url": write_inputs(tmp_path / "in", {"a.txt": "the cat\nthe dog\n"})})
    assert request.state == "done", request.error
    root = read_trace(cluster.engine, cluster.workflow, request.request_id).root
    assert [(node.partition, node.state, node.runs[0].phase) for node in root.children
            if node.kind == "partition"] == [(0, "done", "partition reduce")]


def test_an_exec_handler_counts_and_sets_its_status(cluster):
    exec_handler(cluster, "shell_counter", """#!/bin/sh
# Counts from a shell script.
# **
# argument_spec: [{name: arguments, type: list}]
# handler_type: mapper
# required_capability: none
cat <&"$MR_INPUT_FD" >/dev/null
printf '["return"]\\n["counter", "shell", "lines", 2]\\n["status", "shell done"]\\n' \\
    >&"$MR_OUTPUT_FD"
printf '["counter", "shell", "lines", 1]\\n["pair", "k", 1]\\n' >&"$MR_OUTPUT_FD"
""")
    cluster.handler("total", "reducer", SUM_REDUCER)
    cluster.step("shell", "shell_counter", "total")
    cluster.job("shell", "shell")
    request = cluster.run("shell", {"a": 1})
    assert request.state == "done", request.error
    assert request.counters == {"shell": {"lines": 3}}
    assert request.finished_by["status"] == "shell done"


@pytest.mark.parametrize("call, message", [
    ("increment_counter('g', 5)", "increment_counter: the counter name must be a non-empty "
                                  "str of at most 100 characters, got 5"),
    ("increment_counter('g', 'n', 1.5)", "increment_counter: n must be an int, got 1.5"),
    (f"[increment_counter('g', str(n)) for n in range({MAX_COUNTERS + 1})]",
     f"increment_counter: an invocation may have at most {MAX_COUNTERS} counters; 'g'/'100' "
     f"would be one more"),
])
def test_a_bad_counter_fails_its_handler_with_a_clear_message(cluster, call, message):
    cluster.handler("counting", "mapper", f"{call}\n{QUIET_LEAF}")
    cluster.handler("total", "reducer", SUM_REDUCER)
    cluster.step("leaf", "counting", "total")
    cluster.job("leaf", "leaf")
    request = cluster.run("leaf", {"a": 1})
    assert (request.state, request.error["type"], request.error["message"]) == (
        "failed", "ValueError", message)


@pytest.fixture
def embedded_cluster(request, executor, tmp_path):
    yield from start_cluster(request, "embedded", executor, tmp_path)


def test_a_wide_request_draws_its_leaves_as_one_box(embedded_cluster):
    """10,000 children: their runs of leaves collapse, so the drawing stays a few boxes."""
    cluster = embedded_cluster
    fan_job(cluster, "for number in range(10000):\n    yield number, number\n", QUIET_LEAF)
    finished = cluster.run("fan", {"a": 1}, timeout_s=120)
    assert finished.state == "done", finished.error
    trace = read_trace(cluster.engine, cluster.workflow, finished.request_id)
    (collapsed,) = shown_children(trace.root, 10)
    assert isinstance(collapsed, Collapsed)
    assert (len(collapsed.nodes), collapsed.states) == (10000, {"done": 10000})
    durations = collapsed.durations()
    assert 0 <= durations["p50"] <= durations["p90"] <= durations["max"]
    svg = draw(trace, "svg").decode()
    assert svg.count('class="node"') == 3  # the request, the root, the collapsed leaves
    assert "10,000 × leaf · leaf" in svg and "done 10,000" in svg
    assert len(shown_children(trace.root, 0)) == 10000


def test_a_run_of_leaves_is_broken_by_the_failed_path(cluster):
    """Only runs longer than the threshold collapse; the failed leaf stays a box of its own."""
    fan_job(cluster, "for number in range(30):\n"
                     "    yield number, 'boom' if number == 20 else 'a'\n", COUNT)
    failed = cluster.run("fan", {"a": 1})
    assert failed.state == "failed"
    trace = read_trace(cluster.engine, cluster.workflow, failed.request_id)
    collapsed, failed_leaf, *rest = shown_children(trace.root, 10)
    assert isinstance(collapsed, Collapsed) and len(collapsed.nodes) == 20
    failed_id = child_id(failed.root_invocation_id, 20)
    assert (failed_leaf.invocation_id, failed_leaf.state) == (failed_id, "failed")
    assert [node.invocation_id for node in rest] == [
        child_id(failed.root_invocation_id, position) for position in range(21, 30)]
    dot = draw(trace, "dot").decode()
    root_name, leaf_name = f"i{failed.root_invocation_id}", f"i{failed_id}"
    assert f"{root_name} -> {leaf_name} [color=\"{FAILED_LINE}\" penwidth=2]" in dot
    assert dot.count(" -> ") == 1 + 1 + 1 + 9  # request, collapsed run, failed leaf, the rest


def test_the_front_end_serves_the_drawing(cluster, tmp_path, monkeypatch):
    traced_job(cluster)
    request = cluster.run("count", {"a": "x", "b": "boom"})
    client = create_app(cluster.engine).test_client()
    path = f"/request/{cluster.workflow}/{request.request_id}/graph.svg"
    answer = client.get(path)
    assert (answer.status_code, answer.mimetype) == (200, "image/svg+xml")
    assert answer.headers["Cache-Control"] == "no-store"
    svg = answer.get_data(as_text=True)
    assert "<svg" in svg and "ValueError: no such word" in svg
    assert f"request {request.request_id[:12]}" in svg
    done = cluster.run("count", DOCUMENTS)
    done_path = f"/request/{cluster.workflow}/{done.request_id}/graph.svg"
    assert "2 × count · leaf" in client.get(done_path + "?collapse=1").get_data(as_text=True)
    assert "2 × count · leaf" not in client.get(done_path).get_data(as_text=True)
    bad = client.get(path + "?collapse=-1")
    assert (bad.status_code, bad.get_json()["error"]) == (400, {
        "type": "InvalidParameter",
        "message": "query parameter 'collapse': expected a number of leaves >= 0, got '-1'"})
    missing = client.get(f"/request/{cluster.workflow}/{'0' * 32}/graph.svg")
    assert (missing.status_code, missing.get_json()["error"]["type"]) == (404, "NotFound")
    malformed = client.get(f"/request/{cluster.workflow}/12345/graph.svg")
    assert (malformed.status_code, malformed.get_json()["error"]["type"]) == (
        400, "ValidationError")
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot to run
    unavailable = client.get(path)
    assert (unavailable.status_code, unavailable.get_json()["error"]["type"]) == (
        503, "ServiceUnavailable")
    assert unavailable.get_json()["error"]["message"] == (
        "graphviz's dot program is not installed (Debian: apt-get install graphviz), so the "
        "trace cannot be drawn as svg; --format dot writes its source")
