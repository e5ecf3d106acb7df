"""Requests end to end, in both modes: the JobX protocol and its failure answers."""
import collections

import pytest


LEAF_MAPPER = """
yield MrConfigureToReturn()
for name, text in arguments:
    for word in text.split():
        yield word.lower(), 1
"""
SUM_REDUCER = """
for key, values in results:
    yield key, sum(values)
"""
SPLIT_DOCUMENTS = """
yield MrConfigureToMap('count')
for name, text in arguments:
    yield name, text
"""


def wordcount(cluster, with_branch: bool):
    cluster.handler("count_map", "mapper", LEAF_MAPPER)
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.step("count", "count_map", "sum")
    if with_branch:
        cluster.handler("split", "mapper", SPLIT_DOCUMENTS)
        cluster.step("split", "split", "sum")
        cluster.job("wordcount", "split")
    else:
        cluster.job("wordcount", "count")


DOCUMENTS = {"a": "the cat sat on the mat", "b": "The dog ate the cat", "c": "mat"}
EXPECTED = collections.Counter(" ".join(DOCUMENTS.values()).lower().split())


def test_a_leaf_request_returns_the_reduced_pairs(cluster):
    wordcount(cluster, with_branch=False)
    request = cluster.run("wordcount", DOCUMENTS)
    assert request.state == "done"
    assert dict(cluster.engine.result(request)) == EXPECTED


def test_a_branching_request_reduces_every_child(cluster):
    wordcount(cluster, with_branch=True)
    request = cluster.run("wordcount", DOCUMENTS)
    assert request.state == "done"
    assert dict(cluster.engine.result(request)) == EXPECTED


def executor_runs(cluster, monkeypatch) -> list[list[str]]:
    """The handlers of each exchange with an executor child, from now on."""
    runs = []
    run = cluster.engine.executor.run

    def counted(task, timeout_s=None, then=None):
        runs.append([task.handler_name, *([then.handler_name] if then else [])])
        return run(task, timeout_s, then=then)

    monkeypatch.setattr(cluster.engine.executor, "run", counted)
    return runs


@pytest.mark.parametrize("with_branch", [False, True])
def test_a_leafs_mapper_and_reducer_make_one_exchange_with_its_executor_child(
        cluster, monkeypatch, with_branch):
    """A mapper that maps to a step does not run the reducer sent with it; the branch's own
    reduction is an exchange of its own."""
    wordcount(cluster, with_branch)
    runs = executor_runs(cluster, monkeypatch)
    request = cluster.run("wordcount", DOCUMENTS)
    assert dict(cluster.engine.result(request)) == EXPECTED
    assert sorted(runs) == sorted([["split", "sum"], *[["count_map", "sum"]] * 3, ["sum"]]
                                  if with_branch else [["count_map", "sum"]])


def test_children_with_large_reductions_pass_them_through_the_data_store(cluster):
    cluster.handler("split", "mapper", SPLIT_DOCUMENTS)
    cluster.handler("pad", "mapper", """
yield MrConfigureToReturn()
for name, text in arguments:
    yield name, text * 1000
""")
    cluster.handler("first", "reducer", "for key, values in results:\n    yield key, values[0]\n")
    cluster.step("count", "pad", "first")
    cluster.step("split", "split", "first")
    cluster.job("j", "split")
    request = cluster.run("j", {"small": "s", "large": "0123456789"})
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == {"small": "s" * 1000,
                                                    "large": "0123456789" * 1000}


def test_a_branch_with_zero_children_reduces_empty_results(cluster):
    cluster.handler("nothing", "mapper", "yield MrConfigureToMap('leaf')\n")
    cluster.handler("leaf_map", "mapper", "yield MrConfigureToReturn()\n")
    cluster.handler("report", "reducer", "yield 'children', len(results)\n")
    cluster.step("leaf", "leaf_map", "report")
    cluster.step("root", "nothing", "report")
    cluster.job("empty", "root")
    request = cluster.run("empty", {"x": 1})
    assert request.state == "done"
    assert cluster.engine.result(request) == [["children", 0]]


def test_a_three_level_tree(cluster):
    cluster.handler("top", "mapper", """
yield MrConfigureToMap('middle')
for key, value in arguments:
    for part in range(value):
        yield f"{key}.{part}", part
""")
    cluster.handler("middle_map", "mapper", """
yield MrConfigureToMap('bottom')
for key, value in arguments:
    for item in range(value + 1):
        yield key, item
""")
    cluster.handler("bottom_map", "mapper", """
yield MrConfigureToReturn()
for key, value in arguments:
    yield 'items', 1
    yield 'total', value
""")
    cluster.handler("add", "reducer", SUM_REDUCER)
    for step, mapper in [("top", "top"), ("middle", "middle_map"), ("bottom", "bottom_map")]:
        cluster.step(step, mapper, "add")
    cluster.job("tree", "top")
    request = cluster.run("tree", {"a": 3, "b": 2})
    # a: parts 0,1,2 -> 1+2+3 leaves; b: parts 0,1 -> 1+2 leaves; totals: sum of 0..part
    assert request.state == "done"
    assert dict(cluster.engine.result(request)) == {"items": 9, "total": 0 + 1 + 3 + 0 + 1}


