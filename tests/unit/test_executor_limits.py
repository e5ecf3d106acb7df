"""Pathological handlers are contained: each fails its own invocation with an error naming the
limit it reached, and the pool and its other invocations carry on."""
import os
import re
import time
from pathlib import Path

import gevent
import pytest

from mr.executor import ExecutorPool, Task
from mr.executor.protocol import ERROR_LIMIT_BYTES, bounded_error
from mr.settings import Settings
from tests.unit.executor_helpers import (HEADER_LINES, handler_error, is_running, task,
                                         wait_until_stopped)

MEMORY_LIMIT_MB = 200
MAX_OUTPUT_MB = 16
TIMEOUT_S = 1.0
MEMORY_MESSAGE = ("handler 'hog' ran out of memory: an executor child may allocate at most "
                  f"{MEMORY_LIMIT_MB} MiB (MR_EXECUTOR_MEMORY_MB)")
OUTPUT_MESSAGE = re.compile(
    rf"handler 'printer' wrote more than {MAX_OUTPUT_MB} MiB to stdout and stderr, the most one "
    r"invocation may write \(MR_EXECUTOR_MAX_OUTPUT_MB\); its executor child \(pid \d+\) was "
    r"killed")
NODE_MAPPER = Path(__file__).parents[2] / "handlers" / "wordcount" / "count_map_node.js"

HEALTHY = "yield MrConfigureToReturn()\nyield ('healthy', sum(v for _, v in arguments))\n"
ALLOCATES_BLOCKS = "hog = []\nwhile True:\n    hog.append(bytearray(1 << 20))\nyield 1\n"
ALLOCATES_SMALL_OBJECTS_IN_A_GLOBAL = """\
    global hog
    hog = []
    while True:
        hog.append(str(len(hog)) * 3)
    yield 1
    """
PRINTS_FOREVER = "while True:\n    print('x' * 1000)\nyield 1\n"
LOOPS_FOREVER = "while True:\n    pass\nyield 1\n"


def limited_pool(size: int) -> ExecutorPool:
    """Only the handlers that loop forever get TIMEOUT_S: a child just started may take longer
    than that to import what it needs on a loaded machine."""
    return ExecutorPool(size=size, default_timeout_s=30, memory_limit_mb=MEMORY_LIMIT_MB,
                        max_output_mb=MAX_OUTPUT_MB)


@pytest.fixture(scope="module")
def pool():
    with limited_pool(2) as executor_pool:
        yield executor_pool


def assert_serves(executor_pool: ExecutorPool) -> None:
    """Every child of the pool runs a healthy invocation, all at once."""
    assert len(executor_pool.pids) == executor_pool.size
    runs = gevent.joinall([gevent.spawn(executor_pool.run, task("mapper", HEALTHY, [["a", 2]]))
                           for _ in range(executor_pool.size)], raise_error=True)
    assert [run.value.pairs for run in runs] == [[["healthy", 2]]] * executor_pool.size


def replaced_child(pids_before: list[int], executor_pool: ExecutorPool) -> int:
    """The one child that is gone since ``pids_before``, checked to be stopped."""
    (gone,) = set(pids_before) - set(executor_pool.pids)
    assert not is_running(gone)
    return gone


# --- memory --------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, line", [(ALLOCATES_BLOCKS, 3),
                                        (ALLOCATES_SMALL_OBJECTS_IN_A_GLOBAL, 4)],
                         ids=["blocks", "small objects in a global"])
def test_a_handler_allocating_without_bound_fails_naming_the_limit_and_its_child_is_replaced(
        pool, body, line):
    pids = pool.pids
    outcome = pool.run(task("mapper", body, name="hog"))
    error = handler_error(outcome, "memory")
    assert (error["type"], error["message"]) == ("HandlerMemoryExceeded", MEMORY_MESSAGE)
    assert f'File "handler:hog", line {HEADER_LINES + line}' in error["traceback"]
    assert error["traceback"].endswith("\nMemoryError\n")
    replaced_child(pids, pool)
    assert_serves(pool)


def test_a_reply_too_large_for_the_limit_is_a_memory_error(pool):
    pids = pool.pids
    outcome = pool.run(task("mapper", "yield MrConfigureToReturn()\n"
                                      "yield ('k', b'x' * (120 << 20))\n", name="hog"))
    error = handler_error(outcome, "memory")
    assert (error["message"], error["traceback"]) == (MEMORY_MESSAGE, "")
    replaced_child(pids, pool)


def test_a_child_that_cannot_even_report_its_memory_error_exits_and_the_pool_reports_it(pool):
    pids = pool.pids
    outcome = pool.run(task("mapper", """\
        import traceback

        def no_memory_left(*args, **kwargs):
            raise MemoryError

        traceback.format_exception = no_memory_left
        raise MemoryError
        yield 1
        """, name="hog"))
    assert handler_error(outcome, "memory")["message"] == MEMORY_MESSAGE
    replaced_child(pids, pool)
    assert_serves(pool)


