"""A request's trace as people and programs get it, to the character: the drawing (boxes,
labels, colours, the failed path in red, a run of leaves collapsed, a running request timed to
now) and the JSON of ``mr request tree --json``."""
import types

import pytest

from mr.engine import trace_graph
from mr.engine.trace_graph import draw
from mr.engine.trace_tree import Collapsed, Node, RequestTrace, Run, elapsed, shown_children
from mr.models import Request

#: How every drawing of request aaa…a of job ``count`` in workflow ``w`` begins.
DRAWING_HEAD = """digraph "request-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
\tgraph [rankdir=TB tooltip="request aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]
\tnode [fontname=Helvetica fontsize=10 shape=box style="rounded,filled"]
\tedge [arrowsize=0.6]
\trequest [label="request aaaaaaaaaaaa
w / count
"""

FAILED_DRAWING = DRAWING_HEAD + """failed · 2.50 s
documents.seen = 2
words.seen = 7
words.total = 20" fillcolor="#ef9a9a" shape=note]
\trequest -> ibbbbbbbbbbbbbbbbbbbb [color="#c62828" penwidth=2]
\tibbbbbbbbbbbbbbbbbbbb [label="split · branch
bbbbbbbbbbbb · failed · 2.40 s
h1:7" color="#c62828" fillcolor="#ef9a9a" penwidth=2 tooltip=bbbbbbbbbbbbbbbbbbbb]
\tc00000000000000000000 [label="12 × count · leaf
cancelled 1, done 11
p50 60 ms · p90 100 ms · max 110 ms" fillcolor="#bbdefb" peripheries=2]
\tibbbbbbbbbbbbbbbbbbbb -> c00000000000000000000
\tibbbbbbbbbbbbbbbbbbbb -> idddddddddddddddddddd [color="#c62828" penwidth=2]
\tibbbbbbbbbbbbbbbbbbbb -> ieeeeeeeeeeeeeeeeeeee
\tibbbbbbbbbbbbbbbbbbbb -> ibbbbbbbbbbbbbbbbbbbbp0
\tibbbbbbbbbbbbbbbbbbbbp0 [label="split · partition 0
bbbbbbbbbbbb · cancelled" fillcolor="#f5f5f5" tooltip="bbbbbbbbbbbbbbbbbbbb/partition-0"]
\tieeeeeeeeeeeeeeeeeeee [label="count · leaf
eeeeeeeeeeee · done · 100 ms
h1:7
counted e" fillcolor="#c8e6c9" tooltip=eeeeeeeeeeeeeeeeeeee]
\tidddddddddddddddddddd [label="count · leaf
dddddddddddd · failed · 1.50 s
h2:9 · 3 attempts
ValueError: bad word" color="#c62828" fillcolor="#ef9a9a" penwidth=2 tooltip=dddddddddddddddddddd]
}
"""

RUNNING_DRAWING = DRAWING_HEAD + """running · 3.00 s" fillcolor="#fff59d" shape=note]
\trequest -> ibbbbbbbbbbbbbbbbbbbb
\tibbbbbbbbbbbbbbbbbbbb [label="split · branch
bbbbbbbbbbbb · running · 2.50 s
h1:7 · 2 attempts" fillcolor="#fff59d" tooltip=bbbbbbbbbbbbbbbbbbbb]
\tibbbbbbbbbbbbbbbbbbbb -> icccccccccccccccccccc
\ticccccccccccccccccccc [label="count · leaf
cccccccccccc · queued" fillcolor="#eeeeee" tooltip=cccccccccccccccccccc]
}
"""


def request_of(state: str, finished_at: float | None = None) -> Request:
    return Request(workflow="w", job_name="count", request_id="a" * 32,
                   root_invocation_id="b" * 32, blocking=False, state=state, created_at=1000.0,
                   finished_at=finished_at)


def done_leaf(number: int) -> Node:
    started = 1000.5 + number / 100
    return Node(f"{number:020x}", "count", state="done", runs=[Run(
        "map and reduce", "h1", 7, 1, started, started + 0.01 * (number + 1))])


