"""A request's tree of invocations, read back from its record and its run state.

Everything comes from two reads: the request record, and its run prefix
``P/wf/<wf>/run/<id>/`` (paged): branch records, completion markers and their traces, counters,
and the ``active`` keys of long invocations. The tree is rebuilt from the records, since child
ids derive from their parent's id and position: every child of a recorded branch is known
before it runs. An invocation with a completion is done; one of a running request without
one is running (its map committed, or a worker marked it active) or queued; one of a finished
request without one never finished: it failed (the invocation that failed the request, and the
branches above it: the failed path) or was cancelled.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterator

from mr import codec
from mr.engine.dispatch import child_id
from mr.engine.trace import DONE_PHASE, FAILED_PHASE, MAP_PHASE, partition_phase, summed
from mr.engine.tracker import TERMINAL_STATES
from mr.models import Invocation, Request

#: The states of an invocation in a trace.
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
#: Run-state keys read per round trip.
PAGE_SIZE = 1000


@dataclasses.dataclass
class Run:
    """One committed part of an invocation's work (or, ``running``, the one going on)."""
    phase: str  # map, reduce, map and reduce, partition reduce, failed, running
    host: str | None = None
    pid: int | None = None
    attempts: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    status: str | None = None
    #: Where its handlers' output is in the data store.
    log: str | None = None
    counters: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, phase: str, trace: dict | None, counters: dict | None = None) -> "Run":
        trace = trace or {}
        return cls(phase, *(trace.get(field) for field in (
            "host", "pid", "attempts", "started_at", "finished_at", "status", "log")),
            counters=counters or {})


@dataclasses.dataclass
class Node:
    """One invocation (or one partition reduce of a branch) and its subtree."""
    invocation_id: str
    step: str
    state: str = QUEUED
    kind: str = "leaf"  # leaf, branch or partition
    partition: int | None = None
    queued_at: float | None = None
    runs: list[Run] = dataclasses.field(default_factory=list)
    children: list["Node"] = dataclasses.field(default_factory=list)
    #: It failed, or it is a branch above the invocation that failed its request.
    on_failed_path: bool = False
    #: The request's error, on the invocation that failed it.
    error: dict | None = None
    #: When it failed: when its request did.
    failed_at: float | None = None

    @property
    def started_at(self) -> float | None:
        return next((run.started_at for run in self.runs if run.started_at), None)

    @property
    def finished_at(self) -> float | None:
        if self.state == FAILED:
            return self.failed_at
        return self.runs[-1].finished_at if self.state == DONE and self.runs else None

    @property
    def last_run(self) -> Run | None:
        return self.runs[-1] if self.runs else None

    @property
    def attempts(self) -> int:
        return max((run.attempts or 0 for run in self.runs), default=0)

    @property
    def status(self) -> str | None:
        return next((run.status for run in reversed(self.runs) if run.status), None)

    @property
    def counters(self) -> dict:
        return summed(run.counters for run in self.runs)

    @property
    def label(self) -> str:
        """How the node is named to people: its id, or its branch's and its partition."""
        if self.partition is None:
            return self.invocation_id
        return f"{self.invocation_id}/partition-{self.partition}"

    def duration_s(self, now: float | None = None) -> float | None:
        """From its start to its end (to ``now`` while it runs)."""
        if self.started_at is None:
            return None
        end = self.finished_at or (now if self.state == RUNNING else None)
        return None if end is None else max(end - self.started_at, 0.0)

    def walk(self) -> Iterator["Node"]:
        """This node and every node below it, depth first, in order."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def to_dict(self) -> dict[str, Any]:
        return {"invocation_id": self.invocation_id, "step": self.step, "kind": self.kind,
                **({"partition": self.partition} if self.partition is not None else {}),
                "state": self.state, "queued_at": self.queued_at,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "attempts": self.attempts, "status": self.status, "counters": self.counters,
                "on_failed_path": self.on_failed_path,
                **({"error": self.error} if self.error else {}),
                "runs": [dataclasses.asdict(run) for run in self.runs],
                "children": [child.to_dict() for child in self.children]}


@dataclasses.dataclass
class RequestTrace:
    request: Request
    root: Node
    #: Done: as the request record holds them; else what was committed so far.
    counters: dict

    def find(self, invocation_id: str) -> list[Node]:
        """The nodes of one invocation: itself and, for a branch, its partition reduces."""
        return [node for node in self.root.walk() if node.invocation_id == invocation_id]

    def to_dict(self) -> dict[str, Any]:
        request = self.request
        return {"request_id": request.request_id, "workflow": request.workflow,
                "job": request.job_name, "state": request.state,
                "created_at": request.created_at, "finished_at": request.finished_at,
                "counters": self.counters, "root": self.root.to_dict()}


@dataclasses.dataclass
class _RunState:
    """A request's run prefix, sorted out by kind of key."""
    records: dict[str, Invocation] = dataclasses.field(default_factory=dict)
    #: parent id -> child id -> marker (``<branch>-partitions`` -> partition number -> marker)
    markers: dict[str, dict[str, dict]] = dataclasses.field(default_factory=dict)
    active: dict[str, dict] = dataclasses.field(default_factory=dict)
    #: invocation id -> phase -> counters
    counters: dict[str, dict[str, dict]] = dataclasses.field(default_factory=dict)

    def add(self, relative_key: str, value: bytes) -> None:
        kind, _, rest = relative_key.partition("/")
        if kind == "invocation":
            self.records[rest] = Invocation.decode(rest, value)
        elif kind == "done":
            parent, child = rest.split("/")
            self.markers.setdefault(parent, {})[child] = codec.decode(value)
        elif kind == "active":
            self.active[rest] = codec.decode(value) if value else {}
        elif kind == "counters":
            invocation_id, phase = rest.split("/")
            self.counters.setdefault(invocation_id, {})[phase] = codec.decode(value)

    def phase_counters(self, invocation_id: str, phase: str) -> dict:
        return self.counters.get(invocation_id, {}).get(phase, {})


