"""An executor child: runs the invocations the pool sends, one at a time, until the pool hangs up.

Started by the pool as ``python -u -m mr.executor.child <request fd> <reply fd>``. Unbuffered
(``-u``), so what a handler printed is in its capture file even if the process dies right after.
"""
from __future__ import annotations

import collections
import ctypes
import functools
import os
import signal
import sys
import traceback
from typing import Any, Callable

from mr import codec
from mr.executor.capture import redirected_output
from mr.executor.injected import SessionAccess, handler_globals
from mr.executor.protocol import (HandlerProtocolError, Task, encode_message, handler_error,
                                  read_message, write_frame)
from mr.handlers.format import compile_handler, show_in_tracebacks
from mr.handlers.scope import MrConfigureToMap, MrConfigureToReturn

#: How many compiled handlers a child keeps (a request pins old versions while new ones run).
COMPILED_CACHE_SIZE = 256

_NOTHING = object()


class CompiledHandlers:
    """Compiled handler functions by (name, version), least recently used dropped first.

    Compiling once per version (JobX compiled per invocation) also means a handler's module-level
    globals live on between invocations of that version in this child, as a module's would.
    """

    def __init__(self, size: int = COMPILED_CACHE_SIZE):
        self.size = size
        self._functions: collections.OrderedDict[tuple[str, str], Callable] = (
            collections.OrderedDict())

    def get(self, task: Task) -> Callable:
        key = (task.handler_name, task.handler_version)
        if key in self._functions:
            self._functions.move_to_end(key)
            show_in_tracebacks(task.handler_name, task.source_code)
        else:
            self._functions[key] = compile_handler(task.source_code, task.handler_type,
                                                   task.handler_name)
            if len(self._functions) > self.size:
                self._functions.popitem(last=False)
        return self._functions[key]


def run_task(task: Task, handlers: CompiledHandlers) -> dict[str, Any]:
    """The reply for one invocation (without its output, which the pool reads from the files)."""
    session = SessionAccess(task.handler_name, task.session, task.session_writable)
    try:
        function = handlers.get(task)
        function.__globals__.update(handler_globals(task.handler_name, session))
        directive, pairs = _COLLECTORS[task.handler_type](function(task.inputs), task)
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


def _collect_mapper(result: Any, task: Task) -> tuple[dict, list]:
    items = iter(result)
    first = next(items, _NOTHING)
    if first is _NOTHING:
        raise HandlerProtocolError(f"mapper {task.handler_name!r} yielded nothing; its first "
                                   f"item must be MrConfigureToMap(step) or MrConfigureToReturn()")
    if isinstance(first, MrConfigureToMap):
        directive = {"kind": "map", "step": first.step_name}
    elif isinstance(first, MrConfigureToReturn):
        directive = {"kind": "return"}
    else:
        raise HandlerProtocolError(f"mapper {task.handler_name!r} yielded {first!r:.200} first; "
                                   f"its first item must be MrConfigureToMap(step) or "
                                   f"MrConfigureToReturn()")
    return directive, [_pair(item, number, task) for number, item in enumerate(items, 2)]


def _collect_pairs(result: Any, task: Task) -> tuple[None, list]:
    """Combiners and reducers: a generator, or a returned iterable."""
    if isinstance(result, (str, bytes, dict)) or not hasattr(result, "__iter__"):
        raise HandlerProtocolError(f"{task.handler_type} {task.handler_name!r} returned "
                                   f"{result!r:.200}; it must yield (key, value) pairs or "
                                   f"return an iterable of them")
    pairs = [_pair(item, number, task) for number, item in enumerate(result, 1)]
    if task.handler_type == "combiner":
        pairs = [[key, _values(values, key, task)] for key, values in pairs]
    return None, pairs


_COLLECTORS = {"mapper": _collect_mapper, "combiner": _collect_pairs, "reducer": _collect_pairs}


def _pair(item: Any, number: int, task: Task) -> list:
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        raise HandlerProtocolError(f"{task.handler_type} {task.handler_name!r} produced "
                                   f"{item!r:.200} (a {type(item).__name__}) as item {number}; "
                                   f"every item must be a (key, value) pair")
    return list(item)


def _values(values: Any, key: Any, task: Task) -> list:
    """A combiner gives each key an iterable of values."""
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise HandlerProtocolError(f"combiner {task.handler_name!r} produced {values!r:.200} "
                                   f"for key {key!r:.100}; a combiner yields (key, values) with "
                                   f"values a list of values")
    return list(values)


def _failure(task: Task, error: BaseException) -> dict[str, Any]:
    return {"directive": None, "pairs": [], "session": task.session,
            "error": handler_error("handler", type(error).__name__, str(error),
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
    handlers = CompiledHandlers()
    read = functools.partial(os.read, request_fd)
    write = functools.partial(os.write, reply_fd)
    while True:
        try:
            request = read_message(read)
        except EOFError:
            return 0
        task = Task(**request["task"])
        with redirected_output(request["stdout_path"], request["stderr_path"]):
            reply = run_task(task, handlers)
        write_frame(write, encode_reply(task, reply))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
