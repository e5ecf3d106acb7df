"""A mapper with a reducer to follow: one exchange with one child, each handler still with its
own time limit, output capture and failure (ExecutorPool.run(then=...))."""
import gevent
import pytest

from mr.executor import ExecutorPool
from tests.unit.executor_helpers import handler_error, task

RETURNS = """\
    import os
    print('mapper in', os.getpid())
    S_SET('seen', len(arguments))
    yield MrConfigureToReturn()
    for key, value in arguments:
        yield (key, value)
    """
SUMS = """\
    import os, sys
    print('reducer in', os.getpid())
    print('session', S_GET('seen'), file=sys.stderr)
    for key, values in results:
        yield (key, sum(values))
    """


@pytest.fixture(scope="module")
def pool():
    with ExecutorPool(size=2, default_timeout_s=30) as executor_pool:
        yield executor_pool


def test_the_reducer_runs_in_the_same_child_over_the_mapped_pairs_grouped_by_key(pool):
    outcome = pool.run(task("mapper", RETURNS, [["b", 1], ["a", 2], ["b", 3]]),
                       then=task("reducer", SUMS, name="sums"))
    assert outcome.ok and outcome.then.ok, (outcome.error, outcome.then.error)
    assert outcome.pairs == []  # they stayed in the child
    assert outcome.then.pairs == [["a", 2], ["b", 4]]
    mapper_pid = outcome.stdout.split()[-1]
    assert outcome.then.stdout == f"reducer in {mapper_pid}\n"  # each its own capture
    assert (outcome.stderr, outcome.then.stderr) == ("", "session 3\n")
    assert outcome.session == outcome.then.session == {"seen": 3}


def test_a_mapper_that_maps_to_a_step_runs_no_reducer(pool):
    outcome = pool.run(task("mapper", "yield MrConfigureToMap('next')\nyield ('k', 1)\n"),
                       then=task("reducer", "print('ran')\nyield ('k', 1)\n"))
    assert outcome.ok and outcome.directive == {"kind": "map", "step": "next"}
    assert outcome.then is None
    assert pool.run(task("mapper", RETURNS, [["k", 1]])).ok  # the child took no second reply


@pytest.mark.parametrize("body", [
    "raise ValueError('no good')\nyield 1\n",
    "yield MrConfigureToReturn()\nyield ('k', {1, 2})\n",  # pairs that cannot be encoded
])
def test_a_mapper_that_fails_runs_no_reducer(pool, body):
    outcome = pool.run(task("mapper", body), then=task("reducer", "yield ('k', 1)\n"))
    handler_error(outcome)
    assert outcome.then is None
    assert pool.run(task("mapper", RETURNS, [["k", 1]])).ok


def test_each_handler_has_the_whole_time_limit_to_itself(pool):
    """0.3 s each, with a limit of 0.5 s: together they take longer than one limit."""
    sleeps = "import time\ntime.sleep(0.3)\n"
    outcome = pool.run(task("mapper", sleeps + "yield MrConfigureToReturn()\nyield ('k', 1)\n"),
                       timeout_s=0.5,
                       then=task("reducer", sleeps + "yield ('k', 2)\n"))
    assert outcome.ok and outcome.then.ok, (outcome.error, outcome.then.error)
    assert outcome.then.pairs == [["k", 2]]


def test_a_reducer_over_its_limit_is_stopped_and_named(pool):
    pids = pool.pids
    outcome = pool.run(task("mapper", RETURNS, [["k", 1]]), timeout_s=0.5,
                       then=task("reducer", "import time\ntime.sleep(60)\nyield ('k', 1)\n",
                                 name="slow"))
    assert outcome.ok
    error = handler_error(outcome.then, "timeout")
    assert "handler 'slow' ran longer than 0.5 s" in error["message"]
    assert len(set(pids) - set(pool.pids)) == 1 and len(pool.pids) == 2
    assert pool.run(task("mapper", RETURNS, [["k", 1]])).ok


def test_a_reducer_that_kills_its_child_is_reported_and_the_child_replaced(pool):
    outcome = pool.run(task("mapper", RETURNS, [["k", 1]]),
                       then=task("reducer", "import os\nprint('bye')\nos._exit(3)\nyield 1\n"))
    assert outcome.ok
    error = handler_error(outcome.then, "crashed")
    assert error["message"].endswith("died: exit status 3")
    assert outcome.then.stdout == "bye\n"
    assert len(pool.pids) == 2
    assert pool.run(task("mapper", RETURNS, [["k", 1]])).ok


def test_a_caller_stopped_during_the_reducer_kills_its_child_and_the_pool_lives_on(pool):
    pids = pool.pids
    run = gevent.spawn(pool.run, task("mapper", RETURNS, [["k", 1]]),
                       then=task("reducer", "import time\ntime.sleep(60)\nyield ('k', 1)\n"))
    with gevent.Timeout(10):
        while pool.busy == 0:
            gevent.sleep(0.01)
    gevent.sleep(0.3)  # the mapper has answered; the reducer sleeps
    run.kill()
    assert len(set(pids) - set(pool.pids)) == 1 and len(pool.pids) == 2
    assert pool.run(task("mapper", RETURNS, [["k", 1]])).ok


def test_the_reducer_gets_what_it_would_have_got_through_the_pool(pool):
    """Tuples became lists on their way through the pool and back: they still do."""
    outcome = pool.run(task("mapper", """\
        S_SET('kept', (1, 2))
        yield MrConfigureToReturn()
        yield (('a', 1), (2, 3))
        yield (('a', 1), (4, 5))
        """), then=task("reducer", """\
        for key, values in results:
            yield (type(key).__name__, [type(value).__name__ for value in values])
        yield ('session', type(S_GET('kept')).__name__)
        """))
    assert outcome.then.pairs == [["list", ["list", "list"]], ["session", "list"]]
