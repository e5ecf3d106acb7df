"""The executor pool runs real child processes; run under gevent (tests/conftest.py patches)."""
import os
import re
import time
from collections import defaultdict
from pathlib import Path

import gevent
import pytest

from mr.codec import CodecError
from mr.executor import ExecutorPool, Task
from tests.unit.executor_helpers import (HEADER_LINES, handler_error, is_running, task,
                                         wait_until_stopped)

EXAMPLES = Path(__file__).parents[2] / "handlers"


@pytest.fixture(scope="module")
def pool():
    with ExecutorPool(size=2, default_timeout_s=30) as executor_pool:
        yield executor_pool


# --- mappers -------------------------------------------------------------------------------------

def test_mapper_branch_directive_and_pairs(pool):
    outcome = pool.run(task("mapper", """\
        yield MrConfigureToMap('count')
        for name, text in arguments:
            yield (name, text.upper())
        """, [["a", "x"], ["b", "y"]]))
    assert outcome.ok, outcome.error
    assert outcome.directive == {"kind": "map", "step": "count"}
    assert outcome.pairs == [["a", "X"], ["b", "Y"]]  # tuples come back as lists


def test_mapper_return_directive(pool):
    outcome = pool.run(task("mapper", """\
        yield MrConfigureToReturn()
        yield ('k', {'nested': [1, 2.5, None, b'raw']})
        """))
    assert outcome.directive == {"kind": "return"}
    assert outcome.pairs == [["k", {"nested": [1, 2.5, None, b"raw"]}]]


@pytest.mark.parametrize("body, message", [
    ("yield ('k', 1)\n", "yielded ('k', 1) first; its first item must be MrConfigureToMap"),
    ("if False:\n    yield 1\n", "yielded nothing"),
    ("yield MrConfigureToReturn()\nyield ('k', 1)\nyield 'oops'\n",
     "produced 'oops' (a str) as item 3; every item must be a (key, value) pair"),
    ("yield MrConfigureToReturn()\nyield ('k', {1, 2})\n", "cannot encode a value of type set"),
    ("yield MrConfigureToMap('no such/step')\n", "step name 'no such/step' may contain only"),
])
def test_mapper_protocol_violations_are_handler_errors(pool, body, message):
    error = handler_error(pool.run(task("mapper", body)))
    assert message in error["message"]


# --- reducers and combiners ----------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "for key, values in results:\n    yield (key, sum(values))\n",
    "return [(key, sum(values)) for key, values in results]\n",
])
def test_reducer_generator_or_returned_list(pool, body):
    outcome = pool.run(task("reducer", body, [["a", [1, 2]], ["b", [3]]]))
    assert (outcome.ok, outcome.directive) == (True, None)
    assert outcome.pairs == [["a", 3], ["b", 3]]


@pytest.mark.parametrize("body, message", [
    ("return None\n", "returned None; it must yield (key, value) pairs"),
    ("return [('a', 1, 2)]\n", "produced ('a', 1, 2) (a tuple) as item 1"),
])
def test_reducer_protocol_violations(pool, body, message):
    assert message in handler_error(pool.run(task("reducer", body)))["message"]


def test_combiner_gives_each_key_a_list_of_values(pool):
    outcome = pool.run(task("combiner", """\
        totals = {}
        for key, value in results:
            totals[key] = totals.get(key, 0) + value
        for key, total in totals.items():
            yield (key, (total,))
        """, [["a", 1], ["b", 2], ["a", 3]]))
    assert outcome.pairs == [["a", [4]], ["b", [2]]]
    bad = pool.run(task("combiner", "yield ('a', 4)\n"))
    assert "a combiner yields (key, values)" in handler_error(bad)["message"]


# --- sessions ------------------------------------------------------------------------------------

def test_mapper_reads_and_writes_its_session(pool):
    session = {"seen": 1}
    outcome = pool.run(task("mapper", """\
        S_SET('seen', S_GET('seen') + 1)
        S_SET('items', (1, 2))
        yield MrConfigureToReturn()
        yield ('listed', S_LIST())
        yield ('missing', S_GET('nothing', 'default'))
        """, session=session))
    assert outcome.session == {"seen": 2, "items": [1, 2]}
    assert outcome.pairs == [["listed", {"seen": 2, "items": [1, 2]}], ["missing", "default"]]
    assert session == {"seen": 1}


