"""The engine: accepts requests and runs their invocation trees, with exactly-once effect.

A request is a tree of invocations. A map invocation runs its step's mapper, whose first yield
decides: ``MrConfigureToMap(step)`` branches (each following pair becomes a child map invocation
of that step) and ``MrConfigureToReturn()`` returns (the pairs go through the step's combiner to
its reducer). When every child of a branching invocation is reduced, the branching step's
reducer runs over the union of the children's reduced pairs grouped by key; the root's reduced
pairs are the request's result.

Delivery is at least once, so every effect is made idempotent (see ``docs/engine.rst``):

- The request record is created with KV version 1 and rewritten exactly once, when it finishes
  (done, failed or cancelled). Every commit compares ``version == 1``: work for a finished
  request is never committed.
- A branching invocation commits one record (create-if-absent) naming its stored children; a
  redelivery finds it and publishes the same children (child ids are derived from the parent's
  id and the child's position), instead of running the mapper again.
- A child's completion is a marker key under its parent, created if absent, in a transaction
  that also counts the markers. Exactly one transaction counts the last child; that one enqueues
  the parent's reduce.
- Data is written under a fresh name before the commit that refers to it; what a lost race or a
  crash leaves behind is unreferenced and goes with the request.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time
import uuid
from typing import Any, Iterator

import gevent

from mr import codec
from mr.data.base import DataError, DataStore
from mr.engine.errors import HandlerFailure, RequestFinished, ServiceUnavailable
from mr.engine.grouping import group_by_key, merge_groups
from mr.engine.messages import MAP, REDUCE, Ancestor, InvocationMessage
from mr.engine.tracker import TERMINAL_STATES, RequestTracker
from mr.executor import ExecutorPool, Task
from mr.kv.base import KV, Compare, Delete, Get, KVError, Put
from mr.models import (EntityStore, Handler, Invocation, Job, NotFoundError, Request, Step,
                       ValidationError)
from mr.models.base import new_id
from mr.models.keys import Keys
from mr.models.names import topic_name
from mr.queue.base import Message, Queue, QueueError, failure_backoff_s
from mr.settings import Settings

log = logging.getLogger(__name__)

#: A child's argument pair larger than this (encoded) goes to the data store, not the message.
INLINE_PAIR_LIMIT_BYTES = 64 * 1024
#: A child's reduced pairs up to this size (encoded) ride in its completion marker, saving a
#: data store write and read per child; kept small because the marker lives in etcd.
INLINE_RESULT_LIMIT_BYTES = 1024
#: Messages per multi-publish, and their total size, kept under nsqd's default body limit.
PUBLISH_BATCH_COUNT = 1000
PUBLISH_BATCH_BYTES = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Definitions:
    """A workflow's definitions as a request pins them, at the marker revision they were read."""
    revision: int
    jobs: dict[str, str]  # job -> initial step
    steps: dict[str, list]  # step -> [map, combine or None, reduce]
    versions: dict[str, str]  # handler -> version


def child_id(parent_id: str, position: int) -> str:
    """The id of a branching invocation's child: the same on every redelivery of the parent."""
    return hashlib.sha256(f"{parent_id}/{position}".encode()).hexdigest()[:32]


