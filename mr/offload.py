"""Running CPU-heavy or blocking work beside the gevent event loop, not on it.

One event loop carries every in-flight message of a worker (their touches, NSQ's heartbeats) and
every request of a front end; while one greenlet decodes 50 MB or waits for a disk, none of the
others run. Such work goes to the hub's pool of native threads. Two caveats shape its callers:
a thread hop costs tens of microseconds, so small work stays inline; and a thread frees the loop
only while it does not hold the GIL, which one long C call (one ``msgpack.unpackb`` of 50 MB, one
``list.sort`` of a million keys) does for its whole duration, so the work must be cut into
short calls.

Only the loop's own greenlets hand work over. Anywhere else (a thread of the pool, the hub
itself, a process without a gevent hub, such as an executor child) the work runs inline: there is
no loop to protect, or nothing to switch to while waiting.
"""
from __future__ import annotations

import itertools
from typing import Callable, Iterable, TypeVar

import gevent
from gevent._hub_local import get_hub_if_exists  # unlike gevent.get_hub, never creates a hub
from gevent.hub import Hub

Result = TypeVar("Result")


def _loop_hub() -> Hub | None:
    """The hub whose loop the current greenlet runs on, if waiting on it frees that loop."""
    hub = get_hub_if_exists()
    if hub is None or not hub.main_hub or gevent.getcurrent() is hub:
        return None
    return hub


def run(function: Callable[..., Result], *args) -> Result:
    """``function(*args)`` in a native thread while the caller's greenlet waits; inline when the
    caller is not one of the event loop's greenlets. Exceptions reach the caller."""
    hub = _loop_hub()
    if hub is None:
        return function(*args)
    return hub.threadpool.apply(function, args)


def gathered(items: Iterable[Result], batch: int) -> list[Result]:
    """``list(items)``, letting the loop's other greenlets run after every ``batch`` items: what
    an iterator computes per item (decoding, reading) then never holds the loop for long."""
    if isinstance(items, list):
        return items
    iterator = iter(items)
    gathered_items: list[Result] = []
    while True:
        count = len(gathered_items)
        gathered_items.extend(itertools.islice(iterator, batch))
        if len(gathered_items) - count < batch:
            return gathered_items
        if _loop_hub() is not None:
            gevent.sleep(0)
