"""The executor pool: pre-started child processes in which handler code runs, never in the worker.

A CPU-bound or runaway handler therefore cannot starve the worker's gevent loop, can be killed on
timeout, and has its output captured per invocation. Each child runs one invocation at a time;
:meth:`ExecutorPool.run` blocks only its calling greenlet, so up to ``size`` invocations run in
parallel. Every way a handler can misbehave ends its own invocation only: a child that runs too
long or writes too much is killed, one that runs out of memory or dies is reaped, and each is
replaced.

A child runs the handlers of one workflow only, so that what one workflow's handler leaves in
the interpreter (module state, patched modules) no other workflow's handler sees: a child goes
to another workflow only by being replaced by a fresh one. Children are forked from a fork
server (mr.executor.forkserver), which makes a replacement cost milliseconds.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from typing import NamedTuple

import gevent
import gevent.event
from gevent import os as gevent_os

import mr
from mr.executor.capture import InvocationOutput, OutputExceeded, close_now
from mr.executor.forkserver import ForkServer
from mr.executor.memory import automatic_limit_mb
from mr.executor.protocol import (OUT_OF_MEMORY_EXIT_STATUS, ChildConfig, Outcome, Task,
                                  encode_message, handler_error, memory_error, read_message,
                                  write_frame)
from mr.fs import check_shared_root
from mr.metrics import instruments, sampled

#: How long a child that closed its reply pipe, or ran out of memory, gets to exit before it is
#: killed.
_DYING_CHILD_GRACE_S = 1.0

MEMORY_TMP = "/dev/shm"


class _TimedOut(Exception):
    pass


class _Waiter(NamedTuple):
    """A caller waiting for a child to run a handler of ``workflow``."""
    workflow: str
    result: gevent.event.AsyncResult


class _Child:
    """One child process, in its own process group (so a kill takes its subprocesses too), and
    the pool's ends of its request and reply pipes."""

    def __init__(self, config: bytes, fork_server: ForkServer):
        request_read, self._request_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        try:
            self.process = fork_server.start_child(request_read, reply_write)
        except BaseException:
            close_now(self._request_write)
            close_now(self._reply_read)
            raise
        finally:
            close_now(request_read)
            close_now(reply_write)
        self.pid = self.process.pid
        #: The workflow whose handlers it runs; None while it has run none (a fresh child).
        self.workflow: str | None = None
        self._hung_up = False
        #: When the pool handed it an invocation; None while idle.
        self.busy_since: float | None = None
        gevent_os.make_nonblocking(self._request_write)
        gevent_os.make_nonblocking(self._reply_read)
        with contextlib.suppress(OSError):  # died at once: its first exchange will report it
            self._write(config)

    def _write(self, payload: bytes) -> None:
        write_frame(functools.partial(gevent_os.nb_write, self._request_write), payload)

    def exchange(self, payload: bytes | None) -> dict | None:
        """Send one request and wait for its reply (None: wait for the next reply to the
        request sent last); None if the child died."""
        try:
            if payload is not None:
                self._write(payload)
            return read_message(functools.partial(gevent_os.nb_read, self._reply_read))
        except (EOFError, OSError):
            return None

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the child's process group (it, and anything it started that still runs)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def stop(self, grace_s: float) -> None:
        """Hang up (an idle child exits on EOF), give it ``grace_s``, then kill; reap; close.

        Only for a child that no greenlet is exchanging with."""
        if not self._hung_up:  # never twice: the fd numbers may belong to new files by then
            self._hung_up = True
            close_now(self._request_write)
            close_now(self._reply_read)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_s)
        self.kill()
        self.process.wait()

    def exit_description(self) -> str:
        code = self.process.returncode
        if code is not None and code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return f"exit status {code}"


def _finish_all(outputs: list[InvocationOutput]) -> None:
    """Drain and remove the FIFOs of every handler's run (those already finished are left)."""
    for output in outputs:
        output.finish()


