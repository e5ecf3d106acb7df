"""The engine: accepts requests, runs their invocations, and keeps every request moving.

Its parts, one concern each: the front end's side (submit, wait, cancel) is here, with the
worker's entry point :meth:`Engine.handle`; :mod:`mr.engine.tree` runs one invocation with
exactly-once effect; :mod:`mr.engine.dispatch` builds and publishes messages;
:mod:`mr.engine.sweeper` re-drives lost work and fails requests past their deadline;
:mod:`mr.engine.cleanup` removes finished requests.

A request's state is its record: created with KV version 1 and rewritten exactly once, when it
finishes (done, failed or cancelled). Every commit compares ``version == 1``, so no work is
committed for a finished request, and whoever finishes it first (a worker, the sweeper, a front
end whose client waited until the deadline) is the only one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
from typing import Any, BinaryIO, Callable, Iterator, NamedTuple

import gevent
import gevent.lock

from mr import codec
from mr.data import create_shuffle_store
from mr.data.base import DataError, DataStore
from mr.engine.cleanup import Cleaner
from mr.engine.dispatch import Dispatcher
from mr.engine.errors import (HandlerFailure, NoFreeSlot, RequestFinished, ServiceUnavailable,
                              TooManyRequests, engine_error)
from mr.engine.messages import MAP, REDUCE, InvocationMessage
from mr.engine.served import ServedWorkflows
from mr.engine.signing import ForgedMessage, MessageSigner
from mr.engine.shuffle import Shuffle
from mr.engine.sweeper import Sweeper
from mr.engine.trace import InvocationTrace, recording
from mr.engine.tracker import TERMINAL_STATES, RequestTracker, WorkerRequests
from mr.engine.tree import Tree
from mr.executor import ExecutorPool
from mr.executor.protocol import bounded_error
from mr.kv.base import KV, Compare, Get, KVError, LeaseKeeper, Put
from mr.metrics import instruments
from mr.models import (ConflictError, EntityStore, Handler, Job, NotFoundError, Request,
                       Step, ValidationError)
from mr.models.base import new_id
from mr.models.data_specs import check_input, check_output
from mr.models.keys import Keys
from mr.models.names import topic_name
from mr.models.request import INLINE_LIMIT_BYTES
from mr.notify.channels import channels_for
from mr.notify.notifier import Notifier
from mr.queue.base import Message, Queue, QueueError, failure_backoff_s
from mr.settings import Settings

log = logging.getLogger(__name__)

#: A failure record (error, traceback, captured output) is cut to this size, so that the
#: commit that fails a request always fits in one etcd request (1.5 MiB).
FAILURE_RECORD_LIMIT_BYTES = 256 * 1024
#: Invocations per executor child that a worker runs at once when MR_WORKER_CONCURRENCY is 0:
#: more than one, so that a child never waits while its next invocation does KV or data I/O.
SLOTS_PER_EXECUTOR_CHILD = 4
#: When a message that found no free slot comes back, so it does not bounce at once.
BUSY_REQUEUE_DELAY_S = 1.0
#: Times a submit pins its request and tries to record it, each time with the definitions
#: reloaded because they changed since the last try.
PINNING_ATTEMPTS = 3


@dataclasses.dataclass(frozen=True)
class Definitions:
    """A workflow's definitions as a request pins them, at the marker revision they were read."""
    revision: int
    jobs: dict[str, str]  # job -> initial step
    deadlines: dict[str, float | None]  # job -> its deadline_s, None for the default
    steps: dict[str, list]  # step -> [map, combine or None, reduce]
    shuffles: dict[str, dict]  # step with partitions -> its partitions, sort_values, partitioner
    data_specs: dict[str, tuple[dict | None, dict | None]]  # job -> its default input, output
    notify: dict[str, list | None]  # job -> its notification channels
    versions: dict[str, str]  # handler -> version


class Terms(NamedTuple):
    """What a request takes from its workflow's definitions, once the client's choices apply."""
    definitions: Definitions
    root_step: str
    deadline_s: float
    input: dict | None
    output: dict | None
    notify: list | None


class Upload(NamedTuple):
    """A request's input sent as its body (``text`` or ``jsonl``), read a chunk at a time."""
    body: BinaryIO
    format: str