def failed_leaf() -> Node:
    return Node("d" * 20, "count", state="failed", on_failed_path=True, failed_at=1002.5,
                error={"type": "ValueError", "message": "bad word"},
                runs=[Run("failed", "h2", 9, 3, 1001.0, 1002.4, counters={"words": {"seen": 7}})])


def cancelled_partition() -> Node:
    return Node("b" * 20, "split", state="cancelled", kind="partition", partition=0)


def running_trace() -> RequestTrace:
    root = Node("b" * 20, "split", state="running", kind="branch",
                runs=[Run("running", "h1", 7, 2, 1000.5)], children=[Node("c" * 20, "count")])
    return RequestTrace(request_of("running"), root, {})


def test_a_failed_request_is_drawn_with_its_path_in_red_and_its_run_of_leaves_as_one_box():
    counted = Node("e" * 20, "count", state="done",
                   runs=[Run("map and reduce", "h1", 7, 1, 1000.6, 1000.7, "counted e")])
    root = Node("b" * 20, "split", state="failed", kind="branch", on_failed_path=True,
                failed_at=1002.5, runs=[Run("map", "h1", 7, 1, 1000.1, 1000.2)],
                children=[*(done_leaf(number) for number in range(11)),
                          Node(f"{11:020x}", "count", state="cancelled"), failed_leaf(),
                          counted, cancelled_partition()])
    counters = {"words": {"total": 20, "seen": 7}, "documents": {"seen": 2}}
    trace = RequestTrace(request_of("failed", finished_at=1002.5), root, counters)
    assert draw(trace, "dot").decode() == FAILED_DRAWING


def test_a_running_request_is_drawn_as_of_now(monkeypatch):
    monkeypatch.setattr(trace_graph, "time", types.SimpleNamespace(time=lambda: 1003.0))
    assert draw(running_trace(), "dot").decode() == RUNNING_DRAWING


def run_fields(phase: str, host=None, pid=None, attempts=None, started_at=None,
               finished_at=None, counters=None) -> dict:
    return {"phase": phase, "host": host, "pid": pid, "attempts": attempts,
            "started_at": started_at, "finished_at": finished_at, "status": None,
            "log": None, "counters": counters or {}}


def test_a_trace_as_json_names_every_invocation_with_its_runs_and_children():
    queued = {"invocation_id": "c" * 20, "step": "count", "kind": "leaf", "state": "queued",
              "queued_at": None, "started_at": None, "finished_at": None, "attempts": 0,
              "status": None, "counters": {}, "on_failed_path": False, "runs": [],
              "children": []}
    assert running_trace().to_dict() == {
        "request_id": "a" * 32, "workflow": "w", "job": "count", "state": "running",
        "created_at": 1000.0, "finished_at": None, "counters": {},
        "root": {"invocation_id": "b" * 20, "step": "split", "kind": "branch",
                 "state": "running", "queued_at": None, "started_at": 1000.5,
                 "finished_at": None, "attempts": 2, "status": None, "counters": {},
                 "on_failed_path": False, "runs": [run_fields("running", "h1", 7, 2, 1000.5)],
                 "children": [queued]}}
    assert failed_leaf().to_dict() == {
        "invocation_id": "d" * 20, "step": "count", "kind": "leaf", "state": "failed",
        "queued_at": None, "started_at": 1001.0, "finished_at": 1002.5, "attempts": 3,
        "status": None, "counters": {"words": {"seen": 7}}, "on_failed_path": True,
        "error": {"type": "ValueError", "message": "bad word"},
        "runs": [run_fields("failed", "h2", 9, 3, 1001.0, 1002.4, {"words": {"seen": 7}})],
        "children": []}
    assert cancelled_partition().to_dict() == {
        "invocation_id": "b" * 20, "step": "split", "kind": "partition", "partition": 0,
        "state": "cancelled", "queued_at": None, "started_at": None, "finished_at": None,
        "attempts": 0, "status": None, "counters": {}, "on_failed_path": False, "runs": [],
        "children": []}


