"""The sweeper: no request hangs and none outlives its deadline.

At-least-once delivery is not enough on its own: a message can be lost (nsqd killed with
messages in flight, a crash between a commit and the publish that should follow it), and then
nothing would ever move the request again. One worker of the cluster at a time — whoever holds
the ``P/sweeper`` key on its lease — looks at every running request every
MR_SWEEP_INTERVAL_S:

- a request past its deadline fails with ``DeadlineExceeded``;
- a request whose run state has not grown for MR_REQUEST_STALL_S (no invocation committed
  anything) has every unfinished invocation that no live worker is running published again,
  marked as a redelivery, so that its worker checks for a commit before running any handler.
  It then waits twice as long before doing so again, so a request held up only by a long queue
  is not flooded.

The same worker removes finished requests that are due (:mod:`mr.engine.cleanup`) and sends
notifications (:mod:`mr.notify.notifier`). Everything it does is idempotent, so a second sweeper
during a change of leader costs work, never correctness (a notification may be sent twice).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING

import gevent
import gevent.lock

from mr.engine.messages import InvocationMessage
from mr.kv.base import KV, Compare, KVError, LeaseKeeper, Put
from mr.models import Invocation, Request
from mr.models.errors import ModelError

if TYPE_CHECKING:
    from mr.engine.engine import Engine

log = logging.getLogger(__name__)

#: Longest pause after the sweep loop failed (etcd unreachable, say), doubled from the interval.
MAX_ERROR_BACKOFF_S = 60.0


@dataclasses.dataclass
class _Progress:
    """What the sweeper last saw of a running request."""
    size: int  # keys in its run state: they are only ever added while it runs
    since: float  # when that size was first seen
    patience_s: float  # how long to wait at this size before publishing again


@dataclasses.dataclass
class SweepReport:
    expired: int = 0
    redriven: int = 0
    published: int = 0


class Sweeper:
    def __init__(self, engine: "Engine"):
        self.engine = engine
        self.kv: KV = engine.kv
        self.keys = engine.keys
        self._progress: dict[tuple[str, str], _Progress] = {}
        self._lease: LeaseKeeper | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._leading = gevent.lock.Semaphore()

    def start(self) -> "Sweeper":
        self._greenlet = gevent.spawn(self._run_forever)
        return self

    def stop(self) -> None:
        """Stop sweeping and give up the key at once. Nothing takes the lead meanwhile (the
        loop and the notifier both ask for it): a key taken then would outlive this sweeper
        until its lease ran out, and keep every other process from sweeping."""
        with self._leading:
            if self._greenlet is not None:
                self._greenlet.kill()
                self._greenlet = None
            self.engine.notifier.stop()  # after the loop, which starts it
            if self._lease is not None:
                self._lease.stop()
                try:
                    self.kv.revoke_lease(self._lease.lease_id)  # hand over at once
                except KVError:
                    pass
                self._lease = None

    def _run_forever(self) -> None:
        interval = self.engine.settings.sweep_interval_s
        pause = interval
        while True:
            try:
                if self.lead():
                    self.engine.notifier.follow()  # sends notifications while this leads
                    self.sweep()
                    if self.engine.settings.do_cleanup_requests:
                        while self.engine.cleaner.remove_due() > 0:
                            gevent.sleep(0)
                pause = interval
            except Exception as error:  # noqa: BLE001 — the loop must outlive any failure
                pause = min(pause * 2, MAX_ERROR_BACKOFF_S)
                log.warning("sweep failed (%s: %s); next attempt in %.0f s",
                            type(error).__name__, error, pause)
            gevent.sleep(pause)

    def lead(self) -> bool:
        """Whether this process is the sweeper now: it holds ``P/sweeper`` on a live lease."""
        with self._leading:  # one attempt at a time, or two would each grant a lease
            return self._lead()

    def _lead(self) -> bool:
        if self._lease is not None and not self._lease.lost:
            return True
        ttl = max(int(self.engine.settings.sweep_interval_s * 3), 5)
        lease_id = self.kv.grant_lease(ttl)
        key = self.keys.sweeper()
        taken = self.kv.txn([Compare(key, "create_revision", "==", 0)],
                            [Put(key, b"", lease=lease_id)]).succeeded
        if not taken:
            self.kv.revoke_lease(lease_id)
            return False
        self._lease = self.kv.keep_lease_alive(lease_id, ttl)
        log.info("this process is now the sweeper")
        return True

    def sweep(self, now: float | None = None) -> SweepReport:
        """One look at every running request of the served workflows."""
        now = time.time() if now is None else now
        report = SweepReport()
        seen = set()
        for workflow in self.engine.served.names:
            for page in self.kv.pages(self.keys.entities(Request.kind, workflow)):
                for stored in page:
                    try:
                        request = Request.decode(stored.key.rsplit("/", 1)[1], stored.value)
                    except (ModelError, ValueError) as error:
                        log.error("skipping request record %s: %s", stored.key, error)
                        continue
                    if request.state == "running":
                        seen.add((workflow, request.request_id))
                        self._check(request, now, report)
        for identity in set(self._progress) - seen:
            del self._progress[identity]
        return report

    def _check(self, request: Request, now: float, report: SweepReport) -> None:
        if request.deadline is not None and now >= request.deadline:
            self.engine.expire(request, now)
            report.expired += 1
            return
        identity = (request.workflow, request.request_id)
        size = self.kv.range(self.keys.run(request.workflow, request.request_id), prefix=True,
                             count_only=True).count
        progress = self._progress.get(identity)
        if progress is None or progress.size != size:
            self._progress[identity] = _Progress(size, now,
                                                 self.engine.settings.request_stall_s)
            return
        if now - progress.since < progress.patience_s:
            return
        published = self.redrive(request)
        log.warning("request %s of %s made no progress for %.0f s; published %d unfinished "
                    "invocations again", request.request_id, request.workflow,
                    now - progress.since, published)
        report.redriven += 1
        report.published += published
        progress.since, progress.patience_s = now, progress.patience_s * 2

    def redrive(self, request: Request) -> int:
        """Publish again every unfinished invocation of ``request`` that no live worker runs;
        returns how many messages were published."""
        run = self.keys.run(request.workflow, request.request_id)
        records = {}
        for page in self.kv.pages(self.keys.entities(Invocation.kind, request.workflow,
                                                     request.request_id)):
            for stored in page:
                invocation_id = stored.key.rsplit("/", 1)[1]
                records[invocation_id] = Invocation.decode(invocation_id, stored.value)
        completed: dict[str, set[str]] = {}
        for page in self.kv.pages(f"{run}done/", keys_only=True):
            for stored in page:
                parent, child = stored.key[len(run) + len("done/"):].split("/")
                completed.setdefault(parent, set()).add(child)
        active = {stored.key.rsplit("/", 1)[1]
                  for page in self.kv.pages(self.keys.active(request.workflow,
                                                             request.request_id),
                                            keys_only=True)
                  for stored in page}
        messages: list[InvocationMessage] = []
        self._unfinished(request, self.engine.dispatch.root(request), records, completed,
                         active, messages)
        self.engine.dispatch.publish(request, messages)
        return len(messages)

    def _unfinished(self, request: Request, invocation: InvocationMessage,
                    records: dict[str, Invocation], completed: dict[str, set[str]],
                    active: set[str], messages: list[InvocationMessage]) -> None:
        """Collect the messages that the subtree of an unfinished invocation waits for."""
        if invocation.invocation_id in active:
            return
        record = records.get(invocation.invocation_id)
        if record is None:  # its map never committed
            messages.append(dataclasses.replace(invocation, redelivered=True))
            return
        children_done = completed.get(invocation.invocation_id, set())
        for waited in self.engine.tree.pending_after(request, invocation, record,
                                                     children_done):
            if waited.invocation_id == invocation.invocation_id:
                messages.append(waited)  # its own reduce
            else:
                self._unfinished(request, waited, records, completed, active, messages)
