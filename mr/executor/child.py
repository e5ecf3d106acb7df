"""An executor child: runs the invocations the pool sends, one at a time, until the pool hangs up.

Forked by the pool's fork server (mr.executor.forkserver), which runs unbuffered (``-u``), so
what a handler printed reaches the pool even if the process dies right after. The first message
is the pool's :class:`ChildConfig`, after which the child limits its memory; each message after
it is a task.
"""
from __future__ import annotations

import ctypes
import fcntl
import functools
import os
import signal
import sys
import traceback
from typing import Any, Iterator

from mr import codec
from mr.executor.capture import redirected_output
from mr.datasets import InputUnavailable, OutputUnavailable
from mr.executor import plans, reporting
from mr.executor.collect import collect, stream
from mr.executor.exec_processor import ExecProcessor
from mr.executor.injected import SessionAccess
from mr.executor.memory import MemoryReserve, limit_memory
from mr.executor.protocol import (OUT_OF_MEMORY_EXIT_STATUS, ChildConfig, HandlerProtocolError,
                                  Task, encode_message, handler_error, memory_error, read_message,
                                  write_frame)
from mr.executor.python_processor import PythonProcessor
from mr.executor.scope import ScopeFactoryError, WorkflowScopes
from mr.grouping import group_by_key
from mr.notify.notices import collecting as collecting_notices

#: Where a child keeps the pipes to its pool.
_HIGH_FD = 64


def processors(config: ChildConfig) -> dict[str, Any]:
    """The processor of each source type: ``run(task, session)`` gives the handler's output."""
    return {"python": PythonProcessor(WorkflowScopes(config.scope_factory), config.fs_root_url),
            "exec": ExecProcessor(config.work_dir)}


class _TaskRunner:
    """What a child keeps between tasks: its processors, and the memory it may use."""

    def __init__(self, config: ChildConfig):
        self.memory_limit_mb = config.memory_limit_mb
        limit_memory(config.memory_limit_mb)
        self._reserve = MemoryReserve()
        self._by_source_type = processors(config)

    def serve(self, request: dict[str, Any]) -> Iterator[bytes]:
        """The encoded replies to one request, one per handler run (their output goes to the
        pool's FIFOs). A request with a reducer to follow (``then``) runs it when the mapper
        returned its pairs: over them, grouped by key, and the mapper's session, both as the
        pool would have sent them back (decoded from their encoding: tuples become lists);
        those pairs stay here. The mapper's reply says whether the reducer runs
        (``continues``), so that the pool knows whether a second reply comes."""
        task = Task(**request["task"])
        reply = self._captured(task, request["stdout_path"], request["stderr_path"])
        follow = request.get("then")
        handed_on = None
        if follow is not None and reply["error"] is None and reply["directive"] == {
                "kind": "return"}:
            handed_on = _as_sent({"pairs": reply["pairs"], "session": reply["session"]})
        if follow is not None:
            reply["continues"] = handed_on is not None
            if handed_on is not None:
                reply["pairs"] = []
        encoded, as_run = self.encode_reply(task, reply)
        yield encoded
        if handed_on is not None and as_run:
            reducer = Task(**{**follow["task"], "inputs": group_by_key(handed_on["pairs"]),
                              "session": handed_on["session"]})
            yield self.encode_reply(reducer, self._captured(
                reducer, follow["stdout_path"], follow["stderr_path"]))[0]

    def _captured(self, task: Task, stdout_path: str, stderr_path: str) -> dict[str, Any]:
        """The reply for one invocation, its output written to these FIFOs."""
        with redirected_output(stdout_path, stderr_path), \
                collecting_notices() as notices, reporting.collecting() as reports:
            reply = self.run_task(task)
        reply["notices"] = notices
        reply.update(reports.to_reply())
        return reply

    def run_task(self, task: Task) -> dict[str, Any]:
        """The reply for one invocation, without its output."""
        session = SessionAccess(task.handler_name, task.session, task.session_writable)
        written = None
        try:
            if task.source is not None:
                task.inputs = plans.source_pairs(task.source)
                if task.source_type != "python":  # the exec protocol sends its input whole
                    task.inputs = list(task.inputs)
            with self._by_source_type[task.source_type].run(task, session) as result:
                if task.sink is None:
                    directive, pairs = collect(result, task)
                else:
                    written, directive = self._write_to_sink(task, result, session)
                    pairs = []
        except MemoryError as error:
            self._reserve.release()
            return _failed(task, memory_error(task.handler_name, self.memory_limit_mb,
                                              _user_traceback(error, task)))
        except (InputUnavailable, OutputUnavailable) as error:  # the store's, not the handler's
            return _failed(task, handler_error("data", type(error).__name__, str(error)))
        except BaseException as error:  # SystemExit too: a handler's sys.exit() fails it
            kind = "scope_factory" if isinstance(error, ScopeFactoryError) else "handler"
            return _failed(task, handler_error(kind, type(error).__name__, str(error),
                                               _user_traceback(error, task)))
        return {"directive": directive, "pairs": pairs, "session": session.values,
                "error": None, "written": written}

    def _write_to_sink(self, task: Task, result: Any,
                       session: SessionAccess) -> tuple[dict, dict | None]:
        """What the handler's output wrote to the task's sink, and a mapper's directive."""
        directive, pairs = stream(result, task)
        if directive is not None and directive["kind"] != "return":
            raise HandlerProtocolError(
                f"mapper {task.handler_name!r} yielded MrConfigureToMap first, but it maps an "
                f"input split, whose output goes to the shuffle: it must yield "
                f"MrConfigureToReturn()")
        combiner, partitioner = task.sink.get("combiner"), task.sink.get("partitioner")
        combine = None if combiner is None else functools.partial(
            self._combine, Task(**{**combiner, "inputs": []}), session)
        partition = None if partitioner is None else functools.partial(
            self._partition, Task(**{**partitioner, "inputs": None}),
            SessionAccess(partitioner["handler_name"], session.values, False))
        return plans.write_to_sink(task.sink, pairs, combine, partition), directive

    def _combine(self, task: Task, session: SessionAccess, groups: list) -> list:
        """Run a map-side combiner over one buffer, sharing the mapper's session. A combiner
        gets what it gets in the tree, the mapper's ``[k, v]`` pairs (here in key order)."""
        task.inputs = [[key, value] for key, values in groups for value in values]
        with self._by_source_type[task.source_type].run(task, session) as result:
            return collect(result, task)[1]

    def _partition(self, task: Task, session: SessionAccess, key: Any, partitions: int) -> int:
        """The partition a partitioner handler gives ``key``: the int it returns, modulo the
        number of partitions (as a hash would be)."""
        if task.source_type != "python":
            raise HandlerProtocolError(f"partitioner {task.handler_name!r} is an "
                                       f"{task.source_type} handler; partitioners are Python")
        task.inputs = key
        with self._by_source_type["python"].run(task, session) as number:
            if not isinstance(number, int) or isinstance(number, bool):
                raise HandlerProtocolError(f"partitioner {task.handler_name!r} returned "
                                           f"{number!r:.100} for key {key!r:.100}; it must "
                                           f"return an int")
        return number % partitions

    def encode_reply(self, task: Task, reply: dict[str, Any]) -> tuple[bytes, bool]:
        """The encoded reply, or the encoded failure that names what could not be encoded;
        and whether it is the reply as given."""
        try:
            return encode_message(reply), True
        except MemoryError:
            self._reserve.release()
            return encode_message(_failed(task, memory_error(task.handler_name,
                                                             self.memory_limit_mb))), False
        except codec.CodecError as error:
            culprit = next((f"pair {pair!r:.200}" for pair in reply["pairs"]
                            if not _encodable(pair)), "its session")
            return encode_message(_failed(task, handler_error(
                "handler", HandlerProtocolError.__name__,
                f"{task.handler_type} {task.handler_name!r} produced {culprit}, which cannot be "
                f"encoded: {error}"))), False