def read_trace(engine, workflow: str, request_id: str) -> RequestTrace:
    """The trace of a request; NotFoundError if it does not exist (any more)."""
    request = engine.store.get(Request, workflow, request_id)
    prefix = engine.keys.run(workflow, request_id)
    state = _RunState()
    for page in engine.kv.pages(prefix, PAGE_SIZE):
        for stored in page:
            state.add(stored.key[len(prefix):], stored.value)
    root = _Builder(engine, request, state).build()
    counters = (request.counters or {} if request.state == DONE
                else summed(counters for phases in state.counters.values()
                            for counters in phases.values()))
    return RequestTrace(request, root, counters)


class _Builder:
    def __init__(self, engine, request: Request, state: _RunState):
        self.engine = engine
        self.request = request
        self.state = state
        self.finished = request.state in TERMINAL_STATES
        self.failed_id = request.failed_invocation_id if request.state == FAILED else None

    def build(self) -> Node:
        request = self.request
        root = Node(request.root_invocation_id, request.root_step or "",
                    queued_at=request.created_at)
        parents: dict[str, Node] = {}
        stack: list[tuple[Node, Node | None]] = [(root, None)]
        while stack:
            node, parent = stack.pop()
            if parent is not None:
                parents[node.invocation_id] = parent
            self._fill(node, parent)
            stack.extend((child, node) for child in reversed(node.children)
                         if child.kind != "partition")
        self._mark_failed_path(root, parents)
        return root

    def _fill(self, node: Node, parent: Node | None) -> None:
        """The node's runs, state and children, from its record and its completion."""
        state, own = self.state, node.invocation_id
        record = state.records.get(own)
        if parent is None:  # the root completes the request: its record holds the trace
            completion = self.request.finished_by if self.request.state == DONE else None
            completed = self.request.state == DONE
        else:
            marker = state.markers.get(parent.invocation_id, {}).get(own)
            completion, completed = (marker or {}).get("trace"), marker is not None
        if record is not None:
            node.runs.append(Run.of(MAP_PHASE, record.trace,
                                    state.phase_counters(own, MAP_PHASE)))
        if completed:
            node.runs.append(Run.of("reduce" if record else "map and reduce", completion,
                                    state.phase_counters(own, DONE_PHASE)))
        node.state = self._state(own, completed, record is not None)
        if node.state == FAILED and own == self.failed_id:
            node.error = self.request.error
            failure = self.request.finished_by or {}
            if failure.get("invocation_id") == own:
                node.runs.append(Run.of(FAILED_PHASE, failure,
                                        state.phase_counters(own, FAILED_PHASE)))
        if node.state == RUNNING and own in state.active:
            node.runs.append(Run.of(RUNNING, state.active[own]))
        if record is not None and record.mapped_count is not None:
            node.kind = "branch"
            queued_at = (record.trace or {}).get("finished_at")
            node.children = [Node(child_id(own, position), record.mapped_step or "",
                                  queued_at=queued_at)
                             for position in range(record.mapped_count)]
            node.children += self._partitions(node)

    def _state(self, invocation_id: str, completed: bool, recorded: bool) -> str:
        if completed:
            return DONE
        if invocation_id == self.failed_id:
            return FAILED
        if self.finished:
            return CANCELLED
        return RUNNING if recorded or invocation_id in self.state.active else QUEUED

    def _partitions(self, branch: Node) -> list[Node]:
        """The partition reduces of a branch reduced in partitions, once its children are all
        done (or any partition committed)."""
        partitioning = self.engine.shuffle.partitioning(self.request, branch.invocation_id,
                                                        branch.step)
        markers = self.state.markers.get(f"{branch.invocation_id}-partitions", {})
        children_done = bool(self.state.markers.get(branch.invocation_id)) and len(
            self.state.markers[branch.invocation_id]) == len(branch.children)
        if partitioning is None or not (markers or children_done):
            return []
        queued_at = max((child.get("trace", {}).get("finished_at") or 0 for child in
                         self.state.markers.get(branch.invocation_id, {}).values()),
                        default=None) if children_done else None
        partitions = []
        for number in range(partitioning.partitions):
            node = Node(branch.invocation_id, branch.step, kind="partition", partition=number,
                        queued_at=queued_at or None)
            marker = markers.get(f"{number:05d}")
            if marker is not None:
                node.runs.append(Run.of("partition reduce", marker.get("trace"),
                                        self.state.phase_counters(branch.invocation_id,
                                                                  partition_phase(number))))
            node.state = DONE if marker is not None else (CANCELLED if self.finished
                                                          else QUEUED)
            partitions.append(node)
        return partitions

    def _mark_failed_path(self, root: Node, parents: dict[str, Node]) -> None:
        """The invocation that failed the request, and every branch above it, are failed."""
        if self.failed_id is None:
            return
        node = next((node for node in root.walk() if node.invocation_id == self.failed_id
                     and node.kind != "partition"), None)
        while node is not None:
            node.on_failed_path = True
            if node.state != DONE:
                node.state, node.failed_at = FAILED, self.request.finished_at
            node = parents.get(node.invocation_id)