def leaf_taking(seconds: float, state: str = "done") -> Node:
    return Node("f" * 20, "count", state=state,
                runs=[Run("map", "h1", 7, 1, 1000.0, 1000.0 + seconds)])


def test_a_collapsed_runs_durations_are_nearest_rank_percentiles_of_its_finished_leaves():
    hundred_and_one = [leaf_taking(seconds) for seconds in range(1, 102)]
    assert Collapsed("count", hundred_and_one).durations() == {"p50": 51, "p90": 91, "max": 101}
    alone = [leaf_taking(2.5), Node("f" * 20, "count", state="cancelled"),
             leaf_taking(9.0, state="running")]
    assert Collapsed("count", alone).durations() == {"p50": 2.5, "p90": 2.5, "max": 2.5}
    assert Collapsed("count", alone[1:]).durations() is None


def test_runs_of_more_sibling_leaves_of_one_step_than_the_threshold_are_collapsed():
    eleven_a = [Node(f"a{number}", "a") for number in range(11)]
    ten_a = [Node(f"t{number}", "a") for number in range(10)]
    eleven_b = [Node(f"b{number}", "b") for number in range(11)]
    branch = Node("m", "a", kind="branch")  # a sibling of the same step that branched
    failed = Node("f", "b", state="failed", on_failed_path=True)
    children = [*eleven_a, branch, *ten_a, *eleven_b, failed]
    parent = Node("p", "p", kind="branch", children=children)
    assert shown_children(parent, 10) == [Collapsed("a", eleven_a), branch, *ten_a,
                                          Collapsed("b", eleven_b), failed]
    assert shown_children(parent, 0) == children


def test_a_nodes_duration_runs_from_its_start_to_its_end_or_to_now_while_it_runs():
    started = [Run("map", "h1", 7, 1, 1000.0)]
    assert Node("r", "s", state="running", runs=started).duration_s(1002.5) == 2.5
    assert Node("c", "s", state="cancelled", runs=started).duration_s(1002.5) is None
    assert Node("q", "s").duration_s(1002.5) is None
    done = Node("d", "s", state="done", runs=[Run("map", "h1", 7, 1, 1000.0, 1000.25)])
    assert done.duration_s(1002.5) == done.duration_s() == 0.25
    # clocks of two hosts: a leaf that seems to end before it started took no time
    skewed = Node("d", "s", state="done", runs=[Run("map", "h1", 7, 1, 1000.0, 999.5)])
    assert skewed.duration_s() == 0.0


@pytest.mark.parametrize("seconds, shown", [
    (None, "-"), (0.0, "0 µs"), (0.00085, "850 µs"), (0.0009996, "1000 µs"), (0.001, "1 ms"),
    (0.0124, "12 ms"), (0.9994, "999 ms"), (1.0, "1.00 s"), (3.456, "3.46 s"),
    (9.994, "9.99 s"), (10.0, "10.0 s"), (59.94, "59.9 s"), (60.0, "1 min 0 s"),
    (125.4, "2 min 5 s"), (3599.6, "60 min 0 s")])
def test_a_duration_is_shown_in_the_unit_that_reads_best(seconds, shown):
    assert elapsed(seconds) == shown


def test_long_statuses_and_errors_and_many_counters_are_cut_to_fit_their_boxes():
    ran = [Run("map", "h1", 7, 1, 1000.0, 1000.5, "s" * 70)]
    failed = Node("d" * 20, "count", state="failed", on_failed_path=True, failed_at=1001.0,
                  error={"type": "ValueError", "message": "e" * 70}, runs=ran)
    root = Node("b" * 20, "split", state="done", kind="branch", runs=ran, children=[failed])
    counters = {"c": {f"n{number}": number for number in range(10)}}
    dot = draw(RequestTrace(request_of("failed", 1002.5), root, counters), "dot").decode()
    assert f'\n{"s" * 60}"' in dot and f'\nValueError: {"e" * 48}"' in dot  # 60 characters
    assert "c.n7 = 7" in dot and "c.n8" not in dot  # the first 8 counters, by name