def test_a_custom_combiner_runs_between_mapper_and_reducer(cluster, monkeypatch):
    cluster.handler("words", "mapper", LEAF_MAPPER)
    cluster.handler("partial_sums", "combiner", """
totals = {}
for key, value in results:
    totals[key] = totals.get(key, 0) + value
for key, total in totals.items():
    yield key, [total, 'combined']
""")
    cluster.handler("check_combined", "reducer", """
for key, values in results:
    assert values[1] == 'combined', values
    yield key, values[0]
""")
    cluster.step("count", "words", "check_combined", combiner="partial_sums")
    cluster.job("combined", "count")
    runs = executor_runs(cluster, monkeypatch)
    request = cluster.run("combined", DOCUMENTS)
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == EXPECTED
    assert runs == [["words"], ["partial_sums"], ["check_combined"]]  # an exchange each


def test_sessions_pass_from_mapper_and_combiner_to_reducer(cluster):
    cluster.handler("remember", "mapper", """
S_SET('seen', [key for key, _ in arguments])
yield MrConfigureToReturn()
yield 'k', 1
""")
    cluster.handler("also_remember", "combiner", """
S_SET('combined', True)
for key, value in results:
    yield key, [value]
""")
    cluster.handler("recall", "reducer", """
yield 'seen', sorted(S_GET('seen'))
yield 'combined', S_GET('combined')
yield 'all', sorted(S_LIST())
""")
    cluster.step("s", "remember", "recall", combiner="also_remember")
    cluster.job("sessions", "s")
    request = cluster.run("sessions", {"x": 1, "y": 2})
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == {
        "seen": ["x", "y"], "combined": True, "all": ["combined", "seen"]}


def test_a_branch_reducer_reads_its_mappers_session(cluster):
    cluster.handler("fan_out", "mapper", """
S_SET('children', len(arguments))
yield MrConfigureToMap('leaf')
for pair in arguments:
    yield pair
""")
    cluster.handler("leaf_map", "mapper", "yield MrConfigureToReturn()\nyield 'n', 1\n")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.handler("check", "reducer", """
yield 'expected', S_GET('children')
for key, values in results:
    yield key, sum(values)
""")
    cluster.step("leaf", "leaf_map", "add")
    cluster.step("root", "fan_out", "check")
    cluster.job("j", "root")
    request = cluster.run("j", {str(n): n for n in range(7)})
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == {"expected": 7, "n": 7}


def test_a_reducer_cannot_write_its_session(cluster):
    cluster.handler("m", "mapper", "yield MrConfigureToReturn()\nyield 'k', 1\n")
    cluster.handler("writer", "reducer", "S_SET('x', 1)\nyield 'k', 1\n")
    cluster.step("s", "m", "writer")
    cluster.job("j", "s")
    request = cluster.run("j", {"a": 1})
    assert request.state == "failed"
    assert request.error["type"] == "PermissionError"


def test_a_raising_handler_fails_the_request_with_its_traceback_and_output(cluster):
    cluster.handler("m", "mapper", LEAF_MAPPER)
    cluster.handler("broken", "reducer", """
print('about to fail')
raise ValueError('no good: ' + str(len(results)))
yield 'never', 1
""")
    cluster.step("s", "m", "broken")
    cluster.job("j", "s")
    request = cluster.run("j", {"a": "x y"})
    assert request.state == "failed"
    assert request.error["type"] == "ValueError"
    assert request.error["message"] == "no good: 2"
    assert "line 3" in request.error["traceback"]
    assert request.error["stdout"] == "about to fail\n"
    assert request.error["handler"] == "broken"
    assert request.failed_invocation_id == request.root_invocation_id


def test_a_failing_child_fails_the_request_and_names_the_child(cluster):
    cluster.handler("split", "mapper", SPLIT_DOCUMENTS)
    cluster.handler("picky", "mapper", """
yield MrConfigureToReturn()
for name, text in arguments:
    if name == 'bad':
        raise KeyError(name)
    yield name, 1
""")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("count", "picky", "add")
    cluster.step("split", "split", "add")
    cluster.job("j", "split")
    request = cluster.run("j", {"good": "x", "bad": "y", "fine": "z"})
    assert request.state == "failed"
    assert request.error["type"] == "KeyError"
    assert request.failed_invocation_id not in (None, request.root_invocation_id)


def test_a_handler_that_runs_too_long_is_killed(cluster):
    cluster.engine.settings = cluster.engine.settings.with_overrides(invocation_timeout_s=0.5)
    cluster.handler("slow", "mapper", "import time\ntime.sleep(30)\nyield MrConfigureToReturn()\n")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("s", "slow", "add")
    cluster.job("j", "s")
    request = cluster.run("j", {"a": 1}, timeout_s=15)
    assert request.state == "failed"
    assert request.error["kind"] == "timeout"


def test_a_handler_that_exits_its_process_fails_only_its_request(cluster):
    wordcount(cluster, with_branch=False)
    cluster.handler("exits", "mapper", "import os\nos._exit(7)\nyield MrConfigureToReturn()\n")
    cluster.step("crash", "exits", "sum")
    cluster.job("crash", "crash")
    crashed = cluster.run("crash", {"a": 1})
    assert crashed.state == "failed"
    assert crashed.error["kind"] == "crashed" and "7" in crashed.error["message"]
    after = cluster.run("wordcount", DOCUMENTS)
    assert after.state == "done"
    assert dict(cluster.engine.result(after)) == EXPECTED


def test_mapping_to_an_unknown_step_fails_clearly(cluster):
    cluster.handler("lost", "mapper", "yield MrConfigureToMap('nowhere')\nyield 'k', 1\n")
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("s", "lost", "add")
    cluster.job("j", "s")
    request = cluster.run("j", {"a": 1})
    assert request.state == "failed"
    assert request.error["type"] == "UnknownStep" and "'nowhere'" in request.error["message"]
