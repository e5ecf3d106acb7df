"""Running one invocation of a request's tree, with exactly-once effect.

A map invocation runs its step's mapper, whose first yield decides: ``MrConfigureToMap(step)``
branches (each following pair becomes a child map invocation of that step) and
``MrConfigureToReturn()`` returns (the pairs go through the step's combiner to its reducer).
When every child of a branching invocation is reduced, the branching step's reducer runs over
the union of the children's reduced pairs grouped by key; the root's reduced pairs are the
request's result.

Delivery is at least once, so every effect is idempotent (see ``docs/engine.rst``):

- Every commit compares the request record's ``version == 1``: nothing is committed for a
  finished request.
- A map invocation commits once, create-if-absent: a branch its record naming its stored
  children, a leaf reduced on another worker its record naming its combined pairs. Child ids
  derive from the parent's id and the child's position.
- A child's completion is a marker under its parent, created if absent, in the transaction that
  also rewrites the parent's completion counter with the child's id; the counter's version is
  the number of completed children, so exactly one child sees it reach the total and enqueues
  the parent's reduce, in O(1) whatever the number of siblings.
- A message that may have been handled before (a redelivery, or one published again) looks for
  its commit first and, if it finds one, only redoes what may be left: publishing children that
  have not completed, or the parent's reduce. Its handlers do not run again.
- Data is written under a fresh name before the commit that refers to it; what a lost race or a
  crash leaves behind is unreferenced and goes with the request.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from mr import codec
from mr.data.base import DataError
from mr.engine.dispatch import child_id
from mr.engine.errors import HandlerFailure, RequestFinished, engine_error
from mr.engine.messages import MAP, REDUCE, InvocationMessage
from mr.engine.results import Results
from mr.engine.shuffle import Partitioning
from mr.engine.trace import (DONE_PHASE, MAP_PHASE, CommitTrace, TraceRecorder, counted,
                             note_outcome, partition_phase, summed)
from mr.executor import Task
from mr.grouping import group_by_key, merge_groups
from mr.kv.base import Compare, Get, Put, RangeResult
from mr.models import Invocation, Request
from mr.models.request import INLINE_LIMIT_BYTES

if TYPE_CHECKING:
    from mr.engine.engine import Engine

#: The most one invocation may write to its session: sessions live in etcd, whose requests are
#: limited to 1.5 MiB, so a larger session could never commit.
SESSION_LIMIT_BYTES = 512 * 1024
#: Completion markers read per round trip when a branch's reducer gathers its children's results.
MARKER_PAGE_SIZE = 1000


class Tree:
    def __init__(self, engine: "Engine"):
        self.engine = engine
        self.kv = engine.kv
        self.data = engine.data
        self.keys = engine.keys
        self.dispatch = engine.dispatch
        self.shuffle = engine.shuffle
        self.results = Results(engine)
        self.traces = TraceRecorder(engine)

    def run(self, request: Request, invocation: InvocationMessage, recheck: bool) -> None:
        """Run one invocation; ``recheck``: it may have committed before, look first."""
        if recheck:
            if (self._redo_partition(request, invocation) if invocation.partition is not None
                    else self._redo(request, invocation)):
                return
            invocation = dataclasses.replace(invocation, redelivered=True)
        if invocation.kind == MAP:
            self._map(request, invocation)
        else:
            self._reduce(request, invocation)

    # Redelivery

    def _redo(self, request: Request, invocation: InvocationMessage) -> bool:
        """Finish what a committed invocation left undone; False if it never committed.

        What its commit called for is published again only if no delivery recorded that it
        was published: a message lost after that is the sweeper's to find."""
        parent = invocation.parent
        own = invocation.invocation_id
        reads = [Get(self.engine.request_key(request)), Get(self._record_key(request, own)),
                 Get(self._published_key(request, own, "children")),
                 Get(self._published_key(request, own, "reduce"))]
        if parent is not None:
            reads += [Get(self._marker_key(request, parent.invocation_id, own)),
                      Get(self._counter_key(request, parent.invocation_id)),
                      Get(self._published_key(request, parent.invocation_id, "reduce"))]
        current, record, children_published, reduce_published, *completion = \
            self.kv.txn([], reads).responses
        if not _still_running(current):
            return True  # finished meanwhile (the root's reduce is the request's completion)
        if completion and completion[0].kvs:  # reduced: at most the parent's reduce is left
            if _completed_last(completion[1], own, parent.children) and not completion[2].kvs:
                self._publish_parent_reduce(request, invocation, redelivered=True)
            return True
        if invocation.kind == REDUCE or not record.kvs:
            return False
        committed = Invocation.decode(own, record.kvs[0].value)
        if committed.combined_ref is not None and not reduce_published.kvs:
            self._publish_once(request, own, "reduce",
                               self.pending_after(request, invocation, committed))
        elif committed.children_ref is not None and not _all_published(children_published):
            self._publish_once(request, own, "children", self.pending_after(
                request, invocation, committed,
                published_through=_last_published(children_published)))
        return True

    def pending_after(self, request: Request, invocation: InvocationMessage,
                      record: Invocation, completed: set[str] | None = None,
                      published_through: str | None = None) -> list[InvocationMessage]:
        """The messages a committed, uncompleted map invocation still waits for: its reduce
        over combined pairs, its children that have not completed, or, when they all have, its
        own reduce. ``completed``: the ids of its completed children, if the caller read them;
        ``published_through``: a child up to which its children are known to be published
        (``_publish_once``): only those after it are pending."""
        own_reduce = self.dispatch.reduce_of(request, invocation.invocation_id, invocation.step,
                                             invocation.ancestors, data_ref=record.combined_ref,
                                             redelivered=True)
        if record.combined_ref is not None:
            return [own_reduce]
        pairs = self.data.get_pairs(record.children_ref)
        if completed is None:
            completed = self.completed_children(request, invocation.invocation_id)
        start = 0 if published_through is None else next(
            position + 1 for position in range(len(pairs))
            if child_id(invocation.invocation_id, position) == published_through)
        pending = [position for position in range(start, len(pairs))
                   if child_id(invocation.invocation_id, position) not in completed]
        if not pending:
            partitioning = self.shuffle.partitioning(request, invocation.invocation_id,
                                                     invocation.step)
            if partitioning is None:
                return [own_reduce]
            return self._partition_reduces(request, own_reduce, partitioning)
        return self.dispatch.children(request, invocation, record.mapped_step, pairs, pending,
                                      redelivered=True)

    def completed_children(self, request: Request, parent_id: str) -> set[str]:
        prefix = self.keys.completions(request.workflow, request.request_id, parent_id)
        return {kv.key[len(prefix):] for page in self.kv.pages(prefix, keys_only=True)
                for kv in page}

    # Map

    def _map(self, request: Request, invocation: InvocationMessage) -> None:
        mapper_name, combiner_name, _ = self.dispatch.step(request, invocation.step)
        parent = invocation.parent
        if parent is None and request.input is not None:  # one child per split of the input
            self._branch(request, invocation, invocation.step, self.shuffle.splits(request), {})
            return
        if parent is None and request.arguments is not None:  # small: in the request record
            pairs = request.arguments
        else:
            pairs = ([invocation.pair] if invocation.data_ref is None
                     else self.data.get_pairs(invocation.data_ref))
        if parent is not None and self.shuffle.is_split(request, parent.invocation_id):
            partitioning = self.shuffle.partitioning(request, parent.invocation_id, parent.step)
            sink = self._spill_sink(request, invocation, partitioning, combiner_name)
            outcome = self._run(request, invocation, mapper_name, [], {},
                                source={"splits": pairs[0][1]}, sink=sink)
            self._complete(request, invocation, outcome.written, outcome.session)
            return
        reducer = self._reducer_to_follow(request, invocation)
        outcome = self._run(request, invocation, mapper_name, pairs, {}, then=reducer)
        if outcome.directive["kind"] == "map":
            self._branch(request, invocation, outcome.directive["step"], outcome.pairs,
                         outcome.session)
        elif reducer is not None:  # a leaf, reduced by the same exchange with the executor
            self._complete_leaf(request, invocation, self._checked(
                request, invocation, reducer.handler_name, outcome.then), outcome.session)
        else:
            self._return(request, invocation, outcome.pairs, outcome.session)

    def _reducer_to_follow(self, request: Request,
                           invocation: InvocationMessage) -> Task | None:
        """The reducer the mapper's executor child runs right after it, should the mapper
        return its pairs (a leaf), as ``_return`` would: when no combiner comes between them and
        it needs no other capability than the mapper's."""
        _, combiner_name, reducer_name = self.dispatch.step(request, invocation.step)
        if combiner_name is not None or not self._reduces_here(request, invocation.step):
            return None
        return self._task(request, invocation, reducer_name, [], {},
                          sink=self._output_sink(request, invocation))

    def _reduces_here(self, request: Request, step: str) -> bool:
        """Whether a leaf of ``step`` is reduced by the worker that mapped it: its reducer
        needs no other capability than its mapper."""
        mapper_name, _, reducer_name = self.dispatch.step(request, step)
        return (self.dispatch.capability(request, reducer_name)
                == self.dispatch.capability(request, mapper_name))

    def _complete_leaf(self, request: Request, invocation: InvocationMessage, reduced,
                       session: dict) -> None:
        self._complete(request, invocation, _reduced(reduced), session,
                       counted_before={})  # a leaf: at the root, nothing else counted

    def _return(self, request: Request, invocation: InvocationMessage, pairs: list,
                session: dict) -> None:
        """A leaf whose reducer did not follow its mapper in the executor child: combine, then
        reduce here unless the reducer needs another capability."""
        _, combiner_name, reducer_name = self.dispatch.step(request, invocation.step)
        if combiner_name is None:
            combined = group_by_key(pairs)
        else:
            outcome = self._run(request, invocation, combiner_name, pairs, session)
            combined, session = merge_groups(outcome.pairs), outcome.session
        if self._reduces_here(request, invocation.step):
            self._complete_leaf(request, invocation, self._run(
                request, invocation, reducer_name, combined, session,
                sink=self._output_sink(request, invocation)), session)
            return
        record = self._commit_record(request, invocation, session, combined_ref=(
            self.dispatch.put_pairs(request.workflow, request.request_id,
                                    invocation.invocation_id, "combined", combined)))
        if record is not None:
            self._publish_once(request, invocation.invocation_id, "reduce", [
                self.dispatch.reduce_of(request, invocation.invocation_id, invocation.step,
                                        invocation.ancestors, data_ref=record.combined_ref)])

    def _branch(self, request: Request, invocation: InvocationMessage, target_step: str,
                pairs: list, session: dict) -> None:
        if target_step not in request.steps:
            raise HandlerFailure(invocation.invocation_id, engine_error(
                "UnknownStep", f"the mapper of step {invocation.step!r} maps to step "
                               f"{target_step!r}, which workflow {request.workflow!r} does not "
                               f"have"))
        if self._commit_record(
                request, invocation, session, mapped_count=len(pairs), mapped_step=target_step,
                children_ref=self.dispatch.put_pairs(request.workflow, request.request_id,
                                                     invocation.invocation_id, "children",
                                                     pairs)) is None:
            return
        if not pairs:  # nothing to wait for: the branch reducer runs over no results
            messages = [self.dispatch.reduce_of(request, invocation.invocation_id,
                                                invocation.step, invocation.ancestors)]
        else:
            messages = self.dispatch.children(request, invocation, target_step, pairs)
        self._publish_once(request, invocation.invocation_id, "children", messages)

    def _commit_record(self, request: Request, invocation: InvocationMessage, session: dict,
                       **fields) -> Invocation | None:
        """Commit a map invocation's record (with ``fields`` and its trace) and its session,
        unless another delivery did (it then publishes what the record calls for, or is
        redelivered and does) or the request finished meanwhile; the record, if committed."""
        session_writes = self._session_writes(request, invocation.invocation_id, session)
        traced = self.traces.commit(request, invocation.invocation_id, MAP_PHASE)
        record = Invocation(
            workflow=request.workflow, invocation_id=invocation.invocation_id,
            request_id=request.request_id,
            parent_invocation_id=invocation.parent.invocation_id if invocation.parent else None,
            step_name=invocation.step, direction=MAP, state="waiting",
            attempts=(traced.fields or {}).get("attempts", 0), trace=traced.fields, **fields)
        key = self._record_key(request, invocation.invocation_id)
        committed = self.kv.txn(
            [self._running(request), Compare(key, "version", "==", 0)],
            [Put(key, record.encode()), *session_writes, *traced.writes]).succeeded
        if not committed:
            return None
        self.traces.landed()
        return record

    # Reduce

    def _reduce(self, request: Request, invocation: InvocationMessage) -> None:
        _, _, reducer_name = self.dispatch.step(request, invocation.step)
        partitioning = (None if invocation.data_ref is not None else self.shuffle.partitioning(
            request, invocation.invocation_id, invocation.step))
        if partitioning is not None:
            if invocation.partition is None:
                self._fan_out(request, invocation, partitioning)
            else:
                self._reduce_partition(request, invocation, reducer_name, partitioning)
            return
        session, counted_before = self._stored_session(request, invocation.invocation_id,
                                                       counted=invocation.parent is None)
        if invocation.data_ref is not None:  # a leaf, combined on a worker of another capability
            results = self.data.get_pairs(invocation.data_ref)
        else:  # a branch: every child is reduced, and no marker changes any more
            prefix = self.keys.completions(request.workflow, request.request_id,
                                           invocation.invocation_id)
            results = group_by_key(pair for page in self.kv.pages(prefix, MARKER_PAGE_SIZE)
                                   for marker in page
                                   for pair in self._reduced_pairs(marker.value))
        outcome = self._run(request, invocation, reducer_name, results, session,
                            sink=self._output_sink(request, invocation))
        self._complete(request, invocation, _reduced(outcome), None, counted_before)

    def _stored_session(self, request: Request, invocation_id: str,
                        counted: bool = False) -> tuple[dict, dict | None]:
        """The session of a map invocation, for its reducer; with ``counted`` (at the root),
        also what the request's other commits counted, in the same read. The read is made only
        while the request runs (RequestFinished: nothing left to reduce for), so that a worker
        that has not seen the request finish writes no part or run for a request already
        removed, which nothing would ever remove."""
        prefix = self.keys.session(request.workflow, request.request_id, invocation_id)
        reads = [Get(prefix, prefix=True)]
        if counted:
            reads.append(Get(self.traces.counters_prefix(request), prefix=True))
        read = self.kv.txn([self._running(request)], reads)
        if not read.succeeded:
            raise RequestFinished()
        stored, *counters = read.responses
        return _session(prefix, stored), (
            summed(codec.decode(kv.value) for kv in counters[0].kvs) if counted else None)

    # Partitions

    def _fan_out(self, request: Request, invocation: InvocationMessage,
                 partitioning: Partitioning) -> None:
        """A partitioned branch's reduce: one reduce per partition not committed yet (all of
        them, but after a loss), or, when every one has, the branch's completion."""
        if invocation.redelivered and self.kv.get(
                self._published_key(request, invocation.invocation_id, "partitions")):
            return  # the partitions' own deliveries, or the sweeper, finish the work
        messages = self._partition_reduces(request, invocation, partitioning)
        if messages:
            self._publish_once(request, invocation.invocation_id, "partitions", messages)

    def _partition_reduces(self, request: Request, invocation: InvocationMessage,
                           partitioning: Partitioning) -> list[InvocationMessage]:
        """The reduces of a branch's uncommitted partitions; none when all are committed, in
        which case the branch is completed (again: completing is idempotent)."""
        committed = self._committed_partitions(request, invocation.invocation_id)
        if len(committed) == partitioning.partitions:
            self._complete_partitioned(request, invocation, committed)
            return []
        return [dataclasses.replace(invocation, partition=partition)
                for partition in range(partitioning.partitions) if partition not in committed]

    def _reduce_partition(self, request: Request, invocation: InvocationMessage,
                          reducer_name: str, partitioning: Partitioning) -> None:
        """Merge one partition's runs, of every child, into the reducer; commit what it wrote,
        once; the last partition to commit completes the branch."""
        prefix = self.keys.completions(request.workflow, request.request_id,
                                       invocation.invocation_id)
        runs = [run for page in self.kv.pages(prefix, MARKER_PAGE_SIZE) for marker in page
                for run in codec.decode(marker.value)["runs"][invocation.partition]]
        outcome = self._run(request, invocation, reducer_name, [],
                            self._stored_session(request, invocation.invocation_id)[0],
                            source=self.shuffle.runs_source(runs, partitioning),
                            sink=self._output_sink(request, invocation))
        traced = self.traces.commit(request, invocation.invocation_id,
                                    partition_phase(invocation.partition))
        _, last = self._count_completion(
            request, _partitions_id(invocation.invocation_id),
            _partition_name(invocation.partition),
            codec.encode(_with_trace(outcome.written, traced)), partitioning.partitions,
            traced.writes)
        if last:  # a duplicate too: its first delivery may have died before completing it
            self._complete_partitioned(request, invocation, self._committed_partitions(
                request, invocation.invocation_id))

    def _redo_partition(self, request: Request, invocation: InvocationMessage) -> bool:
        """As _redo, for a partition's reduce: committed, only the branch's completion may be
        left (to the partition that committed last)."""
        branch = _partitions_id(invocation.invocation_id)
        name = _partition_name(invocation.partition)
        current, marker, counter = self.kv.txn([], [
            Get(self.engine.request_key(request)),
            Get(self._marker_key(request, branch, name)),
            Get(self._counter_key(request, branch))]).responses
        if not _still_running(current):
            return True
        if not marker.kvs:
            return False
        partitions = self.shuffle.partitioning(request, invocation.invocation_id,
                                               invocation.step).partitions
        if _completed_last(counter, name, partitions):
            self._complete_partitioned(request, invocation, self._committed_partitions(
                request, invocation.invocation_id))
        return True

    def _committed_partitions(self, request: Request, branch_id: str) -> dict[int, dict]:
        """What each committed partition of a branch wrote, by partition."""
        prefix = self.keys.completions(request.workflow, request.request_id,
                                       _partitions_id(branch_id))
        return {int(kv.key[len(prefix):]): codec.decode(kv.value)
                for page in self.kv.pages(prefix) for kv in page}

    def _complete_partitioned(self, request: Request, invocation: InvocationMessage,
                              written: dict[int, dict]) -> None:
        """Complete a branch with what its partitions wrote: parts, or runs for its parent's
        own partitions."""
        ordered = [written[partition] for partition in sorted(written)]
        if ordered and "runs" in ordered[0]:
            result = {"runs": [[run for part in ordered for run in part["runs"][partition]]
                               for partition in range(len(ordered[0]["runs"]))]}
        else:
            result = {"parts": [part["path"] for part in ordered]}
        self._complete(request, dataclasses.replace(invocation, partition=None), result, None)

    def _spill_sink(self, request: Request, invocation: InvocationMessage,
                    partitioning: Partitioning, combiner_name: str | None = None) -> dict:
        """Where ``invocation``'s output goes under its partitioned parent: sorted runs, after
        the map-side combiner if it has one, partitioned by the step's partitioner if any."""
        def task(name: str | None) -> dict | None:
            return None if name is None else self._task(request, invocation, name, [],
                                                        {}).to_message()
        return self.shuffle.spill_sink(request, invocation.parent.invocation_id, partitioning,
                                       task(combiner_name), task(partitioning.partitioner))

    def _output_sink(self, request: Request, invocation: InvocationMessage) -> dict | None:
        """Where the reducer of ``invocation`` writes, when not back to the worker: the runs of
        its parent's partitions, the file writer's parts, or its own partition's part."""
        parent = invocation.parent
        if parent is not None:
            partitioning = self.shuffle.partitioning(request, parent.invocation_id, parent.step)
            if partitioning is not None:
                return self._spill_sink(request, invocation, partitioning)
        elif request.output is not None and "url" in request.output:
            return self.shuffle.output_sink(request, invocation.partition or 0)
        if invocation.partition is not None:
            return self.shuffle.part_sink(request, invocation.invocation_id,
                                          invocation.partition)
        return None

    def _complete(self, request: Request, invocation: InvocationMessage, result: list | dict,
                  session: dict | None, counted_before: dict | None = None) -> None:
        """Commit an invocation's result, with its trace, to its parent, or to the request at
        the root; the child that completes its parent's last child enqueues the parent's
        reduce. ``result``: the reduced pairs, or what the executor wrote (``{"runs"}`` for a
        partitioned parent, ``{"parts"}``). ``counted_before``: at the root, what the other
        commits of the request counted, if the caller read it (or knows it is nothing)."""
        session_writes = (self._session_writes(request, invocation.invocation_id, session)
                          if session else [])
        traced = self.traces.commit(request, invocation.invocation_id, DONE_PHASE)
        writes = [*session_writes, *traced.writes]
        parent = invocation.parent
        if parent is None:
            if counted_before is None:
                counted_before = counted(self.kv, self.keys, request)
            self.results.finish(self.traces.finished(request, invocation.invocation_id, traced,
                                                     counted_before),
                                invocation.invocation_id, result, writes)
            return
        if not isinstance(result, dict):
            result = {"pairs": result}
            if len(codec.encode(result)) > INLINE_LIMIT_BYTES:
                result = {"ref": self.dispatch.put_pairs(
                    request.workflow, request.request_id, invocation.invocation_id, "reduced",
                    result["pairs"])}
        committed, last = self._count_completion(
            request, parent.invocation_id, invocation.invocation_id,
            codec.encode(_with_trace(result, traced)), parent.children, writes)
        if last:  # a redelivery of the last child too: its first delivery committed and may
            # have died before publishing the parent's reduce (a duplicate reduce is harmless)
            self._publish_parent_reduce(request, invocation, redelivered=not committed)

    def _count_completion(self, request: Request, parent_id: str, child: str, value: bytes,
                          total: int, writes: list = ()) -> tuple[bool, bool]:
        """Commit ``child``'s completion marker under ``parent_id`` if absent, with ``writes``,
        and count it on the parent's counter. Returns whether this call committed it, and
        whether that completion was the ``total``-th: for a duplicate, whether its first
        delivery's was (it may have died before acting on it)."""
        marker = self._marker_key(request, parent_id, child)
        counter = self._counter_key(request, parent_id)
        committed = self.kv.txn(
            [self._running(request), Compare(marker, "version", "==", 0)],
            [Put(marker, value), *writes, Put(counter, child.encode(), prev_kv=True)],
            [Get(self.engine.request_key(request)), Get(counter)])
        if committed.succeeded:
            self.traces.landed()
            previous = committed.responses[-1].prev_kv
            return True, (previous.version if previous else 0) + 1 == total
        return False, _still_running(committed.responses[0]) and _completed_last(
            committed.responses[1], child, total)

    def _publish_parent_reduce(self, request: Request, invocation: InvocationMessage,
                               redelivered: bool) -> None:
        parent = invocation.parent
        self._publish_once(request, parent.invocation_id, "reduce", [self.dispatch.reduce_of(
            request, parent.invocation_id, parent.step, invocation.ancestors[1:],
            redelivered=redelivered)])

    def _publish_once(self, request: Request, invocation_id: str, what: str,
                      messages: list[InvocationMessage]) -> None:
        """Publish what a commit calls for, then record that it was published (an empty
        value). Between two batches of children the record names the last child published,
        so that a delivery again after a crash there publishes only the children after it
        (``_redo``): those published before are running, and must not run twice."""
        key = self._published_key(request, invocation_id, what)
        self.dispatch.publish(request, messages, on_batch=None if what != "children" else (
            lambda last: self.kv.put(key, last.invocation_id.encode())))
        self.kv.put(key, b"")

    def progress(self, request: Request) -> dict[str, int]:
        """How far a request has come, in map invocations: ``known``, the root and the children
        of every branch recorded so far; ``done``, the children reduced so far (each branch's
        completion counter counts them). One read, whatever the size of the tree; partition
        reduces and the root's own reduction are not counted."""
        run = self.keys.run(request.workflow, request.request_id)
        records, counters = self.kv.txn([], [
            Get(self.keys.entities(Invocation.kind, request.workflow, request.request_id),
                prefix=True),
            Get(f"{run}count/", prefix=True)]).responses
        known = 1 + sum(Invocation.decode(kv.key.rsplit("/", 1)[1], kv.value).mapped_count or 0
                        for kv in records.kvs)
        done = sum(kv.version for kv in counters.kvs
                   if not kv.key.endswith(_partitions_id("")))
        return {"done": done, "known": known}

    # Helpers

    def _reduced_pairs(self, marker_value: bytes) -> list:
        """A child's reduced pairs, from its completion marker or the data store it names."""
        reduced = codec.decode(marker_value)
        if "pairs" in reduced:
            return reduced["pairs"]
        if "parts" in reduced:
            return self.shuffle.read_parts(reduced["parts"])
        return self.data.get_pairs(reduced["ref"])

    def _task(self, request: Request, invocation: InvocationMessage, handler_name: str,
              inputs: list, session: dict, **plan) -> Task:
        version, code = self.dispatch.code(request, handler_name, invocation.invocation_id)
        return Task(workflow=request.workflow, handler_name=handler_name,
                    handler_version=version, source_type=code["source_type"],
                    source_code=code["source_code"], handler_type=code["handler_type"],
                    required_capability=code["required_capability"], inputs=inputs,
                    session=session, **plan)

    def _run(self, request: Request, invocation: InvocationMessage, handler_name: str,
             inputs: list, session: dict, source: dict | None = None,
             sink: dict | None = None, then: Task | None = None):
        """Run a handler; with a source or a sink, the executor child reads or writes the data
        itself (mr.executor.plans); ``then``: a reducer to run right after it, a mapper, should
        it return its pairs (ExecutorPool.run)."""
        outcome = self.engine.executor.run(
            self._task(request, invocation, handler_name, inputs, session, source=source,
                       sink=sink), timeout_s=self.engine.settings.invocation_timeout_s,
            then=then)
        return self._checked(request, invocation, handler_name, outcome)

    def _checked(self, request: Request, invocation: InvocationMessage, handler_name: str,
                 outcome):
        """A handler's outcome, its notices queued and its trace noted; DataError or
        HandlerFailure when it failed."""
        self.engine.notifier.queue_messages(request, invocation.invocation_id, handler_name,
                                            outcome.notices)
        note_outcome(handler_name, outcome)
        if not outcome.ok and outcome.error["kind"] == "data":  # the store's fault: an attempt
            raise DataError(f"handler {handler_name!r}: {outcome.error['message']}")
        if not outcome.ok:
            raise HandlerFailure(invocation.invocation_id, {
                **outcome.error, "handler": handler_name, "stdout": outcome.stdout,
                "stderr": outcome.stderr})
        return outcome

    def _session_writes(self, request: Request, invocation_id: str, session: dict) -> list:
        prefix = self.keys.session(request.workflow, request.request_id, invocation_id)
        writes = [Put(prefix + key, codec.encode(value)) for key, value in session.items()]
        size = sum(len(write.key) + len(write.value) for write in writes)
        if size > SESSION_LIMIT_BYTES:
            raise HandlerFailure(invocation_id, engine_error(
                "SessionTooLarge", f"the session of invocation {invocation_id} holds {size} "
                                   f"bytes; at most {SESSION_LIMIT_BYTES} fit (sessions live in "
                                   f"etcd: keep large values in the data, or in FS)"))
        return writes

    def _running(self, request: Request) -> Compare:
        return self.engine.running(request)

    def _record_key(self, request: Request, invocation_id: str) -> str:
        return self.keys.entity(Invocation.kind, request.workflow, invocation_id,
                                request.request_id)

    def _marker_key(self, request: Request, parent_id: str, invocation_id: str) -> str:
        return self.keys.completions(request.workflow, request.request_id,
                                     parent_id) + invocation_id

    def _published_key(self, request: Request, invocation_id: str, what: str) -> str:
        return self.keys.published(request.workflow, request.request_id, invocation_id, what)

    def _counter_key(self, request: Request, parent_id: str) -> str:
        return self.keys.completion_count(request.workflow, request.request_id, parent_id)