def test_reducer_session_is_read_only(pool):
    reader = pool.run(task("reducer", "yield ('seen', S_GET('seen'))\n", session={"seen": 5}))
    assert reader.pairs == [["seen", 5]]
    writer = pool.run(task("reducer", "S_SET('seen', 6)\nyield ('k', 1)\n", name="summer",
                           session={"seen": 5}))
    error = handler_error(writer)
    assert error["type"] == "PermissionError"
    assert "handler 'summer' cannot set session key 'seen'" in error["message"]
    assert writer.session == {"seen": 5}


def test_session_refuses_what_it_cannot_store(pool):
    error = handler_error(pool.run(task("mapper", "S_SET('k', object())\nyield 1\n")))
    assert error["type"] == "CodecError" and "type object" in error["message"]
    assert f"line {HEADER_LINES + 1}" in error["traceback"]
    error = handler_error(pool.run(task("mapper", "S_SET('a/b', 1)\nyield 1\n")))
    assert "session key 'a/b' may contain only" in error["message"]


# --- output --------------------------------------------------------------------------------------

def test_output_of_print_stderr_c_level_subprocess_and_log_is_captured(pool):
    outcome = pool.run(task("mapper", """\
        import os, sys
        print('from print')
        PRINT('from PRINT')
        print('from stderr', file=sys.stderr)
        os.write(1, b'from fd 1\\n')
        RUN('echo from shell; echo shell err >&2')
        RUN(['cat'], input_data='from stdin of cat\\n')
        LOG.warning('from LOG')
        yield MrConfigureToReturn()
        """))
    assert outcome.ok, outcome.error
    assert outcome.stdout == ("from print\nfrom PRINT\nfrom fd 1\nfrom shell\n"
                              "from stdin of cat\n")
    assert outcome.stderr.startswith("from stderr\nshell err\n")
    assert re.search(r"WARNING mr\.handler\.test_handler: from LOG\n$", outcome.stderr)


def test_run_refuses_an_unexpected_exit_code(pool):
    error = handler_error(pool.run(task("mapper", "RUN('exit 3')\nyield 1\n")))
    assert error["type"] == "ValueError" and "exited with status 3, expected 0" in error["message"]
    outcome = pool.run(task("mapper", "yield MrConfigureToReturn()\n"
                                      "yield ('code', RUN('exit 3', success_code=3))\n"))
    assert outcome.pairs == [["code", 3]]


def test_concurrent_invocations_never_mix_output(pool):
    def printer(marker):
        return task("mapper", f"""\
            import sys, time
            for _ in range(20):
                print('{marker}')
                print('{marker}', file=sys.stderr)
                RUN('echo {marker}')
                time.sleep(0.005)
            yield MrConfigureToReturn()
            """)
    markers = ["first", "second"]
    runs = [gevent.spawn(pool.run, printer(marker)) for marker in markers]
    gevent.joinall(runs, raise_error=True)
    for greenlet, marker in zip(runs, markers):
        assert set(greenlet.value.stdout.split()) == {marker}
        assert greenlet.value.stdout.count(marker) == 40
        assert set(greenlet.value.stderr.split()) == {marker}
    later = pool.run(task("mapper", "yield MrConfigureToReturn()\n"))
    assert (later.stdout, later.stderr) == ("", "")


def test_a_process_writing_after_its_invocation_ended_is_heard_by_nobody_and_stops(pool):
    outcome = pool.run(task("mapper", """\
        import subprocess
        late = subprocess.Popen(['sh', '-c', 'sleep 0.3; while echo late; do :; done'])
        yield MrConfigureToReturn()
        yield ('pid', late.pid)
        """))
    later = [pool.run(task("mapper", "import time\ntime.sleep(0.1)\nyield MrConfigureToReturn()\n"))
             for _ in range(6)]
    assert wait_until_stopped(outcome.pairs[0][1])  # by EPIPE: its invocation's FIFO is closed
    assert all(run.ok and run.stdout == "" for run in later)


def test_output_is_cut_at_one_mebibyte_with_a_note(pool):
    outcome = pool.run(task("mapper", "print('x' * (3 << 20))\nyield MrConfigureToReturn()\n"))
    assert outcome.stdout.startswith("x" * (1 << 20) + "\n[mr: output truncated: 3145729 bytes")
    assert len(outcome.stdout) < (1 << 20) + 200


# --- failures ------------------------------------------------------------------------------------

def test_exception_traceback_points_at_the_handler_file_line(pool):
    error = handler_error(pool.run(task("reducer", """\
        total = 0
        for key, values in results:
            total += values
        yield ('total', total)
        """, [["a", [1]]], name="adder")))
    assert error["type"] == "TypeError"
    assert error["traceback"].startswith("Traceback (most recent call last):\n"
                                         f'  File "handler:adder", line {HEADER_LINES + 3}')
    assert "total += values" in error["traceback"]
    assert "mr/executor" not in error["traceback"]


