"""A fork server: the process from which a pool's executor children are forked.

A child started as a new interpreter costs some 0.2 s of imports before it can run a handler;
forked from a process that has imported them already, a few milliseconds. That makes a child
cheap enough to replace rather than hand to another workflow (mr.executor.pool). No handler ever
runs in the server, so every child starts from an interpreter that no handler has touched.

The pool and its server talk over a Unix stream socket. The pool sends one byte with the child's
request and reply pipe ends attached (SCM_RIGHTS); the server forks a child onto them and
answers a record ``S pid``, then ``X pid returncode`` once that child has exited (the server is
its parent and reaps it; the return code as :mod:`subprocess` gives it, -N for signal N). The
server exits when the pool hangs up, and its children are killed with it.
"""
from __future__ import annotations

import collections
import contextlib
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import traceback

import gevent
import gevent.event
from gevent import socket as gevent_socket
from gevent import subprocess as gevent_subprocess

#: The server's program (not ``-m``: this module is imported by the pool's package already).
_SERVER_MAIN = "import sys; from mr.executor.forkserver import main; sys.exit(main(sys.argv))"
#: What the server sends: a kind (``S`` started, ``X`` exited), a pid and a return code.
_RECORD = struct.Struct("!cii")


class ForkServerDied(Exception):
    """The fork server exited: no child can be started until a new one runs."""


class ForkedProcess:
    """A child of the fork server, as the pool sees it: the part of :class:`subprocess.Popen`
    that the pool uses, its exit told by the server."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._exited = gevent.event.Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(f"executor child {self.pid}", timeout)
        return self.returncode

    def exited(self, returncode: int) -> None:
        self.returncode = returncode
        self._exited.set()


class ForkServer:
    """The pool's end of a fork server, started on first use and again if it died.

    ``environment``: the server's, and so its children's."""

    def __init__(self, environment: dict[str, str]):
        self._environment = environment
        self._server = None
        self._socket = None
        #: Started children not yet exited, by pid.
        self._children: dict[int, ForkedProcess] = {}
        #: The answers awaited for the fork requests sent, in order.
        self._pending: collections.deque = collections.deque()
        self._reader = None
        self._closed = False

    def start_child(self, request_fd: int, reply_fd: int) -> ForkedProcess:
        """Fork a child that reads its requests from ``request_fd`` and writes its replies to
        ``reply_fd`` (both stay open here: the caller closes its copies). A server that died is
        started again, once."""
        try:
            return self._ask_for_child(request_fd, reply_fd)
        except ForkServerDied:
            if self._closed:
                raise
            self._launch()
            return self._ask_for_child(request_fd, reply_fd)

    def _ask_for_child(self, request_fd: int, reply_fd: int) -> ForkedProcess:
        if self._closed:
            raise ForkServerDied("the fork server is closed")
        if self._server is None or self._reader.dead:
            self._launch()
        answer = gevent.event.AsyncResult()
        self._pending.append(answer)
        try:
            socket.send_fds(self._socket, [b"F"], [request_fd, reply_fd])
        except OSError as error:
            self._pending.remove(answer)
            raise ForkServerDied(f"the fork server is gone: {error}") from None
        return answer.get()

    def _launch(self) -> None:
        self._stop_server()
        ours, theirs = gevent_socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._server = gevent_subprocess.Popen(
                [sys.executable, "-u", "-c", _SERVER_MAIN, str(theirs.fileno())],
                stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),), start_new_session=True,
                env=self._environment)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._socket = ours
        self._reader = gevent.spawn(self._read_records, ours)

    def _read_records(self, connection) -> None:
        buffer = b""
        try:
            while True:
                data = connection.recv(4096)
                if not data:
                    break
                buffer += data
                while len(buffer) >= _RECORD.size:
                    kind, pid, returncode = _RECORD.unpack_from(buffer)
                    buffer = buffer[_RECORD.size:]
                    if kind == b"S":
                        child = self._children[pid] = ForkedProcess(pid)
                        self._pending.popleft().set(child)
                    else:
                        self._children.pop(pid).exited(returncode)
        except OSError:
            pass
        # The server is gone, and its children with it (each dies with its parent).
        while self._pending:
            self._pending.popleft().set_exception(ForkServerDied("the fork server exited"))
        for child in self._children.values():
            child.exited(-signal.SIGKILL)
        self._children.clear()

    @property
    def pid(self) -> int | None:
        return None if self._server is None else self._server.pid

    def close(self) -> None:
        """Hang up: the server exits, killing any child still running; wait for that."""
        self._closed = True
        self._stop_server()

    def _stop_server(self) -> None:
        if self._server is None:
            return
        self._socket.close()
        self._reader.join()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._server.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            self._server.kill()
        self._server.wait()
        self._server = None


# --- The server process -------------------------------------------------------------------------

def _serve(control: socket.socket) -> int:
    from mr.executor import child  # the imports every child would otherwise make
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    own_fds = (control.fileno(), wake_read, wake_write)
    while True:
        readable, _, _ = select.select([control, wake_read], [], [])
        if wake_read in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 4096)
            _report_exits(control)
        if control in readable:
            request, fds, _, _ = socket.recv_fds(control, 1, 2)
            if not request:
                return 0  # the pool hung up
            pid = _fork(child.serve, fds, own_fds)
            for fd in fds:
                os.close(fd)
            control.sendall(_RECORD.pack(b"S", pid, 0))


def _fork(serve, fds: list[int], own_fds: tuple[int, ...]) -> int:
    """Fork a child that serves requests on ``fds`` in a session (process group) of its own."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in own_fds:
            os.close(fd)
        status = serve(*fds, parent)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(status)


def _report_exits(control: socket.socket) -> None:
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        control.sendall(_RECORD.pack(b"X", pid, os.waitstatus_to_exitcode(wait_status)))


def main(argv: list[str]) -> int:
    from mr.executor.child import die_with_parent
    die_with_parent()
    with socket.socket(fileno=int(argv[1])) as control:
        return _serve(control)