class Engine:
    def __init__(self, settings: Settings, kv: KV, queue: Queue, data: DataStore,
                 executor: ExecutorPool | None = None):
        self.settings = settings
        self.kv = kv
        self.queue = queue
        self.data = data
        self.executor = executor
        self.keys = Keys(settings.kv_prefix)
        self.store = EntityStore(kv, settings.kv_prefix)
        self.requests = RequestTracker(kv, self.keys)
        self.requests.on_finish.append(self._stop_invocations)
        #: The greenlets running invocations, by (workflow, request id).
        self._in_progress: dict[tuple[str, str], set[gevent.Greenlet]] = {}
        self._code_cache: dict[tuple[str, str], dict] = {}
        self._definitions_cache: dict[str, Definitions] = {}
        for workflow in settings.workflow_names:
            self.requests.start(workflow)

    # Requests (the front end's side)

    def submit(self, workflow: str, job_name: str, arguments: dict[str, Any], *,
               blocking: bool, context: dict[str, Any] | None = None) -> Request:
        """Accept a request: pin the workflow's steps and handler versions, store the
        arguments, record the request and enqueue its root invocation."""
        self._check_served(workflow)
        definitions = self._definitions(workflow)
        initial_step = definitions.jobs.get(job_name)
        if initial_step is None:
            raise NotFoundError(f"job {job_name!r} of workflow {workflow!r} does not exist")
        request_id, root_id = new_id(), new_id()
        try:
            arguments_ref = self._put_pairs(workflow, request_id, root_id, "arguments",
                                            [[key, value] for key, value in arguments.items()])
        except codec.CodecError as error:
            raise ValidationError(f"the arguments cannot be stored: {error}") from None
        request = self.store.create(Request(
            workflow=workflow, request_id=request_id, job_name=job_name,
            root_invocation_id=root_id, state="running", blocking=blocking,
            context=context or {}, handler_versions=definitions.versions,
            steps=definitions.steps))
        root = InvocationMessage(workflow, request_id, root_id, MAP, initial_step,
                                 data_ref=arguments_ref)
        try:
            self._publish(request, [root])
        except HandlerFailure as failure:  # the definitions cannot route it: an answer, not a bug
            self._finish(request, "failed", failed_invocation_id=root_id, error=failure.error)
        except QueueError as error:
            self._finish(request, "failed", error=_error("QueueUnavailable", str(error)))
            raise ServiceUnavailable(f"the request could not be queued: {error}") from None
        return request

    def _definitions(self, workflow: str) -> "Definitions":
        """The workflow's jobs, steps and handler versions as they are now: one small read
        of the definitions marker when the cached copy is current, one transaction otherwise."""
        marker_key = self.keys.definitions(workflow)
        marker = self.kv.get(marker_key)
        cached = self._definitions_cache.get(workflow)
        if cached is not None and marker is not None and cached.revision == marker.mod_revision:
            return cached
        snapshot = self.kv.txn([], [
            Get(self.keys.workflow(workflow)), Get(marker_key),
            *(Get(self.store.collection(cls, workflow), prefix=True)
              for cls in (Job, Step, Handler))]).responses
        if not snapshot[0].kvs:
            raise NotFoundError(f"workflow {workflow!r} does not exist")
        jobs, steps, handlers = ([cls.decode(kv.key.rsplit("/", 1)[1], kv.value) for kv in
                                  listing.kvs]
                                 for cls, listing in zip((Job, Step, Handler), snapshot[2:]))
        definitions = Definitions(
            revision=snapshot[1].kvs[0].mod_revision if snapshot[1].kvs else 0,
            jobs={job.name: job.initial_step_name for job in jobs},
            steps={step.name: [step.map_handler_name, step.combine_handler_name,
                               step.reduce_handler_name] for step in steps},
            versions={handler.name: handler.version for handler in handlers})
        self._definitions_cache[workflow] = definitions
        return definitions

    def _check_served(self, workflow: str) -> None:
        if workflow not in self.settings.workflow_names:
            raise NotFoundError(f"workflow {workflow!r} is not served here")

    def get_request(self, workflow: str, request_id: str) -> Request:
        self._check_served(workflow)
        return self.store.get(Request, workflow, request_id)

    def wait(self, workflow: str, request_id: str, timeout_s: float) -> Request | None:
        """The request once finished, or None when ``timeout_s`` passes first; NotFoundError
        if it was removed (cancelled and cleaned up) before it finished."""
        try:
            finished = self.requests.wait(workflow, request_id, timeout_s)
        except gevent.Timeout:
            return None
        if finished is None:
            raise NotFoundError(f"request {request_id!r} of workflow {workflow!r} no longer "
                                f"exists")
        return finished

    def result(self, request: Request) -> list:
        return self.data.get_pairs(request.result_ref)

    def cancel(self, workflow: str, request_id: str) -> Request:
        """Cancel a running request; a finished one is returned as it is."""
        request = self.get_request(workflow, request_id)
        if request.state in TERMINAL_STATES:
            return request
        self._finish(request, "cancelled")
        return self.get_request(workflow, request_id)

    def release(self, request: Request) -> None:
        """Remove a finished request now: its result was delivered."""
        if self.settings.do_cleanup_requests:
            self.remove(request.workflow, request.request_id, self._cleanup_key(request))

    def remove(self, workflow: str, request_id: str, cleanup_key: str | None = None) -> None:
        """Remove everything a request left: its data, its run state, its record."""
        self.data.delete_tree(f"{workflow}/{request_id}")
        operations = [Delete(self.keys.entity(Request.kind, workflow, request_id)),
                      Delete(self.keys.run(workflow, request_id), prefix=True)]
        if cleanup_key:
            operations.append(Delete(cleanup_key))
        self.kv.txn([], operations)

    # Invocations (the worker's side)

    def topics(self, workflow: str, capability: str) -> list[str]:
        return [topic_name(workflow, direction, capability) for direction in (MAP, REDUCE)]

    def handle(self, message: Message) -> None:
        """Run one invocation message; it is finished only after its effects are committed."""
        try:
            invocation = InvocationMessage.decode(message.body)
        except (ValueError, TypeError, codec.CodecError) as error:
            log.error("dropping message %s: not an invocation message (%s)", message.id, error)
            return
        request = self.requests.get(invocation.workflow, invocation.request_id)
        if request is None or request.state != "running":
            return  # finished, cancelled or removed: nothing left to do
        try:
            with self._touching(message), self._stoppable(request):
                if invocation.kind == MAP:
                    self._map(request, invocation)
                else:
                    self._reduce(request, invocation)
        except RequestFinished:
            return  # its request failed or was cancelled meanwhile: drop it
        except HandlerFailure as failure:
            self._finish(request, "failed",
                         failed_invocation_id=failure.invocation_id or invocation.invocation_id,
                         error=failure.error)
        except (KVError, DataError, QueueError) as error:
            if message.attempts >= self.settings.invocation_max_attempts:
                self._finish(request, "failed", failed_invocation_id=invocation.invocation_id,
                             error=_error(type(error).__name__,
                                          f"gave up after {message.attempts} attempts: {error}"))
            else:
                log.warning("invocation %s failed (attempt %d), retrying: %s",
                            invocation.invocation_id, message.attempts, error)
                message.requeue(failure_backoff_s(message.attempts))

    @contextlib.contextmanager
    def _stoppable(self, request: Request) -> Iterator[None]:
        """Register this greenlet as running an invocation of ``request``, so that it can be
        stopped (its handler's executor child killed) when the request finishes elsewhere."""
        identity = (request.workflow, request.request_id)
        current = gevent.getcurrent()
        self._in_progress.setdefault(identity, set()).add(current)
        try:
            yield
        finally:
            running = self._in_progress.get(identity)
            if running is not None:
                running.discard(current)
                if not running:
                    del self._in_progress[identity]

    def _stop_invocations(self, workflow: str, request_id: str) -> None:
        """A request failed or was cancelled: its running invocations can no longer commit
        anything, so stop them now rather than let their handlers run on."""
        for greenlet in self._in_progress.pop((workflow, request_id), ()):
            greenlet.kill(RequestFinished, block=False)

    @contextlib.contextmanager
    def _touching(self, message: Message) -> Iterator[None]:
        """Keep a message from timing out while its invocation works."""
        interval = max(self.settings.message_timeout_s / 3, 0.1)

        def touch_forever():
            while True:
                gevent.sleep(interval)
                message.touch()

        toucher = gevent.spawn(touch_forever)
        try:
            yield
        finally:
            toucher.kill()

    def _map(self, request: Request, invocation: InvocationMessage) -> None:
        mapper_name, _, _ = self._step(request, invocation.step)
        pairs = ([invocation.pair] if invocation.data_ref is None
                 else self.data.get_pairs(invocation.data_ref))
        outcome = self._run(request, invocation, mapper_name, pairs, {})
        if outcome.directive["kind"] == "map":
            self._branch(request, invocation, outcome.directive["step"], outcome.pairs,
                         outcome.session)
        else:
            self._return(request, invocation, outcome.pairs, outcome.session)

    def _return(self, request: Request, invocation: InvocationMessage, pairs: list,
                session: dict) -> None:
        """A leaf: combine, then reduce here unless the reducer needs another capability."""
        mapper_name, combiner_name, reducer_name = self._step(request, invocation.step)
        if combiner_name is None:
            combined = group_by_key(pairs)
        else:
            outcome = self._run(request, invocation, combiner_name, pairs, session)
            combined, session = merge_groups(outcome.pairs), outcome.session
        if self._capability(request, reducer_name) == self._capability(request, mapper_name):
            outcome = self._run(request, invocation, reducer_name, combined, session)
            self._complete(request, invocation, outcome.pairs, session)
            return
        combined_ref = self._put_pairs(request.workflow, request.request_id,
                                       invocation.invocation_id, "combined", combined)
        if self._commit(request, self._session_writes(request, invocation.invocation_id,
                                                      session)):
            self._publish(request, [InvocationMessage(
                request.workflow, request.request_id, invocation.invocation_id, REDUCE,
                invocation.step, invocation.ancestors, data_ref=combined_ref)])

    def _branch(self, request: Request, invocation: InvocationMessage, target_step: str,
                pairs: list, session: dict) -> None:
        if target_step not in request.steps:
            raise HandlerFailure(invocation.invocation_id, _error(
                "UnknownStep", f"the mapper of step {invocation.step!r} maps to step "
                               f"{target_step!r}, which workflow {request.workflow!r} does not "
                               f"have"))
        record = Invocation(
            workflow=request.workflow, invocation_id=invocation.invocation_id,
            request_id=request.request_id,
            parent_invocation_id=invocation.parent.invocation_id if invocation.parent else None,
            step_name=invocation.step, direction=MAP, state="waiting", mapped_count=len(pairs),
            mapped_step=target_step,
            children_ref=self._put_pairs(request.workflow, request.request_id,
                                         invocation.invocation_id, "children", pairs))
        key = self.store.key_of(record)
        committed = self.kv.txn(
            [self._running(request), Compare(key, "version", "==", 0)],
            [Put(key, record.encode()),
             *self._session_writes(request, invocation.invocation_id, session)],
            [Get(key), Get(self._request_key(request))])
        if not committed.succeeded:
            earlier, current = committed.responses
            if not _still_running(current):
                return
            # A redelivery: publish the children that were committed, not a new mapper run's.
            record = Invocation.decode(invocation.invocation_id, earlier.kvs[0].value)
            pairs = self.data.get_pairs(record.children_ref)
        self._publish_children(request, invocation, record.mapped_step, pairs)

    def _publish_children(self, request: Request, parent: InvocationMessage, step: str,
                          pairs: list) -> None:
        if not pairs:  # nothing to wait for: the branch reducer runs over no results
            self._publish(request, [InvocationMessage(
                request.workflow, request.request_id, parent.invocation_id, REDUCE, parent.step,
                parent.ancestors)])
            return
        ancestors = (Ancestor(parent.invocation_id, parent.step, len(pairs)), *parent.ancestors)
        children = []
        for position, pair in enumerate(pairs):
            identity = child_id(parent.invocation_id, position)
            if len(codec.encode(pair)) <= INLINE_PAIR_LIMIT_BYTES:
                children.append(InvocationMessage(request.workflow, request.request_id,
                                                  identity, MAP, step, ancestors, pair=pair))
            else:
                reference = self._put_pairs(request.workflow, request.request_id, identity,
                                            "arguments", [pair])
                children.append(InvocationMessage(request.workflow, request.request_id,
                                                  identity, MAP, step, ancestors,
                                                  data_ref=reference))
        self._publish(request, children)

    def _reduce(self, request: Request, invocation: InvocationMessage) -> None:
        _, _, reducer_name = self._step(request, invocation.step)
        session_prefix = self.keys.session(request.workflow, request.request_id,
                                           invocation.invocation_id)
        if invocation.data_ref is not None:  # a leaf, combined on a worker of another capability
            results = self.data.get_pairs(invocation.data_ref)
            stored_session = self.kv.range(session_prefix, prefix=True).kvs
        else:  # a branch: every child is reduced
            snapshot = self.kv.txn([], [
                Get(self.keys.completions(request.workflow, request.request_id,
                                          invocation.invocation_id), prefix=True),
                Get(session_prefix, prefix=True)])
            markers, session_range = snapshot.responses
            stored_session = session_range.kvs
            results = group_by_key(pair for marker in markers.kvs
                                   for pair in self._reduced_pairs(marker.value))
        session = {kv.key[len(session_prefix):]: codec.decode(kv.value) for kv in stored_session}
        outcome = self._run(request, invocation, reducer_name, results, session)
        self._complete(request, invocation, outcome.pairs, None)

    def _complete(self, request: Request, invocation: InvocationMessage, pairs: list,
                  session: dict | None) -> None:
        """Commit an invocation's reduced pairs to its parent, or to the request at the root;
        the child that completes its parent's last child enqueues the parent's reduce."""
        session_writes = (self._session_writes(request, invocation.invocation_id, session)
                          if session else [])
        parent = invocation.parent
        if parent is None:
            result_ref = self._put_pairs(request.workflow, request.request_id,
                                         invocation.invocation_id, "reduced", pairs)
            self._finish(request, "done", result_ref=result_ref, writes=session_writes)
            return
        reduced = codec.encode({"pairs": pairs})
        if len(reduced) > INLINE_RESULT_LIMIT_BYTES:
            reduced = codec.encode({"ref": self._put_pairs(
                request.workflow, request.request_id, invocation.invocation_id, "reduced", pairs)})
        completions = self.keys.completions(request.workflow, request.request_id,
                                            parent.invocation_id)
        marker = completions + invocation.invocation_id
        count = Get(completions, prefix=True, count_only=True)
        committed = self.kv.txn(
            [self._running(request), Compare(marker, "version", "==", 0)],
            [Put(marker, reduced), *session_writes, count],
            [Get(self._request_key(request)), count])
        if not committed.succeeded and not _still_running(committed.responses[0]):
            return
        # A redelivered last child cannot know whether its first delivery enqueued the reduce
        # before it was lost, so it enqueues it again; the reduce's own commit is idempotent.
        if committed.responses[-1].count == parent.children:
            self._publish(request, [InvocationMessage(
                request.workflow, request.request_id, parent.invocation_id, REDUCE, parent.step,
                invocation.ancestors[1:])])

    # Helpers

    def _reduced_pairs(self, marker_value: bytes) -> list:
        """A child's reduced pairs, from its completion marker or the data store it names."""
        reduced = codec.decode(marker_value)
        return reduced["pairs"] if "pairs" in reduced else self.data.get_pairs(reduced["ref"])

    def _step(self, request: Request, step: str) -> list:
        try:
            return request.steps[step]
        except KeyError:
            raise HandlerFailure(None, _error(
                "UnknownStep", f"workflow {request.workflow!r} had no step {step!r} when the "
                               f"request was accepted")) from None

    def _code(self, request: Request, handler_name: str, invocation_id: str | None) -> tuple:
        """The pinned version of a handler and its code record (cached: versions never change)."""
        version = request.handler_versions.get(handler_name)
        if version is None:
            raise HandlerFailure(invocation_id, _error(
                "UnknownHandler", f"handler {handler_name!r} did not exist in workflow "
                                  f"{request.workflow!r} when the request was accepted"))
        cached = self._code_cache.get((request.workflow, version))
        if cached is None:
            stored = self.kv.get(self.keys.handler_code(request.workflow, version))
            if stored is None:
                raise HandlerFailure(invocation_id, _error(
                    "MissingHandlerCode", f"the code of handler {handler_name!r} version "
                                          f"{version} is gone"))
            cached = self._code_cache[(request.workflow, version)] = codec.decode(stored.value)
        return version, cached

    def _capability(self, request: Request, handler_name: str) -> str:
        return self._code(request, handler_name, None)[1]["required_capability"]

    def _run(self, request: Request, invocation: InvocationMessage, handler_name: str,
             inputs: list, session: dict):
        version, code = self._code(request, handler_name, invocation.invocation_id)
        outcome = self.executor.run(
            Task(workflow=request.workflow, handler_name=handler_name, handler_version=version,
                 source_type=code["source_type"], source_code=code["source_code"],
                 handler_type=code["handler_type"],
                 required_capability=code["required_capability"], inputs=inputs,
                 session=session), timeout_s=self.settings.invocation_timeout_s)
        if not outcome.ok:
            raise HandlerFailure(invocation.invocation_id, {
                **outcome.error, "handler": handler_name, "stdout": outcome.stdout,
                "stderr": outcome.stderr})
        return outcome

    def _put_pairs(self, workflow: str, request_id: str, invocation_id: str, name: str,
                   pairs: list) -> str:
        """Store pairs under a fresh path (never overwritten, so never read half-written)."""
        path = f"{workflow}/{request_id}/{invocation_id}/{name}-{uuid.uuid4().hex[:12]}"
        self.data.put_pairs(path, pairs)
        return path

    def _request_key(self, request: Request) -> str:
        return self.keys.entity(Request.kind, request.workflow, request.request_id)

    def _running(self, request: Request) -> Compare:
        """The request is unfinished: its record was never rewritten since it was created."""
        return Compare(self._request_key(request), "version", "==", 1)

    def _session_writes(self, request: Request, invocation_id: str, session: dict) -> list:
        prefix = self.keys.session(request.workflow, request.request_id, invocation_id)
        return [Put(prefix + key, codec.encode(value)) for key, value in session.items()]

    def _commit(self, request: Request, writes: list) -> bool:
        return self.kv.txn([self._running(request)], writes).succeeded

    def _publish(self, request: Request, messages: list[InvocationMessage]) -> None:
        by_topic: dict[str, list[bytes]] = {}
        for message in messages:
            mapper, _, reducer = self._step(request, message.step)
            handler = mapper if message.kind == MAP else reducer
            topic = topic_name(request.workflow, message.kind,
                               self._capability(request, handler))
            by_topic.setdefault(topic, []).append(message.encode())
        for topic, bodies in by_topic.items():
            for batch in _batches(bodies):
                if len(batch) == 1:
                    self.queue.publish(topic, batch[0])
                else:
                    self.queue.multi_publish(topic, batch)

    def _finish(self, request: Request, state: str, *, writes: list = (), **changes) -> bool:
        """Move a running request to its final state, once; schedules its removal."""
        finished = request.replace(state=state, finished_at=time.time(), **changes)
        operations = [Put(self._request_key(request), finished.encode()), *writes]
        if self.settings.do_cleanup_requests:
            operations.append(Put(self._cleanup_key(finished), b""))
        return self._commit(request, operations)

    def _cleanup_key(self, request: Request) -> str:
        """When a finished request is due for removal, as a key that sorts by due time."""
        retention = (self.settings.failure_retention_s if request.state == "failed"
                     else self.settings.result_retention_s)
        due_ms = int((request.finished_at + retention) * 1000)
        return f"{self.keys.cleanups()}{due_ms:015d}/{request.workflow}/{request.request_id}"

    def remove_due(self, limit: int = 100) -> int:
        """Remove the finished requests whose retention has passed; returns how many."""
        now_ms = int(time.time() * 1000)
        removed = 0
        for entry in self.kv.range(self.keys.cleanups(), prefix=True, limit=limit,
                                   keys_only=True).kvs:
            due_ms, workflow, request_id = entry.key[len(self.keys.cleanups()):].split("/")
            if int(due_ms) > now_ms:
                break
            self.remove(workflow, request_id, entry.key)
            removed += 1
        return removed


def _still_running(request_range) -> bool:
    return bool(request_range.kvs) and request_range.kvs[0].version == 1


def _error(error_type: str, message: str) -> dict[str, str]:
    return {"type": error_type, "message": message, "traceback": "", "kind": "engine"}


def _batches(bodies: list[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    size = 0
    for body in bodies:
        if batch and (len(batch) >= PUBLISH_BATCH_COUNT or size + len(body) > PUBLISH_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(body)
        size += len(body)
    if batch:
        yield batch