def _child_environment() -> dict[str, str]:
    """The worker's environment, with this ``mr`` first on the path, so the child imports it."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(mr.__file__)))
    path = os.environ.get("PYTHONPATH")
    return {**os.environ,
            "PYTHONPATH": package_parent + (os.pathsep + path if path else "")}


def _memory_backed_tmp() -> str | None:
    """/dev/shm where it is a writable tmpfs (Linux), else None: the default temp directory."""
    return MEMORY_TMP if os.path.isdir(MEMORY_TMP) and os.access(MEMORY_TMP, os.W_OK) else None


def _remove_trees(*paths: str) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


class ExecutorPool:
    """``size`` children (default: one per core); each invocation gets one to itself.

    ``memory_limit_mb``: what each child (and each process a handler starts) may allocate;
    None: an equal share of the machine's memory (mr.executor.memory). ``max_output_mb``: how
    much an invocation may write to stdout and stderr together before it is stopped.
    ``scope_factory``: the dotted path of the scope factory class (mr.executor.scope);
    ``fs_root_url``: the root of the shared filesystem given to handlers as ``FS`` (None: no
    ``FS``), checked here so that a bad URL stops the worker at its start.
    """

    @classmethod
    def from_settings(cls, settings, size: int | None = None) -> "ExecutorPool":
        """The pool the settings describe (``size`` overrides MR_EXECUTOR_PROCESSES)."""
        return cls(size or settings.executor_processes or None,
                   default_timeout_s=settings.invocation_timeout_s,
                   memory_limit_mb=settings.executor_memory_mb or None,
                   max_output_mb=settings.executor_max_output_mb,
                   scope_factory=settings.workflow_scope_factory_fq_class,
                   fs_root_url=settings.fs_root_url)

    def __init__(self, size: int | None = None, default_timeout_s: float = 300.0, *,
                 memory_limit_mb: int | None = None, max_output_mb: int = 64,
                 scope_factory: str | None = None, fs_root_url: str | None = None):
        self.size = (os.cpu_count() or 1) if size is None else size
        if self.size < 1:
            raise ValueError(f"an executor pool needs at least one child, got size {size}")
        if fs_root_url:
            check_shared_root(fs_root_url)
        self.default_timeout_s = default_timeout_s
        self.memory_limit_mb = memory_limit_mb or automatic_limit_mb(self.size)
        self.max_output_mb = max_output_mb
        self._work_dir = tempfile.mkdtemp(prefix="mr-executor-")
        # Every invocation makes two FIFOs: in memory when there is a tmpfs, since creating
        # files on a disk costs as much as a small handler's whole run. They hold no data.
        self._output_dir = tempfile.mkdtemp(prefix="mr-output-", dir=_memory_backed_tmp())
        # Removed on close, or at exit if the pool was never closed.
        self._remove_work_dir = weakref.finalize(self, _remove_trees, self._work_dir,
                                                 self._output_dir)
        self._child_config = encode_message(ChildConfig(
            work_dir=self._work_dir, memory_limit_mb=self.memory_limit_mb,
            scope_factory=scope_factory, fs_root_url=fs_root_url).to_message())
        self._invocation_numbers = itertools.count()
        self._fork_server = ForkServer(_child_environment())
        self._children: set[_Child] = set()
        self._idle: collections.deque[_Child] = collections.deque()
        self._waiting: collections.deque[_Waiter] = collections.deque()
        self._closed = False
        for _ in range(self.size):
            self._release(self._start_child())
        sampled.track_pool(self)

    @property
    def pids(self) -> list[int]:
        """The process ids of the current children."""
        return sorted(child.pid for child in self._children)

    @property
    def busy(self) -> int:
        """How many children run an invocation now."""
        return sum(child.busy_since is not None for child in self._children)

    def run(self, task: Task, timeout_s: float | None = None,
            then: Task | None = None) -> Outcome:
        """Run ``task`` in an idle child (waiting for one); the outcome of the handler, whatever
        it did. ``then``: a reducer the same child runs right after the mapper ``task``, over its
        pairs grouped by key, if the mapper returns them: one exchange with the child where two
        would be, each handler with its own time limit and output capture; its outcome is the
        mapper's ``then``. CodecError if a task itself cannot be encoded."""
        timeout_s = self.default_timeout_s if timeout_s is None else timeout_s
        tasks = [task] if then is None else [task, then]
        paths = [self._output_paths() for _ in tasks]
        request = [{"task": each.to_message(), "stdout_path": stdout, "stderr_path": stderr}
                   for each, (stdout, stderr) in zip(tasks, paths)]
        payload = encode_message({**request[0], "then": request[1]} if then else request[0])
        child = self._take_idle_child(task.workflow)
        outputs: list[InvocationOutput] = []
        try:
            for output_paths in paths:
                outputs.append(InvocationOutput(output_paths, self.max_output_mb << 20))
        except BaseException:
            _finish_all(outputs)
            self._release(child)
            raise
        try:
            outcome, usable, goes_on = self._phase(child, task, outputs[0], payload, timeout_s)
            if goes_on:
                outcome.then, usable, _ = self._phase(child, then, outputs[1], None, timeout_s)
        finally:
            _finish_all(outputs)
        if usable:
            self._release(child)
        return outcome

    def _output_paths(self) -> tuple[str, str]:
        """Where one handler's run writes its stdout and stderr (FIFOs the pool makes)."""
        number = next(self._invocation_numbers)
        return (os.path.join(self._output_dir, f"{number}.stdout"),
                os.path.join(self._output_dir, f"{number}.stderr"))

    def _phase(self, child: _Child, task: Task, output: InvocationOutput,
               payload: bytes | None, timeout_s: float) -> tuple[Outcome, bool, bool]:
        """One handler's run in ``child``: ``payload`` sent (None: already sent), its reply
        awaited within ``timeout_s``. Its outcome; whether the child can run more (one that
        cannot is retired here); whether it goes on with the reducer sent with the mapper."""
        stopped = False  # by the pool: it ran too long, or wrote too much
        try:
            with output.reading(), gevent.Timeout(timeout_s, _TimedOut):
                reply = child.exchange(payload)
        except (_TimedOut, OutputExceeded):
            stopped, reply, usable = True, None, False
            self._retire(child, grace_s=0)
        except BaseException:  # e.g. the caller was killed mid-exchange: the child is unusable
            self._retire(child, grace_s=0)
            raise
        else:
            usable = reply is not None and (reply["error"] or {}).get("kind") != "memory"
            if not usable:
                self._retire(child, grace_s=_DYING_CHILD_GRACE_S)
        stdout, stderr = output.finish()
        error = self._failure(task, child, reply, stopped, output.exceeded, timeout_s)
        if error is not None:
            reply = self._failed(task, error)
        outcome = Outcome(ok=reply["error"] is None, directive=reply["directive"],
                          pairs=reply["pairs"], session=reply["session"], stdout=stdout,
                          stderr=stderr, error=reply["error"], written=reply.get("written"),
                          notices=reply.get("notices", []),
                          counters=reply.get("counters", {}), status=reply.get("status"))
        return outcome, usable, usable and reply.get("continues", False)

    def _failure(self, task: Task, child: _Child, reply: dict | None, stopped: bool,
                 wrote_too_much: bool, timeout_s: float) -> dict | None:
        """The error of an invocation that the pool ended or saw end badly; None when the
        child's reply stands. Writing too much fails an invocation whatever else it did."""
        name = task.handler_name
        killed = f"; its executor child (pid {child.pid}) was killed" if stopped else ""
        if wrote_too_much:
            return handler_error(
                "output", "HandlerOutputExceeded", f"handler {name!r} wrote more than "
                f"{self.max_output_mb} MiB to stdout and stderr, the most one invocation may "
                f"write (MR_EXECUTOR_MAX_OUTPUT_MB){killed}")
        if stopped:
            return handler_error("timeout", "HandlerTimeout",
                                 f"handler {name!r} ran longer than {timeout_s:g} s{killed}")
        if reply is not None:
            return None
        if child.process.returncode == OUT_OF_MEMORY_EXIT_STATUS:
            return memory_error(name, self.memory_limit_mb)
        return handler_error("crashed", "ExecutorChildDied", f"the executor child (pid "
                             f"{child.pid}) running handler {name!r} died: "
                             f"{child.exit_description()}")

    def close(self, grace_s: float = 5.0) -> None:
        """Stop every child and wait for it to exit: idle ones get ``grace_s`` to exit on their
        own; busy ones are killed (their invocations report ``crashed``)."""
        if self._closed:
            return
        self._closed = True
        sampled.forget_pool(self)
        idle = list(self._idle)
        self._idle.clear()
        while self._waiting:
            self._waiting.popleft().result.set(None)  # wakes waiting callers: the pool is closed
        busy = self._children.difference(idle)
        for child in busy:
            child.kill()
        gevent.joinall([gevent.spawn(child.stop, grace_s) for child in idle]
                       + [gevent.spawn(child.process.wait) for child in busy])
        self._children.difference_update(idle)
        self._fork_server.close()
        self._remove_work_dir()

    def __enter__(self) -> "ExecutorPool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _start_child(self) -> _Child:
        child = _Child(self._child_config, self._fork_server)
        self._children.add(child)
        return child

    def _release(self, child: _Child) -> None:
        """Hand an idle child to the caller that has waited longest, else keep it idle.

        First come, first served: a caller that returns a child and at once asks for another
        (a mapper, then its reducer) must not take it back ahead of callers already waiting.
        A child of another workflow than that caller's makes way for a fresh one, which the
        caller gets.
        """
        self._count_busy_time(child)
        while self._waiting:
            waiter = self._waiting.popleft()
            if waiter.result.ready():  # given up
                continue
            if child.workflow not in (None, waiter.workflow):
                self._waiting.appendleft(waiter)
                gevent.spawn(self._renew, child, _DYING_CHILD_GRACE_S)
            else:
                waiter.result.set(child)
            return
        self._idle.append(child)

    def _take_idle_child(self, workflow: str) -> _Child:
        if self._closed:
            raise RuntimeError("the executor pool is closed")
        child = self._idle_child_of(workflow)
        if child is None:
            waiter = _Waiter(workflow, gevent.event.AsyncResult())
            self._waiting.append(waiter)
            if self._idle:  # children of other workflows only: the least recently used makes way
                gevent.spawn(self._renew, self._idle.popleft(), _DYING_CHILD_GRACE_S)
            try:
                child = waiter.result.get()
            except BaseException:  # the caller was killed while waiting
                if waiter.result.ready() and waiter.result.value is not None:
                    self._release(waiter.result.value)  # handed over just then: pass it on
                else:
                    waiter.result.set(None)  # so that _release skips it
                raise
            if child is None:
                raise RuntimeError("the executor pool is closed")
        if not child.is_alive():  # died while idle: not this task's doing
            self._retire(child, grace_s=0)
            return self._take_idle_child(workflow)
        child.workflow = workflow
        child.busy_since = time.monotonic()
        return child

    def _idle_child_of(self, workflow: str) -> _Child | None:
        """An idle child that has run ``workflow``'s handlers, else one that has run none."""
        for wanted in (workflow, None):
            for child in self._idle:
                if child.workflow == wanted:
                    self._idle.remove(child)
                    return child
        return None

    def _renew(self, old: _Child, grace_s: float) -> None:
        """Stop ``old`` and put a fresh child in its place.

        Run in a greenlet of its own: starting and stopping children yields, and a caller
        killed meanwhile must not leave the pool a child short."""
        fresh = None
        try:
            if not self._closed:
                fresh = self._start_child()
        finally:
            old.stop(grace_s)
            self._children.discard(old)
        if fresh is None:
            return
        if self._closed:  # closed while the child started
            fresh.stop(0)
            self._children.discard(fresh)
        else:
            self._release(fresh)

    @staticmethod
    def _count_busy_time(child: _Child) -> None:
        if child.busy_since is not None:
            instruments.executor_busy(time.monotonic() - child.busy_since)
            child.busy_since = None

    def _retire(self, child: _Child, grace_s: float) -> None:
        """Stop ``child`` and, unless the pool is closing, put a fresh one in its place; return
        once it is stopped (its exit status is known)."""
        self._count_busy_time(child)
        gevent.spawn(self._renew, child, grace_s).get()

    @staticmethod
    def _failed(task: Task, error: dict) -> dict:
        return {"error": error, "directive": None, "pairs": [], "session": task.session}
