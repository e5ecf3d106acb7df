"""Exec handlers: their file format, and the exec protocol as executor children speak it."""
import sys
import time
from pathlib import Path

import pytest

from mr.executor import ExecutorPool, Task
from mr.handlers.format import HandlerFormatError, parse_handler_source, source_type_of
from tests.unit.executor_helpers import (exec_source, handler_error, is_running, task,
                                         wait_until_stopped)

WORDCOUNT = Path(__file__).parents[2] / "handlers" / "wordcount"
NODE_MAPPER = WORDCOUNT / "count_map_node.js"

# --- the file format -----------------------------------------------------------------------------


def test_the_node_example_declares_its_metadata_in_its_header_comment():
    source = parse_handler_source(NODE_MAPPER.read_text(), NODE_MAPPER.name, "exec")
    assert source.description.startswith("Count the words of one document in JavaScript")
    assert "never data." in source.description and "**" not in source.description
    assert (source.argument_spec, source.handler_type, source.required_capability,
            source.source_type) == ([["arguments", "list"]], "mapper", "general", "exec")


def test_a_shell_header_with_json_metadata():
    text = ('#!/bin/sh\n# Sums.\n# **json\n# {"argument_spec": [{"name": "results", "type": null}],'
            '\n#  "handler_type": "reducer", "required_capability": "GPU"}\necho\n')
    source = parse_handler_source(text, "sum.sh", "exec")
    assert (source.description, source.handler_type, source.required_capability) == (
        "Sums.", "reducer", "gpu")
    assert source.source_code == text


@pytest.mark.parametrize("text, line, reason", [
    ("# no interpreter\n", 1, "an exec handler must start with a '#!' line"),
    ("#!/bin/sh\necho hi\n", 2, "must follow its '#!' line, as comment lines starting with one "
                                "of // -- # ; %"),
    ("#!/bin/sh\n# Only a description.\necho hi\n", 2, "the header comment has no '**' line"),
    (exec_source("mapper", "").replace("handler_type: mapper", "handler_type: mapr"), 5,
     "handler_type must be one of mapper, combiner, reducer, partitioner, got 'mapr'"),
    (exec_source("mapper", "").replace("# required_capability: none\n", "required: x\n"), 3,
     "missing metadata key 'required_capability'"),
])
def test_format_errors_say_file_line_and_reason(text, line, reason):
    with pytest.raises(HandlerFormatError) as caught:
        parse_handler_source(text, "handlers/x.sh", "exec")
    assert (caught.value.line, reason in caught.value.reason) == (line, True), caught.value


@pytest.mark.parametrize("filename, text, source_type", [
    ("count.py", "#!/usr/bin/env python3\n", "python"),
    ("count.js", "#!/usr/bin/env node\n", "exec"),
    ("count", "#!/bin/sh\n", "exec"),
    ("README.md", "# Handlers\n", None),
])
def test_source_type_of_a_file(filename, text, source_type):
    assert source_type_of(filename, text) == source_type


# --- running -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pool():
    with ExecutorPool(size=2, default_timeout_s=30) as executor_pool:
        yield executor_pool


def exec_task(handler_type: str, script: str, inputs=(), **fields) -> Task:
    return task(handler_type, script, inputs, source_type="exec", **fields)


def python_task(handler_type: str, script: str, inputs=(), **fields) -> Task:
    """An exec handler written in Python: ``receive()`` reads the input message, ``send(*items)``
    writes one output line."""
    prelude = ("import json, os\n"
               "out = os.fdopen(int(os.environ['MR_OUTPUT_FD']), 'w')\n"
               "def receive():\n"
               "    return json.load(os.fdopen(int(os.environ['MR_INPUT_FD'])))\n"
               "def send(*items):\n"
               "    out.write(json.dumps(items) + '\\n')\n")
    return exec_task(handler_type, prelude + script, inputs, interpreter=sys.executable, **fields)


def test_the_input_message_holds_everything_the_handler_needs(pool):
    mapper = pool.run(python_task("mapper", "send('return')\nsend('pair', 'input', receive())\n",
                                  [["a", "x"]], name="echo", session={"seen": 1}))
    assert mapper.ok, mapper.error
    received = mapper.pairs[0][1]
    assert received == {"protocol": 1, "workflow": "test_workflow", "handler": "echo",
                        "handler_type": "mapper", "version": received["version"],
                        "arguments": [["a", "x"]], "session": {"seen": 1},
                        "session_writable": True}
    reducer = pool.run(python_task("reducer", "send('pair', 'input', receive())\n",
                                   [["k", [1]]]))
    assert reducer.pairs[0][1]["results"] == [["k", [1]]]
    assert reducer.pairs[0][1]["session_writable"] is False


def test_what_the_handler_prints_is_captured_never_data(pool):
    outcome = pool.run(exec_task("mapper", """\
        echo '["pair", "fake", 1]'
        echo 'working' >&2
        cat <&"$MR_INPUT_FD" >/dev/null
        printf '["return"]\\n\\n["pair", "real", [1, "\u00e9"]]\\n' >&"$MR_OUTPUT_FD"
        """, interpreter="/bin/bash"))
    assert outcome.ok, outcome.error
    assert (outcome.directive, outcome.pairs) == ({"kind": "return"}, [["real", [1, "é"]]])
    assert (outcome.stdout, outcome.stderr) == ('["pair", "fake", 1]\n', "working\n")


def test_branching_and_session_writes(pool):
    outcome = pool.run(python_task("mapper", """\
message = receive()
send('session', 'seen', message['session']['seen'] + 1)
send('map', 'count')
for name, text in message['arguments']:
    send('pair', name, text)
""", [["a", "x"], ["b", "y"]], session={"seen": 1}))
    assert outcome.directive == {"kind": "map", "step": "count"}
    assert (outcome.pairs, outcome.session) == ([["a", "x"], ["b", "y"]], {"seen": 2})


