"""Resident memory of a cluster's processes and of everything they started (gunicorn's worker,
executor children, nginx's worker), read from /proc."""
from __future__ import annotations

import collections
import os
from pathlib import Path

from mr.devservers import ServerProcess

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def snapshot(processes: list[ServerProcess]) -> dict[str, tuple[int, int]]:
    """label -> (pid, resident KiB), for each process and each of its descendants; a child is
    labelled by its parent's name, its role and its rank among its siblings of that role."""
    children = _children_by_parent()
    sample: dict[str, tuple[int, int]] = {}

    def add(label: str, pid: int, own_role: str) -> None:
        sample[label] = (pid, _rss_kib(pid))
        ranks: collections.Counter = collections.Counter()
        for child in sorted(children.get(pid, ())):
            role = _role(child, own_role)
            ranks[role] += 1
            add(f"{label} > {role} {ranks[role]}", child, role)

    for process in processes:
        if process.pid:
            add(process.name, process.pid, process.name)
    return sample


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        children[int(fields[1])].append(int(stat.parent.name))
    return children


def _rss_kib(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
    except OSError:
        return 0


def _role(pid: int, parent_role: str) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "gone"
    if any("mr.executor.forkserver" in part for part in argv):  # children: forked, same argv
        return "executor" if parent_role == "executor fork server" else "executor fork server"
    if "gunicorn" in argv:
        return "gunicorn worker"
    if argv[0].startswith("nginx: "):
        return argv[0].removeprefix("nginx: ")
    return "child"


def growth_lines(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]],
                 threshold_kib: int) -> tuple[list[str], list[str]]:
    """One line per process (RSS before and after, in MiB), and the labels of those that grew
    by more than ``threshold_kib``."""
    lines, flagged = [], []
    for label in sorted(before.keys() | after.keys()):
        pid_before, kib_before = before.get(label, (0, 0))
        pid_after, kib_after = after.get(label, (0, 0))
        grew = kib_after - kib_before
        mark = ""
        if label in before and label in after and pid_before != pid_after:
            mark = f" (pid {pid_before} replaced by {pid_after})"
        elif label in before and label in after and grew > threshold_kib:
            mark = "  << GREW"
            flagged.append(label)
        lines.append(f"{label:32} pid {pid_after or pid_before:>7}  {kib_before / 1024:7.1f} -> "
                     f"{kib_after / 1024:7.1f} MiB  ({grew / 1024:+.1f}){mark}")
    return lines, flagged
