"""fsspec's async filesystems (s3fs; gcsfs, adlfs and HTTP alike) in mr's gevent processes.

fsspec runs their coroutines on one asyncio loop in a thread of its own, and each blocking call
waits there for its coroutine. Under gevent's patching that thread is a greenlet of whichever
thread first made a call, and asyncio, which records the running loop per native thread, then
sees the loop running in every greenlet of that thread: fsspec refuses their calls ("Calling
sync() from within a running loop"), and calls from other native threads (mr.offload's pool)
wait for a loop that runs only while its thread's hub does. So the loop gets what fsspec means
it to have: a native thread, a native selector, and native threads for what asyncio runs off the
loop (aiobotocore builds TLS contexts there, aiohttp resolves host names); their results come
back through the loop, never through a gevent object shared between threads.

Importing this module is enough, before or after gevent patches. In a process that is not
patched (an executor child) the originals are what fsspec would use anyway. The threads never
delay the process's exit: Python does not wait for threads started this low.
"""
from __future__ import annotations

import asyncio
import os
from typing import Any, Callable

import fsspec.asyn
from gevent import monkey

#: Threads for the loop's blocking calls, started as calls come: what asyncio's default
#: executor would have.
EXECUTOR_THREADS = min(32, (os.cpu_count() or 1) + 4)

_start_native_thread = monkey.get_original("_thread", "start_new_thread")
_allocate_native_lock = monkey.get_original("_thread", "allocate_lock")
_NativeQueue = monkey.get_original("queue", "SimpleQueue")
_NativeSelector = monkey.get_original("selectors", "DefaultSelector")

_creating = _allocate_native_lock()


class _NativeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on a native selector whose default executor is native threads."""

    def __init__(self):
        super().__init__(_NativeSelector())
        self._blocking_calls = _NativeQueue()
        self._executor_threads = 0

    def run_in_executor(self, executor, function: Callable, *args: Any) -> asyncio.Future:
        """Like asyncio's; called on the loop's thread, as asyncio's own callers do."""
        if executor is not None:
            return super().run_in_executor(executor, function, *args)
        self._check_closed()
        future = self.create_future()
        self._blocking_calls.put((future, function, args))
        if self._executor_threads < EXECUTOR_THREADS:
            self._executor_threads += 1
            _start_native_thread(self._serve_blocking_calls, ())
        return future

    def close(self) -> None:
        super().close()
        for _ in range(self._executor_threads):
            self._blocking_calls.put(None)
        self._executor_threads = 0

    def _serve_blocking_calls(self) -> None:
        while (call := self._blocking_calls.get()) is not None:
            future, function, args = call
            try:
                outcome = (function(*args), None)
            except BaseException as error:  # the awaiting coroutine gets it
                outcome = (None, error)
            try:
                self.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:  # the loop was closed meanwhile: nobody awaits the result
                pass


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _native_loop() -> asyncio.AbstractEventLoop:
    """``fsspec.asyn.get_loop``'s replacement: the same one loop per process, on a native
    thread. fsspec forgets its loop in a forked child; the lock is renewed there too."""
    with _creating:
        if fsspec.asyn.loop[0] is None:
            loop = _NativeLoop()
            _start_native_thread(loop.run_forever, ())
            fsspec.asyn.loop[0] = loop
        return fsspec.asyn.loop[0]


def _renew_lock() -> None:
    global _creating
    _creating = _allocate_native_lock()


fsspec.asyn.get_loop = _native_loop
os.register_at_fork(after_in_child=_renew_lock)
