"""Per-invocation capture of a handler's stdout and stderr, at the file-descriptor level.

For each invocation the pool makes two FIFOs and reads them while the handler runs; the child
points fds 1 and 2 at them, so ``print``, C extensions and subprocesses are all captured, and a
background process that outlives its invocation can only write into that invocation's FIFOs
(which nobody reads once it has ended: it gets EPIPE). The pool keeps the first
OUTPUT_LIMIT_BYTES of each stream and only counts the rest, so however much a handler prints,
nothing piles up in memory or on a disk; past a hard cap it stops the handler.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from typing import Iterator

import gevent
from gevent.monkey import get_original

from mr.executor.protocol import OUTPUT_LIMIT_BYTES, OUTPUT_NOTE_PREFIX

_libc = ctypes.CDLL(None)
_READ_SIZE = 1 << 16
_READABLE = 1  # libev's and libuv's EV_READ

# gevent's patched os.close (25.8+) defers closing a pipe until after the hub's next poll, and an
# otherwise idle hub blocks in that poll: the other end would wait for an EOF that never comes.
# Only for fds no greenlet waits on.
close_now = get_original("os", "close")


@contextlib.contextmanager
def redirected_output(stdout_path: str, stderr_path: str):
    """In the child: fds 1 and 2 write to the pool's two FIFOs until the block ends."""
    _flush_all()
    saved = [os.dup(1), os.dup(2)]
    try:
        for fd, path in ((1, stdout_path), (2, stderr_path)):
            target = os.open(path, os.O_WRONLY)  # at once: the pool holds the other end open
            os.dup2(target, fd)
            os.close(target)
        yield
    finally:
        _flush_all()
        for fd, original in zip((1, 2), saved):
            os.dup2(original, fd)
            os.close(original)


def _flush_all() -> None:
    """Push out what Python's and C's stdio buffers still hold, so it lands in the right FIFO."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):  # replaced or closed
            stream.flush()
    _libc.fflush(None)


class OutputExceeded(Exception):
    """Raised in the block of :meth:`InvocationOutput.reading` when the cap is passed."""


class InvocationOutput:
    """In the pool: one invocation's stdout and stderr, read from the FIFOs it makes at
    ``paths`` (for the child to open).

    Once the two streams together pass ``max_bytes``, ``exceeded`` is true and reading stops,
    so a handler that keeps writing blocks until it is stopped.
    """

    def __init__(self, paths: list[str], max_bytes: int):
        self.max_bytes = max_bytes
        self.exceeded = False
        self._streams: list[_Stream] = []
        try:
            for path in paths:
                self._streams.append(_Stream(path))
        except BaseException:
            self._close()
            raise

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """While the block runs, read whatever arrives; OutputExceeded is raised in the block
        when the cap is passed. Callbacks of the event loop, not greenlets: nothing to spawn."""
        waiting = gevent.getcurrent()
        loop = gevent.get_hub().loop
        watchers = [loop.io(stream.fd, _READABLE) for stream in self._streams]
        for watcher, stream in zip(watchers, self._streams):
            watcher.start(self._on_readable, stream, watchers, waiting)
        try:
            yield
        finally:
            for watcher in watchers:
                watcher.stop()
                watcher.close()

    def finish(self) -> tuple[str, ...]:
        """The text of each stream, with what was written until now (the FIFOs are drained), cut
        with a note past OUTPUT_LIMIT_BYTES; then removes the FIFOs. Called again, it returns the same text."""
        for stream in self._streams:
            while self._take(stream, stream.read_available()):
                pass
        self._close()
        return tuple(stream.text() for stream in self._streams)

    def _on_readable(self, stream: _Stream, watchers: list, waiting: gevent.Greenlet) -> None:
        if not self._take(stream, stream.read_available()) and self.exceeded:
            for watcher in watchers:
                watcher.stop()
            waiting.throw(OutputExceeded())  # as gevent.Timeout does, from the event loop

    def _take(self, stream: _Stream, data: bytes) -> bool:
        """Keep ``data``; whether to read on (there was some, and the cap is not passed)."""
        if self.exceeded:
            return False
        stream.keep(data)
        self.exceeded = sum(each.size for each in self._streams) > self.max_bytes
        return bool(data) and not self.exceeded

    def _close(self) -> None:
        for stream in self._streams:
            stream.close()


class _Stream:
    """A FIFO the pool reads, and what it read: the first OUTPUT_LIMIT_BYTES and the size."""

    def __init__(self, path: str):
        self.path = path
        os.mkfifo(path, 0o600)
        try:
            # Open for writing too: reading then never sees an end of file, neither before the
            # child opens its end nor after a writer closes it, and the child's open never waits.
            self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        except BaseException:
            os.unlink(path)
            raise
        self.kept = bytearray()
        self.size = 0

    def read_available(self) -> bytes:
        if self.fd is None:  # finished: nothing more to read
            return b""
        try:
            return os.read(self.fd, _READ_SIZE)
        except BlockingIOError:
            return b""

    def keep(self, data: bytes) -> None:
        self.size += len(data)
        self.kept += data[:OUTPUT_LIMIT_BYTES - len(self.kept)]

    def text(self) -> str:
        text = self.kept.decode("utf-8", errors="replace")
        if self.size > len(self.kept):
            text += (f"\n{OUTPUT_NOTE_PREFIX} {self.size} bytes written, the first "
                     f"{len(self.kept)} kept]\n")
        return text

    def close(self) -> None:
        """Close and remove the FIFO, once: a finished output is finished again by the pool's
        cleanup, and a second removal would only fail."""
        if self.fd is None:
            return
        close_now(self.fd)
        self.fd = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
