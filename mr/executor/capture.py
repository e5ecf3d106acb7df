"""Per-invocation capture of a handler's stdout and stderr, at the file-descriptor level.

The child points fds 1 and 2 at files named by the pool for each invocation, so ``print``, C
extensions and subprocesses are all captured, and a background process that outlives its
invocation keeps writing to that invocation's file, never the next one's. The pool reads the
files, so output written before a timeout or a crash is kept too.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys

from mr.executor.protocol import OUTPUT_LIMIT_BYTES

_libc = ctypes.CDLL(None)


@contextlib.contextmanager
def redirected_output(stdout_path: str, stderr_path: str):
    """In the child: fds 1 and 2 write to the two files until the block ends."""
    _flush_all()
    saved = [os.dup(1), os.dup(2)]
    try:
        for fd, path in ((1, stdout_path), (2, stderr_path)):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        yield
    finally:
        _flush_all()
        for fd, original in zip((1, 2), saved):
            os.dup2(original, fd)
            os.close(original)


def _flush_all() -> None:
    """Push out what Python's and C's stdio buffers still hold, so it lands in the right file."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):  # replaced or closed
            stream.flush()
    _libc.fflush(None)


def collect_output(path: str) -> str:
    """In the pool: the captured text, cut to OUTPUT_LIMIT_BYTES with a note; removes the file."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            data = file.read(OUTPUT_LIMIT_BYTES)
    except FileNotFoundError:  # the child died before it opened the file
        return ""
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    text = data.decode("utf-8", errors="replace")
    if size > OUTPUT_LIMIT_BYTES:
        text += f"\n[mr: output truncated: {size} bytes written, the first {len(data)} kept]\n"
    return text
