"""What every invocation records of itself, in the commits it makes anyway.

A worker running an invocation notes, as its handlers return, what they counted
(``increment_counter``), the status they set (``set_status``) and what they printed. Each commit
of the invocation then carries its *trace* — host, pid, delivery attempts, started and finished
times, status, and the data store path of its bounded output — in the value it writes (a
branch's record, a completion marker, the request record), and its counters, if any, in one
more key of the same transaction (``.../counters/<id>/<phase>``). So tracing costs no KV round
trip, and an invocation whose handlers neither count nor print adds only its trace, about a
hundred bytes, to each of its commits. ``mr.engine.trace_tree`` reads it all back
(``docs/tracing.rst``).
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Iterable, Iterator

from mr import codec
from mr.data.base import DataError
from mr.executor.protocol import Outcome, bounded_error
from mr.kv.base import KV, Put
from mr.models import Keys, Request

if TYPE_CHECKING:
    from mr.engine.engine import Engine

log = logging.getLogger(__name__)

HOST = socket.gethostname()
#: The phase of each commit, in its counters key: a map's record, a completion (of a leaf or
#: of a branch's reduce), and the failure that finished a request.
MAP_PHASE, DONE_PHASE, FAILED_PHASE = "map", "done", "failed"


def partition_phase(partition: int) -> str:
    return f"partition-{partition:05d}"


@dataclasses.dataclass
class InvocationTrace:
    """One delivery of an invocation while it runs, and what its handlers reported since its
    last commit."""
    attempts: int
    #: Set when it starts running (None: it failed before, waiting for a slot or a read).
    started_at: float | None = None
    counters: dict = dataclasses.field(default_factory=dict)
    status: str | None = None
    #: ``[label, text]`` of each stream a handler wrote to.
    output: list = dataclasses.field(default_factory=list)
    #: (counters, status, output) taken by the last commit, until it is known to have landed:
    #: when that commit fails, the failure records them instead.
    handed: tuple | None = None

    def add(self, handler_name: str, outcome: Outcome) -> None:
        add_counters(self.counters, outcome.counters)
        if outcome.status is not None:
            self.status = outcome.status
        for stream, text in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
            if text:
                self.output.append([f"{handler_name} {stream}", text])

    def hand_over(self) -> tuple[dict, str | None, list]:
        """Take what the handlers reported, for one commit."""
        self.handed = (self.counters, self.status, self.output)
        self.counters, self.status, self.output = {}, None, []
        return self.handed

    def take_back(self) -> None:
        """What the last commit took did not land: it is reported again."""
        if self.handed is not None:
            counters, status, output = self.handed
            self.counters = add_counters(counters, self.counters)
            self.status = status if self.status is None else self.status
            self.output = output + self.output
            self.handed = None

    def where(self) -> dict:
        """Where and since when it runs: the value of its ``active`` key."""
        return {"host": HOST, "pid": os.getpid(), "attempts": self.attempts,
                "started_at": self.started_at}


_running: contextvars.ContextVar[InvocationTrace | None] = contextvars.ContextVar(
    "mr_invocation_trace", default=None)


@contextlib.contextmanager
def recording(trace: InvocationTrace) -> Iterator[InvocationTrace]:
    """Record what the invocation run in this block (this greenlet) does, from now."""
    trace.started_at = time.time()
    token = _running.set(trace)
    try:
        yield trace
    finally:
        _running.reset(token)


def note_outcome(handler_name: str, outcome: Outcome) -> None:
    """A handler of the invocation being recorded returned (no-op outside :func:`recording`)."""
    trace = _running.get()
    if trace is not None:
        trace.add(handler_name, outcome)


def add_counters(total: dict, counters: dict) -> dict:
    """Add ``counters`` (group -> name -> n) into ``total``; returns ``total``."""
    for group, names in counters.items():
        into = total.setdefault(group, {})
        for name, n in names.items():
            into[name] = into.get(name, 0) + n
    return total


def summed(all_counters: Iterable[dict]) -> dict:
    total: dict = {}
    for counters in all_counters:
        add_counters(total, counters)
    return total


def counted(kv: KV, keys: Keys, request: Request) -> dict:
    """What the invocations of ``request`` counted in the commits made so far (one read)."""
    return summed(codec.decode(stored.value) for stored in kv.range(
        keys.counters(request.workflow, request.request_id), prefix=True).kvs)


@dataclasses.dataclass(frozen=True)
class CommitTrace:
    """What one commit records: the trace in its value (None when nothing is being recorded,
    as when the sweeper completes a branch), the writes beside it, and what it counted."""
    fields: dict | None = None
    writes: tuple = ()
    counters: dict = dataclasses.field(default_factory=dict)


class TraceRecorder:
    def __init__(self, engine: "Engine"):
        self.engine = engine

    def commit(self, request: Request, invocation_id: str, phase: str,
               trace: InvocationTrace | None = None) -> CommitTrace:
        """The trace of a commit of ``invocation_id`` (default: of the invocation being
        recorded). What the handlers reported is handed to this commit: a second commit of the
        same delivery (a branch completed by its last partition) does not repeat it, unless the
        first did not land (:meth:`landed`)."""
        trace = trace or _running.get()
        if trace is None:
            return CommitTrace()
        counters, status, output = trace.hand_over()
        fields = {**trace.where(), "finished_at": time.time()}
        if status is not None:
            fields["status"] = status
        if output and self.engine.settings.invocation_log_bytes:
            fields["log"] = self._store_output(request, invocation_id, output)
        writes = (Put(f"{self.counters_prefix(request)}{invocation_id}/{phase}",
                      codec.encode(counters)),) if counters else ()
        return CommitTrace(fields, writes, counters)

    @staticmethod
    def landed() -> None:
        """The commit of the invocation being recorded succeeded: what it took is recorded."""
        trace = _running.get()
        if trace is not None:
            trace.handed = None

    def finished(self, request: Request, root_id: str, traced: CommitTrace,
                 counted_before: dict) -> Request:
        """``request`` with what its root's last commit records on it: its trace, and the
        counters of the whole request (``counted_before``: what the other commits counted)."""
        return request.replace(
            counters=add_counters(counted_before, traced.counters) or None,
            finished_by=traced.fields and {"invocation_id": root_id, **traced.fields})

    def failure(self, request: Request, invocation_id: str,
                trace: InvocationTrace | None = None) -> dict:
        """What :meth:`Engine.finish` records of the invocation that failed ``request``: its
        trace and output (if they can be stored now) and what it counted."""
        trace = trace or _running.get()
        if trace is None:
            return {}
        trace.take_back()
        try:
            traced = self.commit(request, invocation_id, FAILED_PHASE, trace)
        except DataError as error:  # its output cannot be kept: the failure is recorded anyway
            log.warning("the output of invocation %s cannot be stored (%s)", invocation_id, error)
            trace.take_back()
            trace.output = []
            traced = self.commit(request, invocation_id, FAILED_PHASE, trace)
        return {"finished_by": {"invocation_id": invocation_id, **traced.fields},
                "writes": list(traced.writes)}

    def counters_prefix(self, request: Request) -> str:
        return self.engine.keys.counters(request.workflow, request.request_id)

    def _store_output(self, request: Request, invocation_id: str, output: list) -> str:
        """Keep the output, cut to MR_INVOCATION_LOG_BYTES in all, in the data store, under the
        request (so it goes with it); its path."""
        texts = bounded_error({number: text for number, (_, text) in enumerate(output)},
                              self.engine.settings.invocation_log_bytes)
        entries = [[label, texts[number]] for number, (label, _) in enumerate(output)]
        return self.engine.dispatch.put_encoded(request.workflow, request.request_id,
                                                invocation_id, "log", codec.encode(entries))
