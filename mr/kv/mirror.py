"""A process's copy of the keys under one prefix, kept current by a watch.

Used for what every front end or worker consults on each request but which changes rarely (the
workflows served, the API tokens): reading the copy costs nothing, and a change reaches every
process within the watch's delay, without a restart.
"""
from __future__ import annotations

import logging
from typing import Callable

import gevent

from mr.kv.base import KV, CompactedError, KVError, KeyValue

log = logging.getLogger(__name__)

#: How long a failed watch waits before it tries again.
RETRY_S = 1.0


class PrefixMirror:
    """Calls ``on_put(name, kv)`` for every key stored under ``prefix`` (``name`` is the key
    without the prefix), and ``on_delete(name)`` for each one deleted, from ``start`` on.

    A watch that falls behind compaction reloads everything: names no longer stored are deleted
    through ``on_delete(name)`` of the names given by ``known()``.
    """

    def __init__(self, kv: KV, prefix: str, on_put: Callable[[str, KeyValue], None],
                 on_delete: Callable[[str], None], known: Callable[[], set[str]],
                 what: str, keys_only: bool = False):
        self._kv = kv
        self._prefix = prefix
        self._on_put = on_put
        self._on_delete = on_delete
        self._known = known
        self._what = what
        self._keys_only = keys_only
        self._greenlet: gevent.Greenlet | None = None

    @property
    def started(self) -> bool:
        return self._greenlet is not None

    def start(self) -> None:
        if self._greenlet is None:
            revision = self._load()
            self._greenlet = gevent.spawn(self._follow, revision)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None

    def _load(self) -> int:
        """Take in what is stored now, drop what is not; the revision the watch goes on from."""
        revision = self._kv.current_revision()
        stored = {kv.key[len(self._prefix):]: kv
                  for page in self._kv.pages(self._prefix, keys_only=self._keys_only)
                  for kv in page}
        for name in sorted(self._known() - stored.keys()):
            self._on_delete(name)
        for name in sorted(stored):
            self._on_put(name, stored[name])
        return revision

    def _follow(self, revision: int | None) -> None:
        while True:
            try:
                if revision is None:
                    revision = self._load()
                with self._kv.watch(self._prefix, prefix=True,
                                    start_revision=revision + 1) as watch:
                    for event in watch:
                        revision = event.revision
                        name = event.kv.key[len(self._prefix):]
                        if event.type == "put":
                            self._on_put(name, event.kv)
                        else:
                            self._on_delete(name)
            except CompactedError:
                log.warning("the watch of %s fell behind compaction; reloading", self._what)
                revision = None
            except KVError as error:
                log.warning("the watch of %s failed (%s); retrying", self._what, error)
                gevent.sleep(RETRY_S)
