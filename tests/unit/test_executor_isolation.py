"""Executor children are never shared between workflows: what one workflow's handler leaves in
its child's interpreter, another workflow's handler cannot see. A workflow's own invocations
reuse its children; a child goes to another workflow only by being replaced by a fresh one,
forked from the pool's fork server."""
import os
import signal

import gevent
import pytest

from mr.executor import ExecutorPool
from tests.unit.executor_helpers import handler_error, is_running, task, wait_until_stopped

#: Leaves a mark in the interpreter's module state, and reports the marks it found there.
MARKING_MAPPER = """
import sys
found = sorted(getattr(sys, "marks", set()))
sys.marks = set(found) | {arguments[0][1]}
yield MrConfigureToReturn()
yield "found", found
"""


def marks_found(pool: ExecutorPool, workflow: str, mark: str) -> list[str]:
    outcome = pool.run(task("mapper", MARKING_MAPPER, [["mark", mark]], workflow=workflow))
    assert outcome.ok, outcome.error
    return dict(outcome.pairs)["found"]


@pytest.fixture
def pool():
    with ExecutorPool(size=1, default_timeout_s=30) as executor:
        yield executor


def test_a_handler_never_sees_the_module_state_another_workflow_left(pool):
    assert marks_found(pool, "tenant_a", "a1") == []
    assert marks_found(pool, "tenant_a", "a2") == ["a1"]  # its own child, kept
    first_child = pool.pids
    assert marks_found(pool, "tenant_b", "b1") == []
    assert pool.pids != first_child and len(pool.pids) == pool.size
    assert wait_until_stopped(first_child[0])  # the replaced child exits
    assert marks_found(pool, "tenant_a", "a3") == []  # not the child b ran in


def test_a_caller_waiting_for_a_child_gets_a_fresh_one_when_another_workflow_frees_one(pool):
    slow = gevent.spawn(pool.run, task("mapper", "import sys, time\nsys.marks = {'a'}\n"
                                                 "time.sleep(0.5)\nyield MrConfigureToReturn()\n",
                                       workflow="tenant_a"))
    gevent.sleep(0.2)  # tenant_a holds the only child
    assert marks_found(pool, "tenant_b", "b") == []
    assert slow.get().ok


def test_workflows_interleaved_on_few_children_each_see_only_their_own_marks():
    with ExecutorPool(size=2, default_timeout_s=30) as pool:
        def tenant(name: str) -> list[list[str]]:
            return [marks_found(pool, name, f"{name}-{number}") for number in range(8)]

        runs = {name: gevent.spawn(tenant, name) for name in ("a", "b", "c")}
        gevent.joinall(list(runs.values()), raise_error=True)
    for name, found in ((name, run.value) for name, run in runs.items()):
        assert all(mark.startswith(f"{name}-") for marks in found for mark in marks), found
        assert len(found) == 8


def test_a_caller_killed_while_a_child_is_replaced_for_it_leaves_the_pool_whole(pool):
    marks_found(pool, "tenant_a", "a")
    for _ in range(3):
        caller = gevent.spawn(marks_found, pool, "tenant_b", "b")
        gevent.sleep(0)  # it gave the child of tenant_a up, and waits for a fresh one
        caller.kill()
    with gevent.Timeout(10):
        assert marks_found(pool, "tenant_c", "c") == []
    assert len(pool.pids) == pool.size


def test_children_are_forked_from_a_fork_server_that_no_handler_ran_in(pool):
    assert marks_found(pool, "tenant_a", "a") == []
    server = pool._fork_server.pid
    assert all(parent_of(child) == server for child in pool.pids)
    assert parent_of(server) == os.getpid()


def test_a_dead_fork_server_fails_only_the_invocation_running_then_and_is_started_again(pool):
    running = gevent.spawn(pool.run, task("mapper", "import time\ntime.sleep(30)\nyield 1\n"))
    gevent.sleep(0.3)
    server = pool._fork_server.pid
    os.kill(server, signal.SIGKILL)
    assert handler_error(running.get(timeout=10), "crashed")
    assert marks_found(pool, "tenant_a", "a") == []
    assert pool._fork_server.pid != server
    assert all(parent_of(child) == pool._fork_server.pid for child in pool.pids)


def test_closing_the_pool_stops_its_fork_server():
    executor = ExecutorPool(size=1)
    server = executor._fork_server.pid
    assert is_running(server)
    executor.close()
    assert not is_running(server)


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])