# Collapsing: a wide request drawn in a readable size


@dataclasses.dataclass
class Collapsed:
    """A run of sibling leaves shown as one: how many, in which states, how long they took."""
    step: str
    nodes: list[Node]

    @property
    def first_id(self) -> str:
        return self.nodes[0].invocation_id

    @property
    def states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.state] = counts.get(node.state, 0) + 1
        return counts

    def durations(self) -> dict[str, float] | None:
        """p50, p90 and max of the finished leaves' durations, in seconds (nearest rank)."""
        durations = sorted(duration for node in self.nodes
                           if (duration := node.duration_s()) is not None and node.finished_at)
        if not durations:
            return None
        return {"p50": _percentile(durations, 50), "p90": _percentile(durations, 90),
                "max": durations[-1]}


def _percentile(ordered: list[float], percent: int) -> float:
    return ordered[max(math.ceil(len(ordered) * percent / 100) - 1, 0)]


def shown_children(node: Node, collapse_over: int) -> list[Node | Collapsed]:
    """The children of ``node`` as they are shown: each run of more than ``collapse_over``
    consecutive leaves of one step, none on the failed path, as one :class:`Collapsed` (0:
    never)."""
    shown: list[Node | Collapsed] = []
    run: list[Node] = []

    def flush() -> None:
        if collapse_over and len(run) > collapse_over:
            shown.append(Collapsed(run[0].step, list(run)))
        else:
            shown.extend(run)
        run.clear()

    for child in node.children:
        if child.kind == "leaf" and not child.on_failed_path and (
                not run or run[0].step == child.step):
            run.append(child)
            continue
        flush()
        if child.kind == "leaf" and not child.on_failed_path:
            run.append(child)
        else:
            shown.append(child)
    flush()
    return shown


def elapsed(seconds: float | None) -> str:
    """A duration for people: ``850 µs``, ``12 ms``, ``3.4 s``, ``2 min 5 s``."""
    if seconds is None:
        return "-"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.{1 if seconds >= 10 else 2}f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"

