"""Counters and a status line from handlers: ``increment_counter(group, name, n=1)`` and
``set_status(message)``, as in mrjob.

In the executor child, what an invocation's handlers report is collected while it runs
(:func:`collecting`) and sent back with its result; the worker commits it with the invocation,
and a request's counters are the sums over its invocations (``docs/tracing.rst``). Both are
bounded, since they end up in etcd with the invocation's completion.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

#: Distinct counters one invocation may have; one more fails the handler that adds it.
MAX_COUNTERS = 100
#: The longest counter group or name.
MAX_COUNTER_NAME_CHARS = 100
#: The most of a status line that is kept.
MAX_STATUS_CHARS = 1000


class Reports:
    """What the handlers of one invocation reported: counters by group and name, and the last
    status."""

    def __init__(self):
        self.counters: dict[str, dict[str, int]] = {}
        self.status: str | None = None
        self.size = 0

    def increment(self, group: str, name: str, n: int) -> None:
        for what, text in (("group", group), ("name", name)):
            if not isinstance(text, str) or not text or len(text) > MAX_COUNTER_NAME_CHARS:
                raise ValueError(f"increment_counter: the counter {what} must be a non-empty "
                                 f"str of at most {MAX_COUNTER_NAME_CHARS} characters, got "
                                 f"{text!r:.120}")
        if not isinstance(n, int) or isinstance(n, bool):
            raise ValueError(f"increment_counter: n must be an int, got {n!r:.120}")
        names = self.counters.setdefault(group, {})
        if name not in names:
            if self.size >= MAX_COUNTERS:
                raise ValueError(f"increment_counter: an invocation may have at most "
                                 f"{MAX_COUNTERS} counters; {group!r}/{name!r} would be one "
                                 f"more")
            self.size += 1
            names[name] = 0
        names[name] += n

    def set_status(self, message: str) -> None:
        self.status = str(message)[:MAX_STATUS_CHARS]

    def to_reply(self) -> dict:
        """The fields of the child's reply that carry them."""
        return {"counters": self.counters, "status": self.status}


_collected: Reports | None = None


@contextlib.contextmanager
def collecting() -> Iterator[Reports]:
    """What the handlers report while the block runs (one invocation at a time per child)."""
    global _collected
    _collected = reports = Reports()
    try:
        yield reports
    finally:
        _collected = None


def increment_counter(group: str, name: str, n: int = 1) -> None:
    """Add ``n`` to the counter ``name`` of ``group`` (summed over the request's invocations)."""
    if _collected is not None:
        _collected.increment(group, name, n)


def set_status(message: str) -> None:
    """Say what the invocation is doing; the last status it sets is kept with it."""
    if _collected is not None:
        _collected.set_status(message)
