"""The workflows a process serves: every workflow in the KV, as it is now.

A workflow created (``mr workflow load``, ``mr_kv_workflow_create``) while the cluster runs is
served by every front end and worker as soon as the watch on the workflow records brings it
(well within a second), and one deleted stops being served: no restart. ``MR_WORKFLOW_NAMES``,
when set, only narrows the set to those names.
"""
from __future__ import annotations

import logging
from typing import Callable

from mr.kv.base import KV
from mr.kv.mirror import PrefixMirror
from mr.models.keys import Keys

log = logging.getLogger(__name__)


class ServedWorkflows:
    def __init__(self, kv: KV, keys: Keys, only: tuple[str, ...] = ()):
        self._kv = kv
        self._prefix = keys.workflows()
        self._only = frozenset(only)
        self._names: set[str] = set()
        self._mirror = PrefixMirror(kv, self._prefix, lambda name, _kv: self._add(name),
                                    self._remove, lambda: set(self._names),
                                    "the workflows", keys_only=True)
        #: Called with a workflow's name when it starts, or stops, being served.
        self.on_added: list[Callable[[str], None]] = []
        self.on_removed: list[Callable[[str], None]] = []

    def __contains__(self, workflow: str) -> bool:
        return workflow in self._names

    def serves(self, workflow: str) -> bool:
        """Whether ``workflow`` is served; one not seen yet is looked up, so that a request
        sent right after its workflow was created does not race the watch."""
        if workflow in self._names:
            return True
        if (self._only and workflow not in self._only) or not self._mirror.started:
            return False
        if self._kv.get(self._prefix + workflow) is None:
            return False
        self._add(workflow)
        return True

    @property
    def names(self) -> list[str]:
        return sorted(self._names)

    def start(self) -> None:
        """Serve the workflows there are, then follow their creation and deletion."""
        self._mirror.start()

    def stop(self) -> None:
        self._mirror.stop()

    def _add(self, name: str) -> None:
        if name in self._names or (self._only and name not in self._only):
            return
        self._names.add(name)
        log.info("serving workflow %s", name)
        self._notify(self.on_added, name)

    def _remove(self, name: str) -> None:
        if name not in self._names:
            return
        self._names.discard(name)
        log.info("no longer serving workflow %s: it was deleted", name)
        self._notify(self.on_removed, name)

    @staticmethod
    def _notify(listeners: list[Callable[[str], None]], name: str) -> None:
        """Every listener hears of it, whatever another one raised."""
        for listener in listeners:
            try:
                listener(name)
            except Exception:  # one failing role must not stop the others from following
                log.exception("could not follow workflow %s", name)
