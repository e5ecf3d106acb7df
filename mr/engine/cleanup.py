"""Removing finished requests: their record, their run state in the KV, their data.

Finishing a request writes a cleanup entry ``P/cleanup/<due>/<wf>/<id>`` in the same
transaction, so no restart forgets a removal. The one worker that holds the sweeper's lease
removes due requests (so workers never race each other over one request's data); a front end
removes a blocking request shortly after its result is delivered, in the background, with the
others delivered meanwhile (one transaction for many requests, instead of one each). One request
that cannot be removed now (its data store unreachable, say) is left for a later pass and never
stops the others.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import gevent

from mr.kv.base import Delete, Operation
from mr.models import Request

if TYPE_CHECKING:
    from mr.engine.engine import Engine

log = logging.getLogger(__name__)

#: Cleanup entries read per pass.
CLEANUP_BATCH = 100
#: The value of the cleanup entry of a request that may have left files in the shuffle store.
SHUFFLED = b"shuffle"
#: Delivered requests removed in one transaction at most: 3 deletes each (a delivered request is
#: done, so it has no finished key), well within etcd's default --max-txn-ops (128).
RELEASE_BATCH = 32
#: How long a delivered request waits for others to be removed with it: each removal is a write
#: that etcd syncs to disk and sends to every process watching the workflow's requests.
RELEASE_LINGER_S = 0.1


class Cleaner:
    def __init__(self, engine: "Engine"):
        self.engine = engine
        self.kv = engine.kv
        self.keys = engine.keys
        #: Entries that failed in this process: (failures, skipped until this time).
        self._retries: dict[str, tuple[int, float]] = {}
        #: Delivered requests waiting for the greenlet that removes them (release_soon).
        self._delivered: list[Request] = []
        self._releasing: gevent.Greenlet | None = None

    def cleanup_key(self, request: Request) -> str:
        """When a finished request is due for removal, as a key that sorts by due time."""
        settings = self.engine.settings
        retention = (settings.failure_retention_s if request.state == "failed"
                     else settings.result_retention_s)
        due_ms = int((request.finished_at + retention) * 1000)
        return f"{self.keys.cleanups()}{due_ms:015d}/{request.workflow}/{request.request_id}"

    @staticmethod
    def cleanup_value(request: Request) -> bytes:
        """What a request's cleanup entry holds: whether it may have left files in the shuffle
        store (which, when it is not the data store, costs a listing to clean)."""
        return SHUFFLED if request.input is not None or request.shuffles else b""

    def release(self, request: Request) -> None:
        """Remove a finished request now: its result was delivered."""
        if self.engine.settings.do_cleanup_requests:
            self.remove(request.workflow, request.request_id, self.cleanup_key(request),
                        shuffled=bool(self.cleanup_value(request)))

    def release_soon(self, request: Request) -> None:
        """Remove a finished request whose result was delivered, in a greenlet of its own, with
        every other one delivered within RELEASE_LINGER_S in one transaction. One this process
        does not get to remove (it exits first) goes when its cleanup entry is due."""
        if not self.engine.settings.do_cleanup_requests:
            return
        self._delivered.append(request)
        if self._releasing is None:
            self._releasing = gevent.spawn(self._release_delivered)

    def _release_delivered(self) -> None:
        try:
            gevent.sleep(RELEASE_LINGER_S)
            while self._delivered:
                batch = self._delivered[:RELEASE_BATCH]
                del self._delivered[:RELEASE_BATCH]
                self._remove_delivered(batch)
        finally:  # no switch since the last look: a request delivered from now on spawns anew
            self._releasing = None

    def _remove_delivered(self, requests: list[Request]) -> None:
        """Their data, in one call to each store, then the records of those whose data went,
        together."""
        failed: dict[int, Exception] = {}
        for store in self.engine.stores:
            chosen = [index for index, request in enumerate(requests) if index not in failed
                      and store in self._stores(shuffled=bool(self.cleanup_value(request)))]
            try:
                outcomes = store.delete_trees([f"{requests[index].workflow}/"
                                               f"{requests[index].request_id}"
                                               for index in chosen])
            except Exception as error:  # noqa: BLE001 — a path refused: each goes when due
                outcomes = [error] * len(chosen)
            failed.update((index, error) for index, error in zip(chosen, outcomes) if error)
        for index, error in failed.items():
            _leave([requests[index]], error)
        removable = [request for index, request in enumerate(requests) if index not in failed]
        if not removable:
            return
        try:
            self.kv.txn([], [delete for request in removable for delete in self._record_deletes(
                request.workflow, request.request_id, self.cleanup_key(request),
                stop_mark=False)])
        except Exception as error:  # noqa: BLE001 — nobody waits for this but the log
            _leave(removable, error)

    def remove(self, workflow: str, request_id: str, cleanup_key: str | None = None,
               shuffled: bool = True) -> None:
        """Remove everything a request left: its data, its run state, its record. Removing
        what is already gone is no error, so two removals of one request both succeed.
        ``shuffled``: it may have left files in the shuffle store too."""
        self._remove_data(workflow, request_id, shuffled)
        self.kv.txn([], self._record_deletes(workflow, request_id, cleanup_key))

    def _remove_data(self, workflow: str, request_id: str, shuffled: bool) -> None:
        for store in self._stores(shuffled):
            store.delete_tree(f"{workflow}/{request_id}")

    def _stores(self, shuffled: bool) -> list:
        """The stores a request may have left data in: the shuffle store too when
        ``shuffled``."""
        return self.engine.stores if shuffled else [self.engine.data]

    def _record_deletes(self, workflow: str, request_id: str, cleanup_key: str | None,
                        stop_mark: bool = True) -> list[Operation]:
        """Its record, run state and finished key go in one transaction; its cleanup entry
        with them. ``stop_mark``: whether it may have a finished key (a done one has none)."""
        operations: list[Operation] = [
            Delete(self.keys.entity(Request.kind, workflow, request_id)),
            Delete(self.keys.run(workflow, request_id), prefix=True)]
        if stop_mark:
            operations.append(Delete(self.keys.finished(workflow) + request_id))
        if cleanup_key:
            operations.append(Delete(cleanup_key))
        return operations

    def remove_due(self, limit: int = CLEANUP_BATCH) -> int:
        """Remove the finished requests whose retention has passed; returns how many."""
        now = time.time()
        removed = 0
        listing = self.kv.range(self.keys.cleanups(), prefix=True, limit=limit)
        entries = listing.kvs
        if not listing.more:  # every entry is listed: forget the retries of those now gone
            listed = {entry.key for entry in entries}
            self._retries = {key: retry for key, retry in self._retries.items() if key in listed}
        for entry in entries:
            due_ms, workflow, request_id = entry.key[len(self.keys.cleanups()):].split("/")
            if int(due_ms) > now * 1000:
                break
            failures, retry_at = self._retries.get(entry.key, (0, 0.0))
            if retry_at > now:
                continue
            try:
                self.remove(workflow, request_id, entry.key, shuffled=entry.value == SHUFFLED)
            except Exception as error:  # noqa: BLE001 — one bad entry must not stop the rest
                self._retries[entry.key] = (failures + 1, now + min(2 ** failures, 300))
                log.warning("cannot remove request %s of %s yet (%s: %s); retrying later",
                            request_id, workflow, type(error).__name__, error)
                continue
            self._retries.pop(entry.key, None)
            removed += 1
        return removed


def _leave(requests: list[Request], error: Exception) -> None:
    log.warning("cannot remove delivered request(s) %s now (%s: %s); each goes when its cleanup "
                "entry is due", ", ".join(f"{r.workflow}/{r.request_id}" for r in requests),
                type(error).__name__, error)
