"""A data store on any fsspec filesystem: a local or shared directory, or an object store.

A plain path or ``file://`` URL is a directory, created if missing; in distributed mode it must be
one directory shared by every node (e.g. NFS). Other URLs (``s3://bucket/prefix``, ...) need the
fsspec implementation of their protocol installed.
"""
from __future__ import annotations

import contextlib
import posixpath
import uuid
from typing import Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

# fsspec's async filesystems (s3fs) need their loop on a native thread under gevent.
from mr import fsspec_loop  # noqa: F401
from mr.data.base import DataError, DataNotFoundError, DataStore, check_path

#: What a missing object looks like on a directory tree: nothing there, a directory there, or a
#: file where a parent directory would be.
_NOT_FOUND = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


def can_rename(fs: AbstractFileSystem) -> bool:
    """Whether ``fs`` has a native move (a rename), which lets a write go aside and be published
    whole. Without one, fsspec's move is a copy, no more atomic than writing in place."""
    return type(fs).mv is not AbstractFileSystem.mv


@contextlib.contextmanager
def published(fs: AbstractFileSystem, target: str) -> Iterator[str]:
    """The path to write ``target``'s content to: where ``fs`` can rename, a reserved name beside
    it (a '.' name, hidden from listings), renamed into place when the block ends; elsewhere
    ``target`` itself. What a failed block wrote is removed. Readers never see a partial file
    where renames exist."""
    written = target
    if can_rename(fs):
        parent, name = posixpath.split(target)
        written = f"{parent}/.{name}.{uuid.uuid4().hex}.partial"
    try:
        yield written
        if written != target:
            fs.mv(written, target)
    except BaseException:
        with contextlib.suppress(OSError):
            if fs.exists(written):
                fs.rm(written)
        raise


class FsspecDataStore(DataStore):
    blocking_io = True  # reads and writes of files, on a local disk, NFS or over the network

    def __init__(self, url: str, *, temporary: bool = False):
        self.url = url
        self._temporary = temporary
        try:
            self._fs, root = fsspec.core.url_to_fs(url)
            self._root = root.rstrip("/")
            self._fs.makedirs(self._root, exist_ok=True)
        except (OSError, ValueError, ImportError) as error:
            raise DataError(f"cannot open data store {url!r}: {error}") from error
        self._publish_by_rename = can_rename(self._fs)

    def close(self) -> None:
        """A temporary store goes with its last user."""
        if self._temporary:
            self._temporary = False  # closing twice is no error
            self._fs.rm(self._root, recursive=True)

    @property
    def fs(self) -> AbstractFileSystem:
        return self._fs

    def location(self, path: str) -> str:
        """Where ``path`` is on :attr:`fs`: for executor children, which open the store's URL
        themselves and stream files in and out of it."""
        return self._full(check_path(path))

    def url_of(self, location: str) -> str:
        """A URL any process can open for a :meth:`location`."""
        return location if isinstance(self._fs, LocalFileSystem) else (
            self._fs.unstrip_protocol(location))

    def _put(self, path: str, data: bytes) -> None:
        target = self._full(path)
        try:
            self._fs.makedirs(posixpath.dirname(target), exist_ok=True)
            with published(self._fs, target) as written:
                self._fs.pipe_file(written, data)
        except OSError as error:
            raise DataError(f"cannot write {path!r} to {self.url!r}: {error}") from error

    def _get(self, path: str) -> bytes:
        try:
            return self._fs.cat_file(self._full(path))
        except _NOT_FOUND:
            raise DataNotFoundError(path) from None
        except OSError as error:
            raise DataError(f"cannot read {path!r} from {self.url!r}: {error}") from error

    def _delete_tree(self, prefix: str) -> int:
        """Remove the tree; when the filesystem can rename, it is first renamed aside (atomic:
        of two processes removing it at once, one takes it, the other finds it gone) so that
        two removals never trip over each other's half-deleted files. Where nothing was ever
        stored (a request whose data all rode inline), it costs one look."""
        top = self._full(prefix)
        paths: list[str] = []
        try:
            if not self._fs.isdir(top):  # a file at ``prefix`` itself is not under ``prefix/``
                return 0
            paths = self._list_tree(prefix)
            if self._publish_by_rename:
                parent, name = posixpath.split(top)
                aside = f"{parent}/.{name}.{uuid.uuid4().hex}.deleting"
                self._fs.mv(top, aside, recursive=True)
                top = aside
            self._fs.rm(top, recursive=True)  # also removes partials of crashed writers
        except FileNotFoundError:
            pass  # removed by another process meanwhile
        except OSError as error:
            raise DataError(f"cannot delete {prefix!r} in {self.url!r}: {error}") from error
        return len(paths)

    def _list_tree(self, prefix: str) -> list[str]:
        top = self._full(prefix) if prefix else self._root
        try:
            if not self._fs.isdir(top):
                return []
            found = self._fs.find(top, detail=True)
        except OSError as error:
            raise DataError(f"cannot list {prefix!r} in {self.url!r}: {error}") from error
        # Files only: an object store may list a prefix whose objects were removed as an entry.
        relative = (path[len(self._root) + 1:] for path, info in found.items()
                    if info["type"] == "file")
        return sorted(path for path in relative if "/." not in f"/{path}")

    def _full(self, path: str) -> str:
        return f"{self._root}/{path}"