def test_the_limit_holds_for_the_child_and_the_processes_it_starts(pool):
    outcome = pool.run(task("mapper", f"""\
        import sys
        RUN([sys.executable, '-c', 'bytearray({MEMORY_LIMIT_MB + 50} << 20)'])
        yield 1
        """))
    error = handler_error(outcome)
    assert "exited with status 1, expected 0" in error["message"]
    assert outcome.stderr.rstrip().endswith("MemoryError")
    limit = pool.run(task("mapper", """\
        import resource
        yield MrConfigureToReturn()
        yield ('limit', resource.getrlimit(resource.RLIMIT_DATA))
        try:
            resource.setrlimit(resource.RLIMIT_DATA, (resource.RLIM_INFINITY,) * 2)
        except ValueError:
            yield ('raised', False)
        """))
    assert limit.pairs == [["limit", [MEMORY_LIMIT_MB << 20] * 2], ["raised", False]]


def test_runtimes_that_reserve_address_space_start_under_the_limit(pool):
    """node reserves far more address space than 200 MiB: RLIMIT_AS would stop it at start."""
    outcome = pool.run(Task(workflow="wordcount", handler_name="count_map_node",
                            handler_version="1", source_type="exec",
                            source_code=NODE_MAPPER.read_text(), handler_type="mapper",
                            inputs=[["doc", "a b a"]]))
    assert outcome.ok, outcome
    assert sorted(outcome.pairs) == [["a", 1], ["a", 1], ["b", 1]]


def test_limits_come_from_the_settings_and_default_to_a_share_of_the_machine():
    settings = Settings.load({"MR_EXECUTOR_MEMORY_MB": "300", "MR_EXECUTOR_MAX_OUTPUT_MB": "5"})
    probe = task("mapper", "import resource\nyield MrConfigureToReturn()\n"
                           "yield ('limit', resource.getrlimit(resource.RLIMIT_DATA)[0] >> 20)\n")
    with ExecutorPool.from_settings(settings, size=1) as configured:
        assert (configured.memory_limit_mb, configured.max_output_mb) == (300, 5)
        assert configured.run(probe).pairs == [["limit", 300]]
    with ExecutorPool.from_settings(Settings.load({}), size=3) as automatic:
        assert automatic.max_output_mb == 64
        machine_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20
        assert 0 < automatic.memory_limit_mb * 4 <= machine_mb
        assert automatic.run(probe).pairs == [["limit", automatic.memory_limit_mb]]


# --- output --------------------------------------------------------------------------------------

def test_a_ten_megabyte_print_succeeds_cut_with_a_note_and_leaves_no_file(pool):
    outcome = pool.run(task("mapper", "print('x' * (10 << 20))\nyield MrConfigureToReturn()\n"))
    assert outcome.ok, outcome.error
    assert outcome.stdout == ("x" * (1 << 20) + "\n[mr: output truncated: 10485761 bytes "
                              "written, the first 1048576 kept]\n")
    assert os.listdir(pool._output_dir) == []


@pytest.mark.parametrize("body, stream", [
    (PRINTS_FOREVER, "stdout"),
    ("import sys\nwhile True:\n    sys.stderr.write('e' * 4096)\nyield 1\n", "stderr"),
    ("import os\nos.write(1, b'x' * (17 << 20))\nyield MrConfigureToReturn()\n", "stdout"),
], ids=["prints forever", "writes to stderr forever", "writes 17 MiB at once"])
def test_a_handler_writing_past_the_cap_is_stopped_with_its_output_cut(pool, body, stream):
    pids = pool.pids
    outcome = pool.run(task("mapper", body, name="printer"))
    error = handler_error(outcome, "output")
    assert error["type"] == "HandlerOutputExceeded"
    assert OUTPUT_MESSAGE.fullmatch(error["message"])
    kept = getattr(outcome, stream)
    assert len(kept) < (1 << 20) + 100
    assert re.search(r"\n\[mr: output truncated: \d+ bytes written, the first 1048576 kept\]\n$",
                     kept)
    replaced_child(pids, pool)
    assert os.listdir(pool._output_dir) == []


def test_a_subprocess_writing_forever_is_stopped_with_its_handler(pool):
    outcome = pool.run(task("mapper", """\
        import subprocess, sys
        writer = subprocess.Popen(['yes'])
        print(writer.pid, file=sys.stderr)
        writer.wait()
        yield 1
        """, name="printer"))
    assert OUTPUT_MESSAGE.fullmatch(handler_error(outcome, "output")["message"])
    assert outcome.stdout.startswith("y\ny\n")
    assert wait_until_stopped(int(outcome.stderr))


# --- time ----------------------------------------------------------------------------------------

def timed_run(executor_pool: ExecutorPool, handler: Task, **options) -> tuple:
    started = time.monotonic()
    outcome = executor_pool.run(handler, **options)
    return outcome, time.monotonic() - started


