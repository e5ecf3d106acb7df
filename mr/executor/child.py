"""An executor child: runs the invocations the pool sends, one at a time, until the pool hangs up.

Started by the pool as ``python -u -m mr.executor.child <request fd> <reply fd>``. Unbuffered
(``-u``), so what a handler printed is in its capture file even if the process dies right after.
The first message is the pool's :class:`ChildConfig`; each one after it is a task.
"""
from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import traceback
from typing import Any

from mr import codec
from mr.executor.capture import redirected_output
from mr.executor.collect import collect
from mr.executor.exec_processor import ExecProcessor
from mr.executor.injected import SessionAccess
from mr.executor.protocol import (ChildConfig, HandlerProtocolError, Task, encode_message,
                                  handler_error, read_message, write_frame)
from mr.executor.python_processor import PythonProcessor
from mr.executor.scope import ScopeFactoryError, WorkflowScopes


def processors(config: ChildConfig) -> dict[str, Any]:
    """The processor of each source type: ``run(task, session)`` gives the handler's output."""
    return {"python": PythonProcessor(WorkflowScopes(config.scope_factory), config.fs_root_url),
            "exec": ExecProcessor(config.work_dir)}


def run_task(task: Task, by_source_type: dict[str, Any]) -> dict[str, Any]:
    """The reply for one invocation (without its output, which the pool reads from the files)."""
    session = SessionAccess(task.handler_name, task.session, task.session_writable)
    try:
        with by_source_type[task.source_type].run(task, session) as result:
            directive, pairs = collect(result, task)
    except BaseException as error:  # SystemExit too: a handler's sys.exit() fails the handler
        return _failure(task, error)
    return {"directive": directive, "pairs": pairs, "session": session.values, "error": None}


def encode_reply(task: Task, reply: dict[str, Any]) -> bytes:
    """The encoded reply, or the encoded failure that names what could not be encoded."""
    try:
        return encode_message(reply)
    except codec.CodecError as error:
        culprit = next((f"pair {pair!r:.200}" for pair in reply["pairs"]
                        if not _encodable(pair)), "its session")
        reason = HandlerProtocolError(f"{task.handler_type} {task.handler_name!r} produced "
                                      f"{culprit}, which cannot be encoded: {error}")
        return encode_message(_failure(task, reason))


def _failure(task: Task, error: BaseException) -> dict[str, Any]:
    kind = "scope_factory" if isinstance(error, ScopeFactoryError) else "handler"
    return {"directive": None, "pairs": [], "session": task.session,
            "error": handler_error(kind, type(error).__name__, str(error),
                                   _user_traceback(error, f"handler:{task.handler_name}"))}


def _user_traceback(error: BaseException, filename: str) -> str:
    """The traceback from the handler's first frame on (the child's own frames are noise)."""
    frames = error.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename != filename:
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(error), error, frames))


def _encodable(value: Any) -> bool:
    try:
        codec.encode(value)
    except codec.CodecError:
        return False
    return True


def _die_with_parent() -> None:
    """Be killed if the pool's process dies while a handler runs (idle, EOF suffices)."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main(argv: list[str]) -> int:
    request_fd, reply_fd = int(argv[1]), int(argv[2])
    for fd in (request_fd, reply_fd):  # not for the handlers' subprocesses (os.system too)
        os.set_inheritable(fd, False)
    _die_with_parent()
    read = functools.partial(os.read, request_fd)
    write = functools.partial(os.write, reply_fd)
    try:
        by_source_type = processors(ChildConfig(**read_message(read)))
    except EOFError:
        return 0
    while True:
        try:
            request = read_message(read)
        except EOFError:
            return 0
        task = Task(**request["task"])
        with redirected_output(request["stdout_path"], request["stderr_path"]):
            reply = run_task(task, by_source_type)
        write_frame(write, encode_reply(task, reply))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
