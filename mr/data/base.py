"""The data store interface: where a request's bulk data lives, never in etcd.

Arguments, mapper output, combined and reduced datasets are too big for coordination storage, so
they are objects in a data store, addressed by '/'-separated relative paths that callers build
from validated names and hex ids. Paths are checked again here (defence in depth): a path can
never escape the store's root, whatever the backend. Segments starting with '.' are reserved
for writes in progress, so that readers and listings never see a partial object.

Nothing here holds the gevent event loop for long: a backend that waits for I/O says so
(:attr:`DataStore.blocking_io`) and runs in a native thread (:mod:`mr.offload`), and datasets
are encoded and decoded by :mod:`mr.codec`, which moves large ones off the loop itself.
"""
from __future__ import annotations

import abc

from mr import codec, offload


class DataError(Exception):
    """The store failed or could not be reached."""


class DataNotFoundError(KeyError):
    """No object at the path."""

    def __init__(self, path: str):
        super().__init__(path)
        self.path = path

    def __str__(self) -> str:  # KeyError would show the repr of its argument
        return f"no data at {self.path!r}"


def check_path(path: str) -> str:
    """``path`` if it is a relative path of non-empty segments none of which starts with '.'."""
    if not isinstance(path, str):
        raise TypeError(f"a data path must be a str, got {type(path).__name__}")
    if path.startswith("/"):
        raise ValueError(f"data path {path!r} is absolute")
    for segment in path.split("/"):
        if not segment:
            raise ValueError(f"data path {path!r} has an empty segment")
        if segment.startswith("."):
            raise ValueError(f"data path {path!r} has a segment starting with '.'")
    return path


class DataStore(abc.ABC):
    """Objects (bytes) at paths. The public methods check paths, then call the backend's."""

    #: Whether the backend's methods wait for I/O (a disk, a network), which would stall every
    #: greenlet: then they run in a native thread, at the cost of a thread hop per call.
    blocking_io = False

    def put(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path``, replacing any object there.

        Atomic for readers: a concurrent ``get`` returns the old or the new value, whole.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        self._backend(self._put, check_path(path), bytes(data))

    def get(self, path: str) -> bytes:
        """The object at ``path``; raises :class:`DataNotFoundError` when there is none."""
        return self._backend(self._get, check_path(path))

    def delete_tree(self, prefix: str) -> int:
        """Remove every object under ``prefix/``; returns how many. A missing prefix removes 0."""
        return self._backend(self._delete_tree, check_path(prefix))

    def delete_trees(self, prefixes: list[str]) -> list[Exception | None]:
        """``delete_tree`` of each prefix, in one call to the backend (one handoff to a thread
        for them all): for each, None, or the error it failed with."""
        return self._backend(self._delete_each, [check_path(prefix) for prefix in prefixes])

    def _delete_each(self, prefixes: list[str]) -> list[Exception | None]:
        outcomes: list[Exception | None] = []
        for prefix in prefixes:
            try:
                self._delete_tree(prefix)
                outcomes.append(None)
            except Exception as error:  # noqa: BLE001 — the caller decides, per prefix
                outcomes.append(error)
        return outcomes

    def list_tree(self, prefix: str = "") -> list[str]:
        """Sorted paths (as given to ``put``) of the objects under ``prefix/``; all when empty."""
        return self._backend(self._list_tree, check_path(prefix) if prefix else "")

    def close(self) -> None:
        """Release what the store holds; the base holds nothing."""

    def put_pairs(self, path: str, pairs: list) -> None:
        """Store a dataset, a list of ``[key, value]`` pairs, in :mod:`mr.codec`'s encoding."""
        self.put(path, codec.encode(pairs))

    def get_pairs(self, path: str) -> list[list]:
        """The dataset that :meth:`put_pairs` stored at ``path`` (pairs come back as lists)."""
        return codec.decode(self.get(path))

    def _backend(self, method, *args):
        """Call a backend method: in a native thread if it waits for I/O."""
        return offload.run(method, *args) if self.blocking_io else method(*args)

    def __enter__(self) -> "DataStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @abc.abstractmethod
    def _put(self, path: str, data: bytes) -> None:
        """Store ``data`` at a checked path, atomically for readers."""

    @abc.abstractmethod
    def _get(self, path: str) -> bytes:
        """The object at a checked path, or raise DataNotFoundError."""

    @abc.abstractmethod
    def _delete_tree(self, prefix: str) -> int:
        """Remove the objects under a checked, non-empty ``prefix/``; return how many."""

    @abc.abstractmethod
    def _list_tree(self, prefix: str) -> list[str]:
        """Sorted paths of the objects under ``prefix/`` (a checked path, or '' for all)."""
