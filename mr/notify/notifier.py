"""The notifier: sends the notifications queued in the KV outbox (:mod:`mr.notify.outbox`).

One worker of the cluster at a time sends them: whoever holds the sweeper's lease. It reads the
outbox, then follows it with a watch from that read's revision, so a notification queued by any
process is sent within moments, never from inside the transaction that queued it and never on an
invocation's path. Each entry is deleted once its channel took it, or once every attempt failed
(logged, then dropped). An entry whose sender died — the process crashed, or lost the lease and
stopped — stays, and the next sender sends it: a notification is sent at least once, and twice
only when a sender dies between the send and the delete, or while two processes both believe
they hold the lease.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import gevent
import gevent.pool

from mr import codec
from mr.kv.base import KVError, KeyValue
from mr.models import Request
from mr.notify.delivery import DELIVERY_ERRORS, deliver
from mr.notify.outbox import Outbox

if TYPE_CHECKING:
    from mr.engine.engine import Engine

log = logging.getLogger(__name__)

#: Notifications sent at once (each waits on its receiver, and retries with backoff).
CONCURRENT_SENDS = 8


class Notifier:
    def __init__(self, engine: "Engine"):
        self.engine = engine
        self.kv = engine.kv
        self.settings = engine.settings
        self.outbox = Outbox(engine.keys, engine.settings)
        self._greenlet: gevent.Greenlet | None = None
        self._senders = gevent.pool.Pool(CONCURRENT_SENDS)
        self._sending: set[str] = set()

    def queue_messages(self, request: Request, invocation_id: str, handler: str,
                       notices: list[dict]) -> None:
        """Queue what a handler sent with ``NOTIFY``, ``EMAIL`` or ``HTTP`` for the request's
        channels; nothing when it has none of their kind. One transaction per message keeps
        each far below etcd's request size limit."""
        for notice in notices:
            writes = self.outbox.message(request, invocation_id, handler, notice)
            if writes:
                self.kv.txn([], writes)

    def follow(self) -> None:
        """Send what is queued, and follow the outbox, until this process stops leading: called
        by the sweeper on each of its passes as the leader (so it starts again after a
        failure)."""
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._follow)

    def stop(self) -> None:
        """Stop sending; what is being sent stays queued for the next sender."""
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        self._senders.kill()

    def _follow(self) -> None:
        interval = self.settings.sweep_interval_s
        try:
            listing = self.kv.range(self.outbox.prefix, prefix=True)
            for entry in sorted(listing.kvs, key=lambda stored: stored.create_revision):
                self._send_soon(entry)
            with self.kv.watch(self.outbox.prefix, prefix=True,
                               start_revision=listing.revision + 1) as watch:
                while self.engine.sweeper.lead():
                    event = watch.get(timeout=interval)
                    if event is not None and event.type == "put":
                        self._send_soon(event.kv)
        except Exception as error:  # noqa: BLE001 — the sweeper's next pass starts it again
            log.warning("following the notifications failed (%s: %s); trying again with the "
                        "next sweep", type(error).__name__, error)

    def _send_soon(self, entry: KeyValue) -> None:
        if entry.key not in self._sending:
            self._sending.add(entry.key)
            self._senders.spawn(self._send, entry)

    def _send(self, entry: KeyValue) -> None:
        name = entry.key[len(self.outbox.prefix):]  # <workflow>/<request id>/<what>/<channel>
        try:
            try:
                queued = codec.decode(entry.value)
                deliver(self.settings, queued["channel"], queued["notification"])
            except DELIVERY_ERRORS as error:
                log.error("notification %s dropped: %s", name, error)
            except Exception as error:  # noqa: BLE001 — an entry that cannot be sent at all
                log.error("notification %s dropped: it cannot be sent (%s: %s)", name,
                          type(error).__name__, error, exc_info=error)
            try:
                self.kv.delete(entry.key)
            except KVError as error:  # sent again by the next pass: at least once
                log.warning("notification %s was sent but is still queued (%s)", name, error)
        finally:
            self._sending.discard(entry.key)