class Engine:
    def __init__(self, settings: Settings, kv: KV, queue: Queue, data: DataStore,
                 executor: ExecutorPool | None = None, *, front_end: bool = True):
        """``front_end``: this process takes requests and waits for them (a front end, or
        embedded mode), so it follows every request record; a worker alone does not."""
        self.settings = settings
        self.kv = kv
        self.queue = queue
        self.data = data
        self.shuffle_store = create_shuffle_store(settings, data)
        #: Every store a request may leave data in.
        self.stores = [data] if self.shuffle_store is data else [data, self.shuffle_store]
        self.executor = executor
        self.keys = Keys(settings.kv_prefix)
        self.store = EntityStore(kv, settings.kv_prefix)
        self.signer = MessageSigner(settings.message_secret)
        self.dispatch = Dispatcher(kv, queue, data, self.keys, self.signer)
        self.shuffle = Shuffle(self)
        self.tree = Tree(self)
        self.cleaner = Cleaner(self)
        self.sweeper = Sweeper(self)
        self.notifier = Notifier(self)
        self.requests = (RequestTracker if front_end else WorkerRequests)(kv, self.keys)
        self.requests.on_finish.append(self._stop_invocations)
        #: The greenlets running invocations, by (workflow, request id).
        self._in_progress: dict[tuple[str, str], set[gevent.Greenlet]] = {}
        self._definitions_cache: dict[str, Definitions] = {}
        #: Invocations this process runs at once (a worker's; a front end runs none).
        self.concurrency = (settings.worker_concurrency
                            or SLOTS_PER_EXECUTOR_CHILD * (executor.size if executor else 1))
        self._slots = (gevent.lock.BoundedSemaphore(self.concurrency)
                       if executor is not None else None)
        self._active_lease: LeaseKeeper | None = None
        #: The workflows this process serves, followed live (mr.engine.served).
        self.served = ServedWorkflows(kv, self.keys, settings.workflow_names)
        self.served.on_added.append(self.requests.start)
        self.served.on_removed.append(self.requests.stop)
        #: Called by ``stop``: what the layers above started over this engine's backends.
        self.on_stop: list[Callable[[], None]] = []

    def serve(self) -> "Engine":
        """Start serving the workflows (and following their requests): a front end's and a
        worker's engine; a command that only reads or removes records needs none of it."""
        self.served.start()
        return self

    def stop(self) -> None:
        """Stop following requests and give up this process's lease on running invocations."""
        for stop in self.on_stop:
            stop()
        self.served.stop()
        self.requests.stop()
        self.sweeper.stop()
        if self.shuffle_store is not self.data:
            self.shuffle_store.close()
        if self._active_lease is not None:
            self._active_lease.stop()
            with contextlib.suppress(KVError):
                self.kv.revoke_lease(self._active_lease.lease_id)
            self._active_lease = None

    # Requests (the front end's side)

    def submit(self, workflow: str, job_name: str, arguments: dict[str, Any], *,
               blocking: bool, context: dict[str, Any] | None = None,
               deadline_s: float | None = None, input: dict | None = None,
               output: dict | None = None, upload: Upload | None = None,
               notify: list | None = None) -> Request:
        """Accept a request: pin the workflow's steps and handler versions, store the
        arguments (or name the input files, or store the uploaded one), record the request
        and enqueue its root invocation. ``input``/``output``: checked specs
        (mr.models.data_specs); the job's when None, as are the ``notify`` channels.

        The request is pinned to this process's cached definitions without reading anything:
        the transaction that records it also compares the definitions marker with the revision
        they were read at. When the marker moved, the definitions are reloaded and the request
        pinned and recorded again, so it runs with exactly those current at its commit."""
        self.check_served(workflow)
        limit = self.settings.max_running_requests
        if limit and self.requests.running_count(workflow) >= limit:
            raise TooManyRequests(f"workflow {workflow!r} runs {limit} requests, as many as "
                                  f"MR_MAX_RUNNING_REQUESTS allows; send this one again later")
        terms_under = functools.partial(
            self._terms, workflow, job_name, arguments=arguments, deadline_s=deadline_s,
            input=input, output=output, uploaded=upload is not None, notify=notify)
        terms = self._cached_terms(workflow, terms_under)
        request_id, root_id, now = new_id(), new_id(), time.time()
        try:
            uploaded = (None if upload is None else self.shuffle.store_upload(
                workflow, request_id, upload.body, upload.format))
            stored_arguments = None
            for attempt in range(1, PINNING_ATTEMPTS + 1):
                if uploaded is None and terms.input is None and stored_arguments is None:
                    stored_arguments = self._store_arguments(workflow, request_id, root_id,
                                                             arguments)
                pinned = terms.definitions
                try:
                    request = self.store.create(Request(
                        workflow=workflow, request_id=request_id, job_name=job_name,
                        root_invocation_id=root_id, root_step=terms.root_step,
                        **(stored_arguments if stored_arguments and terms.input is None
                           else {}),
                        input=uploaded or terms.input, output=terms.output,
                        notify=terms.notify, shuffles=pinned.shuffles, state="running",
                        blocking=blocking, context=context or {}, created_at=now,
                        deadline=now + terms.deadline_s, handler_versions=pinned.versions,
                        steps=pinned.steps), guards=[Compare(
                            self.keys.definitions(workflow), "mod_revision", "==",
                            pinned.revision)])
                    break
                except ConflictError:  # the definitions changed since they were read
                    if attempt == PINNING_ATTEMPTS:
                        raise ServiceUnavailable(
                            f"the definitions of workflow {workflow!r} changed {attempt} times "
                            f"while the request was being accepted; send it again") from None
                    terms = terms_under(self._load_definitions(workflow))
        except BaseException:  # no record: nothing would ever remove what was stored for it
            for store in self.stores:
                with contextlib.suppress(DataError):
                    store.delete_tree(f"{workflow}/{request_id}")
            raise
        self.requests.track(request)
        try:
            self.dispatch.publish(request, [self.dispatch.root(request)])
        except HandlerFailure as failure:  # the definitions cannot route it: an answer, not a bug
            self.finish(request, "failed", failed_invocation_id=root_id, error=failure.error)
        except QueueError as error:
            self.finish(request, "failed", error=engine_error("QueueUnavailable", str(error)))
            raise ServiceUnavailable(f"the request could not be queued: {error}") from None
        return request

    def _cached_terms(self, workflow: str, terms_under: Callable[[Definitions], Terms]) -> Terms:
        """A new request's terms under the cached definitions, with nothing read; when those
        refuse it, under the current ones (a job created since they were read, say)."""
        cached = self._definitions_cache.get(workflow) or self._load_definitions(workflow)
        try:
            return terms_under(cached)
        except (NotFoundError, ValidationError):
            current = self._definitions(workflow)
            if current is cached:
                raise
            return terms_under(current)

    def _terms(self, workflow: str, job_name: str, definitions: Definitions, *,
               arguments: dict[str, Any], deadline_s: float | None, input: dict | None,
               output: dict | None, uploaded: bool, notify: list | None) -> Terms:
        """What a request of ``job_name`` takes from ``definitions``, with the client's choices
        checked and applied; NotFoundError or ValidationError when they do not fit."""
        initial_step = definitions.jobs.get(job_name)
        if initial_step is None:
            raise NotFoundError(f"job {job_name!r} of workflow {workflow!r} does not exist")
        if deadline_s is not None and not deadline_s > 0:
            raise ValidationError(f"deadline_s must be a number of seconds > 0, got "
                                  f"{deadline_s!r}")
        default_input, default_output = definitions.data_specs[job_name]
        try:
            input = default_input if input is None else check_input(input)
            output = default_output if output is None else check_output(output)
            self.shuffle.check_specs(input, output)
            notify = channels_for(notify, definitions.notify[job_name], self.settings)
        except ValueError as error:
            raise ValidationError(str(error)) from None
        if (input is not None or uploaded) and arguments:
            raise ValidationError("a request names its input files or carries arguments, "
                                  "not both")
        deadline_s = (deadline_s or definitions.deadlines.get(job_name)
                      or self.settings.request_deadline_s)
        return Terms(definitions, initial_step, deadline_s, input, output, notify)

    def _store_arguments(self, workflow: str, request_id: str, root_id: str,
                         arguments: dict[str, Any]) -> dict[str, Any]:
        """The request's fields that hold its argument pairs: the pairs themselves when they
        fit INLINE_LIMIT_BYTES (no data store write here, nor read by the root), else the
        data store path they were written to."""
        pairs = [[key, value] for key, value in arguments.items()]
        try:
            encoded = codec.encode(pairs)
            if len(encoded) <= INLINE_LIMIT_BYTES:
                return {"arguments": pairs}
            return {"arguments_ref": self.dispatch.put_encoded(workflow, request_id, root_id,
                                                               "arguments", encoded)}
        except codec.CodecError as error:
            raise ValidationError(f"the arguments cannot be stored: {error}") from None

    def _definitions(self, workflow: str) -> Definitions:
        """The workflow's jobs, steps and handler versions as they are now: one small read
        of the definitions marker when the cached copy is current, one transaction otherwise."""
        marker = self.kv.get(self.keys.definitions(workflow))
        cached = self._definitions_cache.get(workflow)
        if cached is not None and marker is not None and cached.revision == marker.mod_revision:
            return cached
        return self._load_definitions(workflow)

    def _load_definitions(self, workflow: str) -> Definitions:
        """Read the workflow's definitions, with the marker's revision, in one transaction;
        cache them. NotFoundError when the workflow does not exist."""
        snapshot = self.kv.txn([], [
            Get(self.keys.workflow(workflow)), Get(self.keys.definitions(workflow)),
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
            deadlines={job.name: job.deadline_s for job in jobs},
            data_specs={job.name: (job.input, job.output) for job in jobs},
            notify={job.name: job.notify for job in jobs},
            steps={step.name: [step.map_handler_name, step.combine_handler_name,
                               step.reduce_handler_name] for step in steps},
            shuffles={step.name: {"partitions": step.partitions, "sort_values": step.sort_values,
                                  "partitioner": step.partitioner}
                      for step in steps if step.partitions is not None},
            versions={handler.name: handler.version for handler in handlers})
        self._definitions_cache[workflow] = definitions
        return definitions

    def check_served(self, workflow: str) -> None:
        """NotFoundError unless this process serves ``workflow``."""
        if not self.served.serves(workflow):
            only = self.settings.workflow_names
            raise NotFoundError(f"workflow {workflow!r} is not served here: it does not exist"
                                + (f", or MR_WORKFLOW_NAMES ({', '.join(only)}) leaves it out"
                                   if only else ""))

    def get_request(self, workflow: str, request_id: str) -> Request:
        self.check_served(workflow)
        return self.store.get(Request, workflow, request_id)

    def wait(self, workflow: str, request_id: str, timeout_s: float,
             deadline: float | None = None) -> Request | None:
        """The request once finished, or None when ``timeout_s`` passes first; NotFoundError
        if it was removed (cancelled and cleaned up) before it finished.

        A request that reaches its deadline (read from the request unless the caller knows
        it) while waited for is failed here and then, so a client never waits past it."""
        if deadline is None:
            current = self.requests.get(workflow, request_id)
            deadline = current.deadline if current is not None else None
        if deadline is not None:
            timeout_s = min(timeout_s, max(deadline - time.time(), 0.0))
        try:
            finished = self.requests.wait(workflow, request_id, timeout_s)
        except gevent.Timeout:
            if deadline is None or time.time() < deadline:
                return None
            self.expire(self.store.get(Request, workflow, request_id))
            finished = self.store.get(Request, workflow, request_id)
        if finished is None:
            raise NotFoundError(f"request {request_id!r} of workflow {workflow!r} no longer "
                                f"exists")
        return finished

    def result(self, request: Request) -> list:
        """A done request's result pairs: from its record when they rode there, else read from
        the data store."""
        if request.result is not None:
            return request.result
        return self.data.get_pairs(request.result_ref)

    def cancel(self, workflow: str, request_id: str) -> Request:
        """Cancel a running request; a finished one is returned as it is."""
        request = self.get_request(workflow, request_id)
        if request.state in TERMINAL_STATES:
            return request
        self.finish(request, "cancelled")
        return self.get_request(workflow, request_id)

    def release(self, request: Request) -> None:
        """Remove a finished request now: its result was delivered."""
        self.cleaner.release(request)

    def expire(self, request: Request, now: float | None = None) -> bool:
        """Fail ``request`` if it is past its deadline (at ``now``, default: now) and still
        running; True if it is now failed (by this call or any other)."""
        if request.deadline is None or (time.time() if now is None else now) < request.deadline:
            return False
        allowed = request.deadline - request.created_at
        self.finish(request, "failed", error=engine_error(
            "DeadlineExceeded", f"request {request.request_id} did not finish within its "
                                f"deadline of {allowed:g} s (set per request with "
                                f"\"deadline_s\", per job, or MR_REQUEST_DEADLINE_S)"))
        return True

    def finish(self, request: Request, state: str, *, writes: list = (), **changes) -> bool:
        """Move a running request to its final state, once; schedules its removal."""
        if changes.get("error") is not None:
            changes["error"] = bounded_error(changes["error"], FAILURE_RECORD_LIMIT_BYTES)
        finished = request.replace(state=state, finished_at=time.time(), **changes)
        # Workers follow the finished keys to skip and stop what is left of a request. A done
        # request has nothing left (every invocation committed before its root's reduce), so
        # it writes none, and its finish costs the workers' watches nothing.
        stop_mark = [] if state == "done" else [Put(self.finished_key(request), b"")]
        operations = [Put(self.request_key(request), finished.encode()), *writes, *stop_mark,
                      *self.notifier.outbox.finished(finished)]
        if self.settings.do_cleanup_requests:
            operations.append(Put(self.cleaner.cleanup_key(finished),
                                  self.cleaner.cleanup_value(finished)))
        # In a greenlet of its own: this process's watch may see the commit, and stop the
        # invocations of the request (maybe this one), before the commit returns here.
        return gevent.spawn(self._commit_final_state, finished, operations).get()

    def _commit_final_state(self, finished: Request, operations: list) -> bool:
        outcome = self.kv.txn([self.running(finished)], operations)
        if outcome.succeeded:
            self.requests.finished_here(finished, outcome.revision)
            instruments.request_finished(finished)
        return outcome.succeeded

    def request_key(self, request: Request) -> str:
        return self.keys.entity(Request.kind, request.workflow, request.request_id)

    def finished_key(self, request: Request) -> str:
        """Written with a failed or cancelled request's final state, for the workers
        (``tracker.py``)."""
        return self.keys.finished(request.workflow) + request.request_id

    def running(self, request: Request) -> Compare:
        """The request is unfinished: its record was never rewritten since it was created."""
        return Compare(self.request_key(request), "version", "==", 1)

    # Invocations (the worker's side)

    def topics(self, workflow: str, capability: str) -> list[str]:
        return [topic_name(workflow, direction, capability) for direction in (MAP, REDUCE)]

    def handle(self, message: Message) -> None:
        """Run one invocation message; it is finished only after its effects are committed.

        A handler's error fails the request at once. Any other error, whatever it is, is one
        attempt: the message is requeued with a backoff, and after MR_INVOCATION_MAX_ATTEMPTS
        deliveries the request fails with that error."""
        try:
            payload = self.signer.verified(message.body)
        except ForgedMessage as error:  # never acted on: someone else published it
            log.error("dropping message %s: %s", message.id, error)
            return
        try:
            invocation = InvocationMessage.decode(payload)
        except (ValueError, TypeError, codec.CodecError) as error:
            log.error("dropping message %s: not an invocation message (%s)", message.id, error)
            return
        if self.requests.is_finished(invocation.workflow, invocation.request_id):
            return  # finished, cancelled or removed: nothing left to do
        trace = InvocationTrace(attempts=message.attempts)
        try:
            request = self.requests.get(invocation.workflow, invocation.request_id,
                                        invocation.record if message.attempts == 1 else None)
            if request is None or request.state != "running" or self.expire(request):
                return  # finished, cancelled, removed or out of time: nothing left to do
            recheck = message.attempts > 1 or invocation.redelivered
            with self._slot(), instruments.invocation_running(invocation.kind, recheck), \
                    self._touching(message, request, invocation, trace), \
                    self._stoppable(request), recording(trace):
                try:
                    self.tree.run(request, invocation, recheck=recheck)
                except HandlerFailure as failure:
                    failed_id = failure.invocation_id or invocation.invocation_id
                    self.finish(request, "failed", failed_invocation_id=failed_id,
                                error=failure.error,
                                **self.tree.traces.failure(request, failed_id))
        except RequestFinished:
            return  # its request failed or was cancelled meanwhile: drop it
        except NoFreeSlot:
            message.requeue(BUSY_REQUEUE_DELAY_S)
        except Exception as error:  # noqa: BLE001 — every unforeseen error is one attempt
            self._attempt_failed(message, invocation, error, trace)

    def _attempt_failed(self, message: Message, invocation: InvocationMessage,
                        error: Exception, trace: InvocationTrace) -> None:
        description = f"{type(error).__name__}: {error}"
        if message.attempts < self.settings.invocation_max_attempts:
            log.warning("invocation %s of request %s failed (attempt %d of %d), retrying: %s",
                        invocation.invocation_id, invocation.request_id, message.attempts,
                        self.settings.invocation_max_attempts, description)
            instruments.invocation_retried(invocation.kind)
            message.requeue(failure_backoff_s(message.attempts))
            return
        log.error("invocation %s of request %s failed %d times, failing the request: %s",
                  invocation.invocation_id, invocation.request_id, message.attempts,
                  description, exc_info=error)
        try:
            request = self.store.get(Request, invocation.workflow, invocation.request_id)
            self.finish(request, "failed", failed_invocation_id=invocation.invocation_id,
                        error=engine_error(type(error).__name__, (
                            f"invocation {invocation.invocation_id} gave up after "
                            f"{message.attempts} attempts; the last failed with: {error}")),
                        **self.tree.traces.failure(request, invocation.invocation_id, trace))
        except NotFoundError:
            return  # removed meanwhile: nothing to fail
        except Exception as failing_error:  # noqa: BLE001 — cannot record it now: later
            log.warning("cannot record the failure of request %s yet (%s); requeueing",
                        invocation.request_id, failing_error)
            message.requeue(failure_backoff_s(message.attempts))

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        """One of this worker's invocation slots, waited for at most half a message timeout:
        past that the message is better off with another worker (NoFreeSlot)."""
        if self._slots is None:
            yield
            return
        if not self._slots.acquire(timeout=self.settings.message_timeout_s / 2):
            raise NoFreeSlot()
        try:
            yield
        finally:
            self._slots.release()

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
    def _touching(self, message: Message, request: Request, invocation: InvocationMessage,
                  trace: InvocationTrace) -> Iterator[None]:
        """Keep a message from timing out while its invocation works. An invocation still
        running at the first touch is also marked active, on this process's lease, so that the
        sweeper does not publish it again while a live worker runs it (and tracing shows
        where it runs)."""
        interval = max(self.settings.message_timeout_s / 3, 0.1)
        active_key = self.keys.active(request.workflow, request.request_id) + \
            invocation.invocation_id
        marked = []

        def touch_forever():
            while True:
                message.touch()
                if not marked:
                    marked.append(self._mark_active(active_key, trace))
                gevent.sleep(interval)

        # A timer until the first touch, not a greenlet: most invocations end sooner, and a
        # timer started and closed costs a tenth of a greenlet spawned and killed.
        touchers: list[gevent.Greenlet] = []
        timer = gevent.get_hub().loop.timer(interval)
        timer.start(lambda: touchers.append(gevent.spawn(touch_forever)))
        try:
            yield
        finally:
            timer.close()
            for toucher in touchers:
                toucher.kill()
            if marked and marked[0]:
                with contextlib.suppress(KVError):
                    self.kv.delete(active_key)

    def _mark_active(self, key: str, trace: InvocationTrace) -> bool:
        try:
            if self._active_lease is None or self._active_lease.lost:
                ttl = max(int(self.settings.message_timeout_s * 2), 10)
                self._active_lease = self.kv.keep_lease_alive(self.kv.grant_lease(ttl), ttl)
            self.kv.put(key, codec.encode(trace.where()), lease=self._active_lease.lease_id)
            return True
        except KVError as error:
            log.warning("cannot mark %s active (%s); the sweeper may publish it again", key,
                        error)
            return False
