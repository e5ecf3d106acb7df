"""The exec processor: a handler that is any executable, speaking the exec protocol.

The handler runs as a subprocess of the executor child, in the child's process group (a timeout
kills both), with stdin at /dev/null and stdout and stderr going to the invocation's capture
files. It talks to the child on two pipes of its own, whose numbers it finds in
``MR_INPUT_FD`` and ``MR_OUTPUT_FD``, so whatever it prints is captured output, never data:

- input: one line of JSON, then end of file: ``{"protocol": 1, "workflow", "handler",
  "handler_type", "version", "arguments" (mappers) or "results" (combiners, reducers),
  "session", "session_writable"}``;
- output: one JSON array per line: ``["map", step]`` or ``["return"]`` (a mapper's first),
  ``["pair", key, value]``, ``["session", key, value]`` (``S_SET``), ``["counter", group,
  name, n]`` (``increment_counter``), ``["status", message]`` (``set_status``).

It succeeds when it exits with status 0. The protocol is documented in ``docs/handlers.rst``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import threading
from typing import IO, Any, Iterator

from mr.executor.injected import SessionAccess
from mr.executor.protocol import HandlerProtocolError, Task
from mr.executor.reporting import increment_counter, set_status
from mr.handlers.scope import MrConfigureToMap, MrConfigureToReturn
from mr.models.handler import ARGUMENT_NAMES

PROTOCOL_VERSION = 1
INPUT_FD_VARIABLE = "MR_INPUT_FD"
OUTPUT_FD_VARIABLE = "MR_OUTPUT_FD"
#: The output messages, by their first element, with their lengths.
_MESSAGE_LENGTHS = {"map": 2, "return": 1, "pair": 3, "session": 3, "counter": 4, "status": 2}
_MESSAGES_HELP = ('each message is one line of JSON: ["map", step], ["return"], '
                  '["pair", key, value] or ["session", key, value] (and, to report, '
                  '["counter", group, name, n] or ["status", message])')


class ExecHandlerError(Exception):
    """An exec handler that could not start, or did not exit with status 0."""


class ExecProcessor:
    """Runs exec handlers from files written once per content in ``<work_dir>/exec``."""

    def __init__(self, work_dir: str):
        self._directory = os.path.join(work_dir, "exec")
        os.makedirs(self._directory, exist_ok=True)

    @contextlib.contextmanager
    def run(self, task: Task, session: SessionAccess) -> Iterator[Iterator]:
        """The handler's output as items (markers and pairs), read while it runs; its session
        writes go to ``session``. The handler is killed if it still runs when this ends."""
        payload = _input_message(task)
        executable = self._executable(task.source_code)
        input_read, input_write = os.pipe()
        output_read, output_write = os.pipe()
        try:
            process = subprocess.Popen(
                [executable], stdin=subprocess.DEVNULL, pass_fds=(input_read, output_write),
                env={**os.environ, INPUT_FD_VARIABLE: str(input_read),
                     OUTPUT_FD_VARIABLE: str(output_write)})
        except OSError as error:
            os.close(input_write)
            os.close(output_read)
            raise ExecHandlerError(f"exec handler {task.handler_name!r} could not be started: "
                                   f"{error}") from None
        finally:
            os.close(input_read)
            os.close(output_write)
        # Written by a thread, so that a handler answering before it read everything cannot
        # deadlock with us on full pipes.
        sender = threading.Thread(target=_send, args=(input_write, payload), daemon=True)
        sender.start()
        output = open(output_read, "rb")
        try:
            yield _items(task, session, output, process)
        finally:
            output.close()
            if process.poll() is None:
                process.kill()
            process.wait()
            sender.join()

    def _executable(self, source_code: str) -> str:
        """The path of an executable file holding ``source_code``, written on first use."""
        path = os.path.join(self._directory, hashlib.sha256(source_code.encode()).hexdigest())
        if not os.path.exists(path):
            partial = f"{path}.{os.getpid()}.partial"  # children of one pool share the directory
            with open(partial, "w", encoding="utf-8") as file:
                file.write(source_code)
            os.chmod(partial, 0o700)
            os.replace(partial, path)
        return path


def _input_message(task: Task) -> bytes:
    message = {"protocol": PROTOCOL_VERSION, "workflow": task.workflow,
               "handler": task.handler_name, "handler_type": task.handler_type,
               "version": task.handler_version,
               ARGUMENT_NAMES[task.handler_type][0]: task.inputs,
               "session": task.session, "session_writable": task.session_writable}
    try:
        return (json.dumps(message, ensure_ascii=False, allow_nan=False) + "\n").encode()
    except (TypeError, ValueError) as error:
        raise HandlerProtocolError(f"the input of exec handler {task.handler_name!r} cannot be "
                                   f"written as JSON ({error}); exec handlers exchange JSON, "
                                   f"which has no bytes and no NaN or infinity") from None


def _send(fd: int, payload: bytes) -> None:
    try:
        with open(fd, "wb") as pipe:
            pipe.write(payload)
    except BrokenPipeError:
        pass  # the handler did not read all of its input: its choice


def _items(task: Task, session: SessionAccess, output: IO[bytes],
           process: subprocess.Popen) -> Iterator[Any]:
    for number, line in enumerate(output, 1):
        if line.strip():
            item = _decode(line, number, task, session)
            if item is not None:
                yield item
    status = process.wait()
    if status != 0:
        how = (f"was killed by signal {signal.Signals(-status).name}" if status < 0
               else f"exited with status {status}")
        raise ExecHandlerError(f"exec handler {task.handler_name!r} {how}")


def _decode(line: bytes, number: int, task: Task, session: SessionAccess) -> Any:
    """The item one output line stands for; a session write, a counter or a status is made
    here (None)."""
    try:
        message = json.loads(line)
    except ValueError:  # UnicodeDecodeError too
        message = None
    kind = message[0] if isinstance(message, list) and message else None
    if not (isinstance(kind, str) and len(message) == _MESSAGE_LENGTHS.get(kind)):
        raise HandlerProtocolError(f"exec handler {task.handler_name!r} wrote {line!r:.200} as "
                                   f"line {number} of {OUTPUT_FD_VARIABLE}; {_MESSAGES_HELP}")
    if kind == "map":
        return MrConfigureToMap(message[1])
    if kind == "return":
        return MrConfigureToReturn()
    if kind == "pair":
        return message[1:]
    if kind == "counter":
        increment_counter(*message[1:])
    elif kind == "status":
        set_status(message[1])
    else:
        session.set(message[1], message[2])
    return None