def test_a_handler_looping_forever_fails_within_a_second_of_its_timeout_beside_a_healthy_one(
        pool):
    looping = gevent.spawn(timed_run, pool, task("mapper", LOOPS_FOREVER, name="spinner"),
                           timeout_s=TIMEOUT_S)
    healthy = gevent.spawn(pool.run, task("mapper", "import time\ntime.sleep(1.5)\n" + HEALTHY,
                                          [["a", 1]]))
    outcome, elapsed = looping.get()
    error = handler_error(outcome, "timeout")
    assert error["type"] == "HandlerTimeout"
    assert re.fullmatch(r"handler 'spinner' ran longer than 1 s; its executor child \(pid \d+\) "
                        r"was killed", error["message"])
    assert TIMEOUT_S <= elapsed < TIMEOUT_S + 1
    assert healthy.get().pairs == [["healthy", 1]]
    assert_serves(pool)


# --- all at once ---------------------------------------------------------------------------------

def test_every_pathological_handler_fails_alone_while_a_healthy_invocation_carries_on():
    pathological = {  # kind: the handler, and the start of its error message
        "handler": (task("mapper", "raise ValueError('broken')\nyield 1\n"), "broken"),
        "timeout": (task("mapper", LOOPS_FOREVER, name="spinner"), "handler 'spinner' ran"),
        "memory": (task("mapper", ALLOCATES_BLOCKS, name="hog"), MEMORY_MESSAGE),
        "output": (task("mapper", PRINTS_FOREVER, name="printer"), "handler 'printer' wrote"),
    }
    healthy = task("mapper", "import time\nprint('working')\ntime.sleep(1.5)\n" + HEALTHY,
                   [["a", 1], ["b", 2]])
    with limited_pool(len(pathological) + 1) as executor_pool:
        pids = executor_pool.pids
        runs = {kind: gevent.spawn(executor_pool.run, handler,
                                   timeout_s=TIMEOUT_S if kind == "timeout" else None)
                for kind, (handler, _) in pathological.items()}
        carrying_on = gevent.spawn(executor_pool.run, healthy)
        gevent.joinall([*runs.values(), carrying_on], raise_error=True)
        for kind, run in runs.items():
            assert handler_error(run.value, kind)["message"].startswith(pathological[kind][1])
        assert carrying_on.value.ok and carrying_on.value.pairs == [["healthy", 3]]
        assert carrying_on.value.stdout == "working\n"
        assert len(set(pids) - set(executor_pool.pids)) == 3  # all but the raiser's replaced
        assert_serves(executor_pool)


# --- bounded errors ------------------------------------------------------------------------------

def text_bytes(error: dict) -> int:
    return sum(len(value.encode()) for value in error.values() if isinstance(value, str))


def test_bounded_error_keeps_short_values_and_shares_the_rest():
    error = {"type": "ValueError", "kind": "handler", "message": "m" * 1000,
             "traceback": "t" * 100_000, "stdout": "o" * 100_000, "attempts": 3}
    bounded = bounded_error(error, 10_000)
    assert {key: bounded[key] for key in ("type", "kind", "message", "attempts")} == {
        key: error[key] for key in ("type", "kind", "message", "attempts")}
    for key in ("traceback", "stdout"):
        kept, note = bounded[key].split("\n", 1)
        assert set(kept) == {error[key][0]} and len(kept) > 4000
        assert note == f"[mr: truncated: 100000 bytes, the first {len(kept)} kept]"
    assert text_bytes(bounded) <= 10_000
    assert error["stdout"] == "o" * 100_000  # a copy is cut, not the error
    assert bounded_error(bounded, 10_000) == bounded


def test_bounded_error_counts_bytes_and_never_splits_a_character():
    bounded = bounded_error({"message": "é" * 10_000}, 1000)
    kept, note = bounded["message"].split("\n", 1)
    assert set(kept) == {"é"} and len(kept.encode()) <= 1000
    assert note == f"[mr: truncated: 20000 bytes, the first {len(kept.encode())} kept]"


def test_an_exception_message_of_fifty_megabytes_is_cut():
    """Run with the default memory limit: formatting a 50 MB traceback takes a few copies."""
    with ExecutorPool(size=1) as roomy:
        error = handler_error(roomy.run(task("mapper", "raise ValueError('m' * (50 << 20))\n"
                                                       "yield 1\n")))
    assert error["message"].startswith("mmm")
    assert error["message"].endswith(" bytes, the first "
                                     f"{len(error['message'].split(chr(10))[0])} kept]")
    assert "[mr: truncated: 52428800 bytes" in error["message"]
    assert error["traceback"].startswith('Traceback (most recent call last):\n  File "handler:')
    assert "[mr: truncated: " in error["traceback"]
    assert text_bytes(error) <= ERROR_LIMIT_BYTES