def test_invalid_source_is_a_handler_error(pool):
    error = handler_error(pool.run(task("reducer", "yield (\n")))
    assert error["type"] == "HandlerFormatError"
    assert error["message"].startswith(f"handler:test_handler:{HEADER_LINES + 1}: ")


def test_sys_exit_fails_the_handler_not_the_child(pool):
    pids = pool.pids
    error = handler_error(pool.run(task("mapper", "import sys\nsys.exit(4)\nyield 1\n")))
    assert error["type"] == "SystemExit"
    assert pool.pids == pids


def test_timeout_kills_the_child_and_its_subprocesses_and_the_pool_lives_on(pool):
    pids = pool.pids
    started = time.monotonic()
    outcome = pool.run(task("mapper", """\
        import subprocess, time
        print('sleeper', subprocess.Popen(['sleep', '60']).pid)
        time.sleep(60)
        yield MrConfigureToReturn()
        """), timeout_s=0.5)
    assert time.monotonic() - started < 5
    error = handler_error(outcome, "timeout")
    assert "ran longer than 0.5 s" in error["message"]
    sleeper = int(re.match(r"sleeper (\d+)\n", outcome.stdout).group(1))
    assert wait_until_stopped(sleeper)
    killed = set(pids) - set(pool.pids)
    assert len(killed) == 1 and not is_running(killed.pop())
    assert len(pool.pids) == 2
    assert pool.run(task("mapper", "yield MrConfigureToReturn()\n")).ok


@pytest.mark.parametrize("body, status", [
    ("import os\nprint('last words')\nos._exit(3)\nyield 1\n", "exit status 3"),
    ("import os, signal\nprint('last words')\nos.kill(os.getpid(), signal.SIGKILL)\nyield 1\n",
     "killed by signal SIGKILL"),
])
def test_a_crashed_child_is_reported_and_replaced(pool, body, status):
    outcome = pool.run(task("mapper", body))
    error = handler_error(outcome, "crashed")
    assert error["type"] == "ExecutorChildDied"
    assert error["message"].endswith(f"running handler 'test_handler' died: {status}")
    assert outcome.stdout == "last words\n"
    assert len(pool.pids) == 2
    runs = gevent.joinall([gevent.spawn(pool.run, task("mapper", "yield MrConfigureToReturn()\n"))
                           for _ in range(2)], raise_error=True)
    assert all(run.value.ok for run in runs)


# --- concurrency and size ------------------------------------------------------------------------

def test_two_children_run_two_tasks_in_parallel(pool):
    warm_up = [gevent.spawn(pool.run, task("mapper", "yield MrConfigureToReturn()\n"))
               for _ in range(2)]
    gevent.joinall(warm_up, raise_error=True)
    sleeper = task("mapper", "import time\ntime.sleep(0.5)\nyield MrConfigureToReturn()\n")
    started = time.monotonic()
    runs = gevent.joinall([gevent.spawn(pool.run, sleeper) for _ in range(2)], raise_error=True)
    assert time.monotonic() - started < 0.9
    assert all(run.value.ok for run in runs)


def test_a_busy_handler_does_not_block_the_worker_loop(pool):
    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.01)) for _ in range(1000)])
    outcome = pool.run(task("mapper", """\
        import time
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            pass
        yield MrConfigureToReturn()
        """))
    ticker.kill()
    assert outcome.ok and len(ticks) >= 20


def test_fifty_megabytes_round_trip(pool):
    inputs = [["text", "t" * (25 << 20)], ["blob", os.urandom(25 << 20)]]
    outcome = pool.run(task("mapper", "yield MrConfigureToReturn()\nyield from arguments\n",
                            inputs))
    assert outcome.ok and outcome.pairs == inputs


def test_unencodable_task_is_refused_before_reaching_a_child(pool):
    with pytest.raises(CodecError, match="type set"):
        pool.run(task("mapper", "yield MrConfigureToReturn()\n", [["k", {1}]]))


def test_compiled_once_per_version():
    counting = """\
        global calls
        calls = globals().get('calls', 0) + 1
        yield MrConfigureToReturn()
        yield ('calls', calls)
        """
    with ExecutorPool(size=1) as single:
        runs = [single.run(task("mapper", counting)) for _ in range(2)]
        new_version = single.run(task("mapper", counting + "# changed\n"))
        back_to_first = single.run(task("mapper", counting))
    assert [run.pairs for run in runs] == [[["calls", 1]], [["calls", 2]]]
    assert new_version.pairs == [["calls", 1]]
    assert back_to_first.pairs == [["calls", 3]]


