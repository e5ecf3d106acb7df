"""The memory limit of executor children: how large it is, and how a child keeps to it.

The limit is ``RLIMIT_DATA``, set by each child on itself: allocation past it fails, which Python
reports as MemoryError, and processes the handler starts inherit it (each gets the same limit of
its own). It counts what a process can write to (heap, private mappings, thread stacks), not
address space it merely reserves: ``RLIMIT_AS`` counts the latter too, and runtimes reserve far
more than they use, so under it a JVM does not start with 2 GiB, a Go program with 512 MiB, or
node with 200 MiB, while under ``RLIMIT_DATA`` all three do. It needs no privilege, unlike a
cgroup.
"""
from __future__ import annotations

import mmap
import os
import resource

#: Set aside in each child and given back when a handler runs out of memory, so that its error
#: can still be reported (formatting a traceback allocates too).
RESERVE_BYTES = 4 << 20


def automatic_limit_mb(children: int) -> int:
    """An equal share of the machine's memory for every child, and one more for the worker and
    the rest of the machine: all children at their limit together cannot exhaust it."""
    return (_machine_memory_bytes() // (children + 1)) >> 20


def _machine_memory_bytes() -> int:
    """Physical memory, or the memory limit of this process's cgroup where lower (containers)."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return min([physical, *_cgroup_limits_bytes()])


def _cgroup_limits_bytes() -> list[int]:
    """The memory limits of this process's cgroup, v2 and v1 (none where unreadable or unset)."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError:
        return []
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if not controllers:
            limit_file = f"/sys/fs/cgroup{path}/memory.max"
        elif "memory" in controllers.split(","):
            limit_file = f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"
        else:
            continue
        try:
            with open(limit_file, encoding="utf-8") as file:
                text = file.read().strip()
        except OSError:
            continue
        if text.isdigit():  # v2 says "max" when there is no limit
            limits.append(int(text))
    return limits


def limit_memory(limit_mb: int) -> None:
    """In a child: allocate at most ``limit_mb`` MiB, for good (the hard limit is lowered too,
    so a handler cannot raise it), or the inherited hard limit if that is lower."""
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = limit_mb << 20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


class MemoryReserve:
    """Memory counted against the limit but never touched (so it costs no RAM), released when a
    handler runs out of memory. Spent once: the pool replaces a child after that."""

    def __init__(self):
        self._mapping = mmap.mmap(-1, RESERVE_BYTES, flags=mmap.MAP_PRIVATE)

    def release(self) -> None:
        self._mapping.close()
