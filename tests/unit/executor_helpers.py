"""For the executor tests: tasks built from handler bodies, their failures, and process checks."""
import hashlib
import textwrap
import time
from pathlib import Path

import gevent

from mr.executor import Outcome, Task
from mr.models.handler import ARGUMENT_NAMES

HEADER_LINES = 8  # the python header below; body line n is file line HEADER_LINES + n


def metadata(handler_type: str) -> list[str]:
    return [f"argument_spec: [{{name: {ARGUMENT_NAMES[handler_type][0]}, type: list}}]",
            f"handler_type: {handler_type}", "required_capability: none"]


def python_source(handler_type: str, body: str) -> str:
    return "\n".join(['"""', "A test handler.", "", "**", *metadata(handler_type), '"""',
                      textwrap.dedent(body)])


def exec_source(handler_type: str, body: str, interpreter: str = "/bin/sh") -> str:
    header = ["A test exec handler.", "**", *metadata(handler_type)]
    return "\n".join([f"#!{interpreter}", *(f"# {line}" for line in header),
                      textwrap.dedent(body)])


def task(handler_type: str, body: str, inputs=(), name: str = "test_handler",
         workflow: str = "test_workflow", source_type: str = "python",
         interpreter: str = "/bin/sh", **fields) -> Task:
    """A task running ``body``: a Python handler's body, or an exec handler's script run by
    ``interpreter``."""
    source = (python_source(handler_type, body) if source_type == "python"
              else exec_source(handler_type, body, interpreter))
    return Task(workflow=workflow, handler_name=name,
                handler_version=hashlib.sha256(source.encode()).hexdigest(),
                source_type=source_type, source_code=source, handler_type=handler_type,
                inputs=list(inputs), **fields)


def handler_error(outcome: Outcome, kind: str = "handler") -> dict:
    assert not outcome.ok and outcome.error["kind"] == kind, outcome
    assert (outcome.directive, outcome.pairs) == (None, [])
    return outcome.error


def is_running(pid: int) -> bool:
    """Not a live process (gone, or a zombie left for an init that does not reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until_stopped(pid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while is_running(pid) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    return not is_running(pid)
