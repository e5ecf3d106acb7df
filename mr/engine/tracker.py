"""What this process knows about the requests of the workflows it serves.

One watch per workflow over its request records keeps a cache of the running ones current and
wakes the greenlets waiting for a request to finish. Finished requests are remembered only by
id, in a bounded list, so that a long-lived process holds no finished records (a failed one
carries its error) and its memory does not grow with the requests it has seen. The cache lets
an invocation of a request that already failed or was cancelled be skipped without a KV round
trip; the commit of every invocation still compares the request's state in the KV, so a stale
cache costs work, never correctness. A waiter registers before it looks at the request, and the
watch runs from the revision of the initial listing, so no wake-up is lost.

A worker that is not also a front end has no waiters and counts no running requests, so it
follows less (``WorkerRequests``): only the empty keys that mark failed and cancelled requests,
to skip and stop their invocations; the running requests it reads are cached, a bounded number
of them.
Each request record written then goes to the front ends' watches alone, not to every worker's.
"""
from __future__ import annotations

import collections
import contextlib
import logging
from collections import defaultdict
from typing import Callable

import gevent
import gevent.event

from mr.kv.base import KV, CompactedError, KVError
from mr.models import Request
from mr.models.errors import ModelError
from mr.models.keys import Keys

log = logging.getLogger(__name__)

TERMINAL_STATES = ("done", "failed", "cancelled")
#: Finished requests remembered by id, to skip their leftover messages without a KV read.
FINISHED_REMEMBERED = 10000
#: Request records read per round trip when a workflow's requests are loaded.
LOAD_PAGE_SIZE = 500
#: Running requests a worker keeps once read.
WORKER_CACHED = 2000


class RequestTracker:
    #: Whether the watch leaves deletions out: a front end needs them (a request removed
    #: unfinished wakes its waiters), a worker alone does not.
    _puts_only = False

    def __init__(self, kv: KV, keys: Keys):
        self._kv = kv
        self._keys = keys
        self._requests: dict[tuple[str, str], Request] = {}
        #: Finished requests by id, with the revision they were seen finished at.
        self._finished: collections.OrderedDict[tuple[str, str], int] = \
            collections.OrderedDict()
        #: The latest revision of a finish no longer remembered.
        self._forgotten_up_to = 0
        #: The revision of each workflow's last listing: its watch tells every change since.
        self._listed_at: dict[str, int] = {}
        self._waiters: dict[tuple[str, str], list[gevent.event.AsyncResult]] = defaultdict(list)
        self._greenlets: dict[str, gevent.Greenlet] = {}
        #: Called with (workflow, request_id) when a request is seen to finish or vanish.
        self.on_finish: list[Callable[[str, str], None]] = []

    def start(self, workflow: str) -> None:
        """Follow the requests of ``workflow`` from now on (idempotent)."""
        if workflow not in self._greenlets:
            revision = self._load(workflow)
            self._greenlets[workflow] = gevent.spawn(self._follow, workflow, revision)

    def _collection(self, workflow: str) -> str:
        return self._keys.entities(Request.kind, workflow)

    def _load(self, workflow: str) -> int:
        """Read the workflow's requests page by page; returns a revision from which the watch
        replays whatever changed during the reading (re-applying a record is harmless)."""
        revision = self._kv.current_revision()
        for page in self._kv.pages(self._collection(workflow), LOAD_PAGE_SIZE):
            for stored in page:
                self._apply(workflow, stored.key, stored.value, stored.mod_revision)
        self._listed_at[workflow] = revision
        return revision

    def _follow(self, workflow: str, revision: int) -> None:
        while True:
            try:
                with self._kv.watch(self._collection(workflow), prefix=True,
                                    start_revision=revision + 1,
                                    puts_only=self._puts_only) as watch:
                    for event in watch:
                        revision = event.revision
                        if event.type == "put":
                            self._apply(workflow, event.kv.key, event.kv.value, revision)
                        else:
                            self._forget((workflow, event.kv.key.rsplit("/", 1)[1]),
                                         revision)
            except CompactedError:
                log.warning("request watch of %s fell behind compaction; reloading", workflow)
                revision = self._reload(workflow)
            except KVError as error:
                log.warning("request watch of %s failed (%s); retrying", workflow, error)
                gevent.sleep(1)

    def _reload(self, workflow: str) -> int:
        for key in [key for key in self._requests if key[0] == workflow]:
            self._requests.pop(key, None)
        return self._load(workflow)

    def _apply(self, workflow: str, key: str, value: bytes, revision: int) -> None:
        known = self._requests.get((workflow, key.rsplit("/", 1)[1]))
        if known is not None and known.mod_revision == revision:
            return  # this very record is known already: a request this process recorded
        try:
            request = Request.decode(key.rsplit("/", 1)[1], value).with_revision(revision)
        except ModelError as error:  # one bad record must not blind the process to the rest
            log.error("ignoring request record %s: %s", key, error)
            return
        identity = (workflow, request.request_id)
        if request.state in TERMINAL_STATES:
            self._requests.pop(identity, None)
            self._remember_finished(identity, revision)
            self._wake(identity, request)
        else:
            self._requests[identity] = request

    def _remember_finished(self, identity: tuple[str, str], revision: int) -> None:
        self._finished[identity] = revision
        self._finished.move_to_end(identity)
        while len(self._finished) > FINISHED_REMEMBERED:
            _, forgotten = self._finished.popitem(last=False)
            self._forgotten_up_to = max(self._forgotten_up_to, forgotten)

    def _forget(self, identity: tuple[str, str], revision: int) -> None:
        """The request was removed: its waiters learn it is gone (None), not its last state."""
        self._remember_finished(identity, revision)
        self._requests.pop(identity, None)
        self._wake(identity, None)

    def track(self, request: Request) -> None:
        """Count a request this process just recorded, before its watch event arrives."""
        identity = (request.workflow, request.request_id)
        if request.state not in TERMINAL_STATES and identity not in self._finished:
            self._requests.setdefault(identity, request)

    def finished_here(self, request: Request, revision: int) -> None:
        """This process committed ``request``'s final state (at ``revision``). A front end
        learns it from its watch of the records, which also wakes the request's waiters."""

    def running_count(self, workflow: str) -> int:
        """How many requests of ``workflow`` run now, as the watch last saw them."""
        return sum(1 for name, _ in self._requests if name == workflow)

    def is_finished(self, workflow: str, request_id: str) -> bool:
        """Known to be finished or removed, without a KV read (False: running or unknown)."""
        return (workflow, request_id) in self._finished

    def _wake(self, identity: tuple[str, str], request: Request | None) -> None:
        for waiter in self._waiters.pop(identity, []):
            waiter.set(request)
        for listener in self.on_finish:
            listener(*identity)

    def get(self, workflow: str, request_id: str,
            carried: tuple[int, bytes] | None = None) -> Request | None:
        """The request as last seen when it is running; read from the KV otherwise.
        ``carried``: its record as created (revision, encoded), for ``WorkerRequests``."""
        request = self._requests.get((workflow, request_id))
        if request is not None:
            return request
        stored = self._kv.get(self._keys.entity(Request.kind, workflow, request_id))
        if stored is None:
            return None
        request = Request.decode(request_id, stored.value).with_revision(stored.mod_revision)
        # Not if the watch saw it finish while this read was under way: the cached copy would
        # say "running" for ever after.
        if (workflow in self._greenlets and request.state not in TERMINAL_STATES
                and (workflow, request_id) not in self._finished):
            self._cache((workflow, request_id), request)
        return request

    def _cache(self, identity: tuple[str, str], request: Request) -> None:
        self._requests.setdefault(identity, request)

    def wait(self, workflow: str, request_id: str, timeout_s: float) -> Request | None:
        """The request as it finished (None if it vanished unfinished); raises
        ``gevent.Timeout`` when ``timeout_s`` passes first."""
        identity = (workflow, request_id)
        waiter = gevent.event.AsyncResult()
        self._waiters[identity].append(waiter)
        try:
            request = self.get(workflow, request_id)
            if request is None or request.state in TERMINAL_STATES:
                return request
            return waiter.get(timeout=timeout_s)
        finally:
            waiters = self._waiters.get(identity)
            if waiters and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[identity]

    def stop(self, workflow: str | None = None) -> None:
        """Stop following ``workflow`` (its workflow was deleted), or every workflow."""
        for name in [workflow] if workflow is not None else list(self._greenlets):
            greenlet = self._greenlets.pop(name, None)
            self._listed_at.pop(name, None)
            if greenlet is not None:
                greenlet.kill()