def _as_sent(values: Any) -> Any:
    """``values`` as the other side of the pipe would read them; None if they cannot be
    encoded (the reply that carries them says why)."""
    try:
        return codec.decode(codec.encode(values))
    except (codec.CodecError, MemoryError):
        return None


def _failed(task: Task, error: dict[str, str]) -> dict[str, Any]:
    return {"directive": None, "pairs": [], "session": task.session, "error": error}


def _user_traceback(error: BaseException, task: Task) -> str:
    """The traceback from the handler's first frame on (the child's own frames are noise)."""
    filename = f"handler:{task.handler_name}"
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


def die_with_parent(parent_pid: int | None = None) -> None:
    """Be killed when the parent process dies (the fork server, which dies with the pool), even
    while a handler runs; an idle child would exit on EOF anyway. ``parent_pid``: the parent
    expected, in case it died before this was set."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def _out_of_the_way(fd: int) -> int:
    """``fd`` moved to a high number, and not inherited by the handlers' subprocesses (os.system
    too): the pipes an exec handler gets then have single-digit numbers, the only ones sh's
    redirections take."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _HIGH_FD)
    os.close(fd)
    return moved


def serve(request_fd: int, reply_fd: int, parent_pid: int) -> int:
    """Serve the pool's requests on these pipes until it hangs up; the exit status."""
    request_fd, reply_fd = _out_of_the_way(request_fd), _out_of_the_way(reply_fd)
    die_with_parent(parent_pid)
    read = functools.partial(os.read, request_fd)
    write = functools.partial(os.write, reply_fd)
    try:
        runner = _TaskRunner(ChildConfig(**read_message(read)))
    except EOFError:
        return 0
    while True:
        try:
            for reply in runner.serve(read_message(read)):
                write_frame(write, reply)
        except EOFError:
            return 0
        except MemoryError:  # even its failure could not be reported: the pool knows this status
            os._exit(OUT_OF_MEMORY_EXIT_STATUS)