def _reduced(outcome) -> list | dict:
    """An invocation's result: its pairs, or the parts or runs its executor child wrote."""
    if outcome.written is None:
        return outcome.pairs
    return outcome.written if "runs" in outcome.written else {"parts": [outcome.written["path"]]}


def _session(prefix: str, stored: RangeResult) -> dict:
    return {kv.key[len(prefix):]: codec.decode(kv.value) for kv in stored.kvs}


def _with_trace(marker: dict, traced: CommitTrace) -> dict:
    """A completion marker's value: what was reduced, and the trace of the commit, if any."""
    return marker if traced.fields is None else {**marker, "trace": traced.fields}


def _partitions_id(branch_id: str) -> str:
    """Under which id the partitions of a branch count their completions, as children do."""
    return f"{branch_id}-partitions"


def _partition_name(partition: int) -> str:
    return f"{partition:05d}"  # sorted as numbers in the KV


def _completed_last(counter: RangeResult, invocation_id: str, children: int) -> bool:
    """Whether ``invocation_id`` is the child whose completion completed its parent, from a
    read of the parent's completion counter: its version counts the completions, its value
    names the latest. Only that child publishes the parent's reduce."""
    return bool(counter.kvs) and counter.kvs[0].version == children and \
        counter.kvs[0].value == invocation_id.encode()


def _all_published(published: RangeResult) -> bool:
    """Whether a publication record says that everything was published (an empty value)."""
    return bool(published.kvs) and not published.kvs[0].value


def _last_published(published: RangeResult) -> str | None:
    """The last child published before a crash between two batches, if that is what the
    record holds."""
    return published.kvs[0].value.decode() if published.kvs else None


def _still_running(request_range: RangeResult) -> bool:
    return bool(request_range.kvs) and request_range.kvs[0].version == 1