@pytest.mark.parametrize("handler_type, script, error_type, message", [
    ("mapper", "out.write('not json\\n')", "HandlerProtocolError",
     "wrote b'not json\\n' as line 1 of MR_OUTPUT_FD; each message is one line of JSON: "
     '["map", step], ["return"], ["pair", key, value] or ["session", key, value]'),
    ("mapper", "send('return')\nsend('shout', 1)", "HandlerProtocolError",
     "wrote b'[\"shout\", 1]\\n' as line 2 of MR_OUTPUT_FD"),
    ("mapper", "send('return')\nsend('pair', 'k')", "HandlerProtocolError", "as line 2 of"),
    ("mapper", "send('pair', 'k', 1)", "HandlerProtocolError",
     "yielded ['k', 1] first; its first item must be MrConfigureToMap(step)"),
    ("mapper", "send('map', 'no such/step')", "InvalidNameError",
     "step name 'no such/step' may contain only"),
    ("reducer", "send('return')", "HandlerProtocolError",
     "produced MrConfigureToReturn() (a MrConfigureToReturn) as item 1; every item must be a "
     "(key, value) pair"),
    ("reducer", "send('session', 'k', 1)", "PermissionError",
     "a reducer's session is read-only"),
    ("mapper", "send('session', 'a/b', 1)", "InvalidNameError", "session key 'a/b' may contain"),
])
def test_protocol_violations_are_handler_errors(pool, handler_type, script, error_type, message):
    error = handler_error(pool.run(python_task(handler_type, script, name="h")))
    assert error["type"] == error_type and message in error["message"], error


@pytest.mark.parametrize("script, message", [
    ("echo 'last words'\nexit 3\n", "exec handler 'h' exited with status 3"),
    ("echo 'last words'\nkill -9 $$\n", "exec handler 'h' was killed by signal SIGKILL"),
])
def test_an_unsuccessful_exit_fails_the_handler_with_its_output(pool, script, message):
    outcome = pool.run(exec_task("mapper", "printf '[\"return\"]\\n' >&\"$MR_OUTPUT_FD\"\n"
                                 + script, name="h", interpreter="/bin/bash"))
    error = handler_error(outcome)
    assert (error["type"], error["message"]) == ("ExecHandlerError", message)
    assert outcome.stdout == "last words\n"


def test_large_input_and_output_cannot_deadlock(pool):
    inputs = [[str(number), "w" * 100] for number in range(40_000)]  # about 4 MB each way
    outcome = pool.run(python_task("reducer", """\
for number in range(40_000):  # all of the output before reading any input
    send('pair', str(number), 'v' * 100)
send('pair', 'inputs', len(receive()['results']))
""", inputs))
    assert outcome.ok, outcome.error
    assert len(outcome.pairs) == 40_001 and outcome.pairs[-2:] == [["39999", "v" * 100],
                                                                   ["inputs", 40_000]]


def test_a_handler_may_ignore_its_input(pool):
    inputs = [["k", "x" * (4 << 20)]]
    outcome = pool.run(exec_task("reducer", "printf '[\"pair\", 1, 2]\\n' >&\"$MR_OUTPUT_FD\"\n",
                                 inputs, interpreter="/bin/bash"))
    assert outcome.ok, outcome.error
    assert outcome.pairs == [[1, 2]]


def test_input_that_json_cannot_carry_is_refused_clearly(pool):
    error = handler_error(pool.run(exec_task("mapper", "exit 0\n", [["k", b"raw"]], name="h")))
    assert error["type"] == "HandlerProtocolError"
    assert error["message"].startswith("the input of exec handler 'h' cannot be written as JSON")
    assert "exec handlers exchange JSON, which has no bytes" in error["message"]


def test_a_file_that_cannot_be_executed_is_a_handler_error(pool):
    source = "echo no interpreter line\n"
    error = handler_error(pool.run(Task(
        workflow="w", handler_name="h", handler_version="1", source_type="exec",
        source_code=source, handler_type="mapper", inputs=[])))
    assert error["type"] == "ExecHandlerError"
    assert error["message"].startswith("exec handler 'h' could not be started: [Errno 8] Exec "
                                       "format error")


def test_a_timeout_kills_the_exec_handler(pool):
    started = time.monotonic()
    outcome = pool.run(exec_task("mapper", "echo $$\nexec sleep 60\n"), timeout_s=0.5)
    assert time.monotonic() - started < 5
    handler_error(outcome, "timeout")
    assert wait_until_stopped(int(outcome.stdout))
    assert not is_running(int(outcome.stdout))


def test_the_node_example_counts_as_its_python_twin_does(pool):
    documents = [["one", "The cat; the hat."], ["two", "A cat! Ça va, 42 fois"]]
    python = pool.run(Task(workflow="wordcount", handler_name="count_map", handler_version="1",
                           source_type="python",
                           source_code=(WORDCOUNT / "count_map.py").read_text(),
                           handler_type="mapper", inputs=documents))
    node = pool.run(Task(workflow="wordcount", handler_name="count_map_node",
                         handler_version="1", source_type="exec",
                         source_code=NODE_MAPPER.read_text(), handler_type="mapper",
                         inputs=documents))
    assert node.ok, node.error
    assert node.directive == python.directive == {"kind": "return"}
    assert node.pairs == python.pairs
    assert (node.stdout, node.stderr) == ("one: 4 words\ntwo: 6 words\n", "")