class WorkerRequests(RequestTracker):
    """What a worker alone needs: the running requests it was asked to work on, read once and
    cached, and which requests failed or were cancelled (their ``finished`` keys: such a
    request's cached copy goes with its key's watch event). A done request has no such key: its
    every invocation has committed, so only the worker that finished it forgets it at once;
    another one's cached copy of it says "running" until it is pushed out, which costs a late
    duplicate of one of its messages a run whose commit is refused, as any stale copy does."""

    _puts_only = True  # a finished key's removal says nothing new

    def __init__(self, kv: KV, keys: Keys):
        super().__init__(kv, keys)
        self._requests: collections.OrderedDict[tuple[str, str], Request] = \
            collections.OrderedDict()

    def _collection(self, workflow: str) -> str:
        return self._keys.finished(workflow)

    def _apply(self, workflow: str, key: str, value: bytes, revision: int) -> None:
        self._forget((workflow, key.rsplit("/", 1)[1]), revision)

    def get(self, workflow: str, request_id: str,
            carried: tuple[int, bytes] | None = None) -> Request | None:
        """Without a KV read when the request's record came with its message (``carried``)
        and a finish of it could not have escaped this process: the request was created after
        the last listing of the finished keys, and no finish seen since its creation was
        forgotten. Like any cached copy, it is then as current as the watch."""
        identity = (workflow, request_id)
        listed_at = self._listed_at.get(workflow)
        if (carried is not None and listed_at is not None and identity not in self._requests
                and identity not in self._finished
                and carried[0] > max(listed_at, self._forgotten_up_to)):
            with contextlib.suppress(ModelError):
                request = Request.decode(request_id, carried[1]).with_revision(carried[0])
                if request.state not in TERMINAL_STATES:
                    self._cache(identity, request)
                    return request
        return super().get(workflow, request_id)

    def finished_here(self, request: Request, revision: int) -> None:
        identity = (request.workflow, request.request_id)
        self._requests.pop(identity, None)
        self._remember_finished(identity, revision)

    def _cache(self, identity: tuple[str, str], request: Request) -> None:
        self._requests[identity] = request
        while len(self._requests) > WORKER_CACHED:
            self._requests.popitem(last=False)
