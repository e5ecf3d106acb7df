"""``mr submit`` and ``mr request wait|cancel`` against a real ``mr run`` (embedded mode) of the
word count and the fault suite's jobs, as a user runs them: subprocesses, the front end named
by ``MR_URL``."""
import io
import json
import re
import signal
import subprocess
import sys
import time

import pytest

from mr.cli.progress import BAR_WIDTH, ProgressLine, describe
from mr.cli.submit import _argument
from mr.client import Client
from tests.cli.conftest import REPOSITORY, WORDCOUNT, Mr, environment_without_settings
from tests.pipeline.conftest import EXAMPLE
from tests.pipeline.test_client import scripted  # noqa: F401 (a fixture)

FAULTS = REPOSITORY / "tests" / "faults" / "workflow"
REQUEST_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def served():
    """The front end of one ``mr run`` for the module's tests: its URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "mr.cli.main", "run", str(WORDCOUNT), str(FAULTS), "--port", "0"],
        cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**environment_without_settings(), "MR_EXECUTOR_PROCESSES": "2"})
    try:
        yield next(line for line in server.stdout if "listening on" in line).split()[4]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture
def mr(served):
    return Mr({**environment_without_settings(), "MR_URL": served})


def pairs(stdout: str) -> list:
    return [json.loads(line) for line in stdout.splitlines()]


def test_submit_waits_and_prints_the_result_pairs_as_json_lines(mr):
    finished = mr.run("submit", "wordcount", "wordcount", "--arg", "a=the cat",
                      "--arg", "b=the hat")
    assert (finished.returncode, finished.stderr) == (0, "")
    assert finished.stdout == '["cat", 1]\n["hat", 1]\n["the", 2]\n'


def test_arguments_come_from_a_file_and_each_arg_overrides_it(mr, tmp_path):
    (tmp_path / "args.json").write_text(json.dumps({"a": "one two", "b": "two"}))
    stdout = mr.ok("submit", "wordcount", "wordcount", "--args", str(tmp_path / "args.json"),
                   "--arg", "b=three")
    assert pairs(stdout) == [["one", 1], ["three", 1], ["two", 1]]
    from_stdin = mr.ok("submit", "wordcount", "wordcount", "--args", "-",
                       stdin='{"a": "x x"}')
    assert pairs(from_stdin) == [["x", 2]]


def test_an_arg_value_is_json_when_it_is_json(mr):
    # the mapper makes one child per number up to n: a string would fail it
    assert pairs(mr.ok("submit", "faults", "many", "--arg", "n=3")) == [["count", 3],
                                                                          ["sum", 3]]


@pytest.mark.parametrize("text, parsed", [
    ("n=3", ("n", 3)), ("s=hello", ("s", "hello")), ('q="3"', ("q", "3")),
    ("l=[1, 2]", ("l", [1, 2])), ('o={"a": null}', ("o", {"a": None})),
    ("t=true", ("t", True)), ("e=", ("e", "")), ("k=a=b", ("k", "a=b")),
    ("x=NaN", ("x", "NaN")), ("y=-Infinity", ("y", "-Infinity")),
])
def test_arg_parsing(text, parsed):
    assert _argument(text) == parsed


def test_a_failed_request_prints_its_error_on_stderr_and_exits_1(mr):
    finished = mr.run("submit", "faults", "explode", "--arg", "a=1", "--arg", "b=2")
    assert finished.returncode == 1 and finished.stdout == ""
    lines = finished.stderr.splitlines()
    assert re.fullmatch(r"mr: request [0-9a-f]{32} failed: RuntimeError: boom: 2 keys", lines[0])
    assert re.fullmatch(r"kind: handler \(handler explode, invocation [0-9a-f]{32}\)", lines[1])
    assert lines[2] == "Traceback (most recent call last):"
    assert "raise RuntimeError('boom: %d keys' % len(results))" in finished.stderr
    assert lines[-2:] == ["stdout of the handler:", "exploding now"]


def test_no_wait_prints_the_request_id_and_its_status_url_and_wait_prints_the_result(
        mr, served):
    request_id, status_url = mr.ok("submit", "faults", "many", "--arg", "n=2",
                                   "--no-wait").splitlines()
    assert REQUEST_ID.fullmatch(request_id)
    assert status_url == f"{served}/request/faults/{request_id}"
    assert pairs(mr.ok("request", "wait", "faults", request_id)) == [["count", 2], ["sum", 1]]
    finished = mr.run("request", "cancel", "faults", request_id)
    assert finished.returncode == 1
    assert finished.stderr == (f"mr: request {request_id} had finished (done) before it could "
                               f"be cancelled\n")


def test_wait_gives_up_at_its_timeout_and_cancel_stops_the_request(mr):
    request_id = mr.ok("submit", "faults", "spin", "--arg", "a=1", "--no-wait").split()[0]
    try:
        timed_out = mr.run("request", "wait", "faults", request_id, "--timeout", "0.5")
        assert timed_out.returncode == 124 and timed_out.stdout == ""
        assert timed_out.stderr.endswith(
            f"did not finish within 0.5 s; it keeps running: follow it with: "
            f"mr request wait faults {request_id}\n")
    finally:
        cancelled = mr.run("request", "cancel", "faults", request_id)
    assert (cancelled.returncode, cancelled.stdout) == (0, f"request {request_id} cancelled\n")
    waited = mr.run("request", "wait", "faults", request_id)
    assert (waited.returncode, waited.stderr) == (1, f"mr: request {request_id} was "
                                                     f"cancelled\n")


def test_ctrl_c_stops_waiting_and_says_how_to_follow_the_request(mr):
    waiting = subprocess.Popen(
        [sys.executable, "-m", "mr.cli.main", "submit", "faults", "spin", "--arg", "a=1",
         "--progress"], cwd=REPOSITORY, env=mr.env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = waiting.stderr.readline()  # the request is accepted and followed
    request_id = REQUEST_ID.search(first).group()
    try:
        waiting.send_signal(signal.SIGINT)
        stdout, stderr = waiting.communicate(timeout=30)
    finally:
        mr.ok("request", "cancel", "faults", request_id)
    assert waiting.returncode == 130 and stdout == ""
    assert stderr == (f"mr: stopped waiting; request {request_id} keeps running: follow it "
                      f"with: mr request wait faults {request_id}\n")


def test_progress_shows_each_state_with_the_elapsed_time_on_stderr(mr):
    finished = mr.run("submit", "faults", "many", "--arg", "n=4", "--progress")
    assert finished.returncode == 0
    assert pairs(finished.stdout) == [["count", 4], ["sum", 6]]
    lines = finished.stderr.splitlines()
    request_id = REQUEST_ID.search(lines[0]).group()
    for line in lines:
        assert re.fullmatch(rf"request {request_id} (pending|running|done) \d+\.\d s"
                            rf"( \[[#.]+\] \d+/\d+ invocations)?", line)  # running: counts
    assert lines[-1].split()[2] == "done" and len(set(lines)) == len(lines)


def test_progress_shows_invocation_counts_only_when_the_status_has_them():
    status = {"request_id": "r1", "state": "running", "created_at": 100.0, "finished_at": None}
    assert describe(status, now=112.34) == "request r1 running 12.3 s"
    counted = {**status, "progress": {"done": 5, "known": 20}}
    bar = "#" * (BAR_WIDTH // 4) + "." * (BAR_WIDTH - BAR_WIDTH // 4)
    assert describe(counted, now=112.34) == f"request r1 running 12.3 s [{bar}] 5/20 invocations"
    finished = {**status, "state": "done", "finished_at": 101.5}
    assert describe(finished, now=500.0) == "request r1 done 1.5 s"


def test_progress_rewrites_one_line_in_place_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    running = {"request_id": "r1", "state": "running", "created_at": time.time(),
               "finished_at": None}
    with ProgressLine(terminal) as line:
        line.show(running)
        line.show({**running, "state": "done", "finished_at": running["created_at"] + 2})
    first, second = terminal.getvalue().removesuffix("\n").split("\r")[1:]
    assert first == "request r1 running 0.0 s"
    assert second == "request r1 done 2.0 s   "  # padded over the longer line before it
    assert "\n" not in terminal.getvalue()[:-1]


def test_a_deadline_fails_the_request_outside_any_handler(mr):
    finished = mr.run("submit", "faults", "spin", "--arg", "a=1", "--deadline-s", "0.5")
    assert finished.returncode == 1
    first, where = finished.stderr.splitlines()[:2]
    assert re.fullmatch(r"mr: request [0-9a-f]{32} failed: DeadlineExceeded: .*", first)
    assert where.startswith("kind: engine")


def test_input_and_output_by_reference_print_the_parts(mr, tmp_path):
    (tmp_path / "book.txt").write_text("the cat\nthe hat\n")
    output = tmp_path / "counts"
    stdout = mr.ok("submit", "wordcount", "wordcount_files", "--input", str(tmp_path / "book.txt"),
                   "--input-format", "text", "--output", str(output), "--output-format", "jsonl")
    parts = stdout.splitlines()
    assert len(parts) == 4 and all(part.endswith(f"counts/part-0000{number}")
                                   for number, part in enumerate(parts))
    counted = [json.loads(line) for part in sorted(output.glob("part-*"))
               for line in part.read_text().splitlines()]
    assert sorted(counted) == [["cat", 1], ["hat", 1], ["the", 2]]


@pytest.mark.parametrize("arguments, message", [
    (["submit", "faults", "nojob"], "NotFound: job 'nojob' of workflow 'faults' does not exist"),
    (["submit", "wordcount", "wordcount", "--arg", "a=x", "--input", "/tmp/x"],
     "ValidationError: "),
    (["submit", "wordcount", "wordcount", "--output-format", "jsonl"],
     "--output-format needs --output"),
    (["submit", "wordcount", "wordcount", "--url", "http://127.0.0.1:1"],
     "cannot reach mr at http://127.0.0.1:1: "),
    (["request", "wait", "faults", "0" * 32],
     f"NotFound: request '{'0' * 32}' of workflow 'faults' does not exist"),
    (["request", "cancel", "faults", "0" * 32],
     f"NotFound: request '{'0' * 32}' of workflow 'faults' does not exist"),
])
def test_user_errors_are_one_line(mr, tmp_path, arguments, message):
    assert mr.fails(*arguments).startswith(message)


def test_an_args_file_that_is_not_an_object_is_refused(mr, tmp_path):
    (tmp_path / "args.json").write_text("[1, 2]")
    assert mr.fails("submit", "wordcount", "wordcount", "--args", str(tmp_path / "args.json")) \
        == f"{tmp_path / 'args.json'} must hold a JSON object of arguments, not list"


def test_the_url_and_token_settings_reach_submit_and_pipeline_run(scripted):
    server = scripted((202, {"request_id": "a" * 32, "status_url": "/request/w/" + "a" * 32}),
                      (404, {"error": {"type": "NotFound", "message": "no job"}}))
    settings = Mr({**environment_without_settings(), "MR_URL": server.url, "MR_TOKEN": "s3cret"})
    assert settings.ok("submit", "w", "j", "--no-wait").splitlines() == [
        "a" * 32, f"{server.url}/request/w/{'a' * 32}"]
    assert "no job" in settings.fails("pipeline", "run", str(EXAMPLE / "pipeline.yaml"))
    assert [call[1] for call in server.calls] == ["/job/w/j?blocking=false",
                                                  "/job/texts/count_words/definition"]
    assert {call[2]["Authorization"] for call in server.calls} == {"Bearer s3cret"}


def test_the_client_shows_every_status_it_reads_while_waiting(scripted):
    statuses = [{"request_id": "r1", "state": "pending"}, {"request_id": "r1", "state": "running"},
                {"request_id": "r1", "state": "done", "result": {"pairs": []}}]
    server = scripted(*[(200, status) for status in statuses])
    seen = []
    assert Client(server.url).wait("w", "r1", on_status=seen.append) == statuses[-1]
    assert seen == statuses