def test_tracebacks_quote_the_version_that_ran():
    first = task("reducer", "raise ValueError('first')\n", name="versioned")
    second = task("reducer", "# another version\nraise ValueError('second')\n", name="versioned")
    with ExecutorPool(size=1) as single:
        outcomes = [single.run(version) for version in (first, second, first)]
    assert "raise ValueError('first')" in outcomes[2].error["traceback"]


def test_default_size_is_one_child_per_core():
    with ExecutorPool() as default_pool:
        assert default_pool.size == os.cpu_count() == len(default_pool.pids)
    with pytest.raises(ValueError, match="at least one child"):
        ExecutorPool(size=0)


def test_close_leaves_no_child_or_subprocess_behind():
    executor_pool = ExecutorPool(size=2)
    background = executor_pool.run(task("mapper", """\
        import subprocess
        yield MrConfigureToReturn()
        yield ('pid', subprocess.Popen(['sleep', '60']).pid)
        """))
    pids = executor_pool.pids + [background.pairs[0][1]]
    busy = gevent.spawn(executor_pool.run,
                        task("mapper", "import time\ntime.sleep(60)\nyield 1\n"))
    gevent.sleep(0.3)
    executor_pool.close()
    assert all(not is_running(pid) for pid in pids[:2])
    assert wait_until_stopped(pids[2])
    assert handler_error(busy.get(timeout=5), "crashed")
    assert executor_pool.pids == []
    with pytest.raises(RuntimeError, match="closed"):
        executor_pool.run(task("mapper", "yield 1\n"))


def test_idle_children_exit_on_hang_up_without_being_killed():
    executor_pool = ExecutorPool(size=2)
    assert executor_pool.run(task("mapper", "yield MrConfigureToReturn()\n")).ok
    children = list(executor_pool._children)
    started = time.monotonic()
    executor_pool.close(grace_s=30)
    assert time.monotonic() - started < 10
    assert [child.process.returncode for child in children] == [0, 0]


def test_a_cancelled_run_kills_its_child_and_the_pool_lives_on(pool):
    pids = pool.pids
    run = gevent.spawn(pool.run, task("mapper", "import time\ntime.sleep(60)\nyield 1\n"))
    gevent.sleep(0.3)
    run.kill()
    replaced = set(pids) - set(pool.pids)
    assert len(replaced) == 1 and not is_running(replaced.pop())
    assert len(pool.pids) == 2 and pool.run(task("mapper", "yield MrConfigureToReturn()\n")).ok


# --- the wordcount example -----------------------------------------------------------------------

def example(name: str, handler_type: str, inputs, **fields) -> Task:
    source = (EXAMPLES / "wordcount" / f"{name}.py").read_text()
    return Task(workflow="wordcount", handler_name=f"wordcount_{name}", handler_version="1",
                source_type="python", source_code=source, handler_type=handler_type,
                inputs=inputs, **fields)


def grouped(pairs) -> list:
    groups = defaultdict(list)
    for key, value in pairs:
        groups[key].append(value)
    return [[key, values] for key, values in sorted(groups.items())]


def test_wordcount_example_handlers(pool):
    documents = [["one", "The cat; the hat."], ["two", "A cat!"]]
    branch = pool.run(example("map", "mapper", documents))
    assert branch.directive == {"kind": "map", "step": "count"}
    reduced = []
    for document in branch.pairs:
        leaf = pool.run(example("count_map", "mapper", [document]))
        assert leaf.directive == {"kind": "return"}
        reduced += pool.run(example("count_reduce", "reducer", grouped(leaf.pairs))).pairs
    total = pool.run(example("sum_reduce", "reducer", grouped(reduced)))
    assert sorted(total.pairs) == [["a", 1], ["cat", 2], ["hat", 1], ["the", 2]]


def test_a_waiting_caller_gets_the_next_free_child_first_come_first_served():
    """A caller that returns a child and asks again at once queues behind those waiting."""
    finished = []

    def busy_caller():
        for number in range(3):
            single.run(task("reducer", "import time\ntime.sleep(0.1)\nreturn []"))
            finished.append(f"busy {number}")

    def waiting_caller():
        single.run(task("reducer", "return []"))
        finished.append("waiting")

    with ExecutorPool(size=1, default_timeout_s=30) as single:
        busy = gevent.spawn(busy_caller)
        gevent.sleep(0.05)  # the busy caller holds the only child
        gevent.joinall([busy, gevent.spawn(waiting_caller)], raise_error=True)
    assert finished == ["busy 0", "waiting", "busy 1", "busy 2"]
