"""The embedded data store: a dict, for the greenlets of one process.

No method yields to the gevent hub, so each one runs whole before any other greenlet runs:
puts are atomic for readers without a lock.
"""
from __future__ import annotations

from mr.data.base import DataNotFoundError, DataStore


class MemoryDataStore(DataStore):
    def __init__(self):
        self._objects: dict[str, bytes] = {}

    def _put(self, path: str, data: bytes) -> None:
        self._objects[path] = data

    def _get(self, path: str) -> bytes:
        try:
            return self._objects[path]
        except KeyError:
            raise DataNotFoundError(path) from None

    def _delete_tree(self, prefix: str) -> int:
        doomed = self._list_tree(prefix)
        for path in doomed:
            del self._objects[path]
        return len(doomed)

    def _list_tree(self, prefix: str) -> list[str]:
        start = f"{prefix}/" if prefix else ""
        return sorted(path for path in self._objects if path.startswith(start))
