"""The shared filesystem on any fsspec URL: a local or shared directory, or an object store.

Each workflow's root is ``<root URL>/<workflow>``, created on first use. On a local directory a
path is also resolved through symbolic links, and refused if it ends up outside the root: a link
planted inside the tree cannot lead a handler out of it.
"""
from __future__ import annotations

import datetime
import os
import posixpath
from typing import IO

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.spec import AbstractFileSystem

# fsspec's async filesystems (s3fs) need their loop on a native thread under gevent.
from mr import fsspec_loop  # noqa: F401
from mr.fs.base import PathOutsideRootError, SharedFilesystem, Stat
from mr.models.names import check_workflow_name


def open_root(root_url: str) -> tuple[AbstractFileSystem, str]:
    """The filesystem and root path of ``root_url`` (a plain path may start with ``~``);
    ValueError naming the URL when fsspec cannot use it."""
    url = root_url if "://" in root_url else os.path.expanduser(root_url)
    try:
        filesystem, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:
        raise ValueError(f"cannot use {root_url!r} as the shared filesystem's root: "
                         f"{error}") from None
    return filesystem, root.rstrip("/")


def check_shared_root(root_url: str) -> None:
    """ValueError unless the separate processes that run handlers can share ``root_url``."""
    filesystem, _ = open_root(root_url)
    if isinstance(filesystem, MemoryFileSystem):
        raise ValueError(f"cannot use {root_url!r} as the shared filesystem's root: memory:// "
                         f"lives in one process, and handlers run in several")


class FsspecFilesystem(SharedFilesystem):
    def __init__(self, root_url: str, workflow: str):
        self._fs, base = open_root(root_url)
        self._root = f"{base}/{check_workflow_name(workflow)}"
        self._local = isinstance(self._fs, LocalFileSystem)
        self._real_root: str | None = None  # known once the root exists

    def _mkdir(self, path: str) -> None:
        self._fs.makedirs(self._full(path), exist_ok=True)

    def _ls(self, path: str) -> list[str]:
        full = self._full(path)
        if self._info(path, full)["type"] != "directory":
            raise NotADirectoryError(f"FS path {path!r} is not a directory")
        return sorted(posixpath.basename(entry.rstrip("/"))
                      for entry in self._fs.ls(full, detail=False))

    def _cp(self, source: str, destination: str) -> None:
        self._transfer(self._fs.copy, source, destination)

    def _mv(self, source: str, destination: str) -> None:
        self._transfer(self._fs.mv, source, destination)

    def _transfer(self, operation, source: str, destination: str) -> None:
        """Copy or move after the checks they share: what exists at the destination, and a
        directory never goes inside itself."""
        source_full, destination_full = self._full(source), self._full(destination)
        kind = self._info(source, source_full)["type"]
        if destination == source or destination.startswith(source + "/"):
            raise ValueError(f"cannot put FS path {source!r} at {destination!r}, inside itself")
        if self._fs.exists(destination_full) and not (
                kind == "file" and self._fs.isfile(destination_full)):
            raise FileExistsError(f"FS path {destination!r} exists; only a file may replace a "
                                  f"file")
        self._fs.makedirs(posixpath.dirname(destination_full), exist_ok=True)
        operation(source_full, destination_full, recursive=kind == "directory")

    def _rm(self, path: str, recursive: bool) -> None:
        full = self._full(path)
        if self._info(path, full)["type"] != "directory":
            self._fs.rm_file(full)
        elif recursive:
            self._fs.rm(full, recursive=True)
        else:
            self._fs.rmdir(full)  # OSError when it is not empty

    def _stat(self, path: str) -> Stat:
        info = self._info(path, self._full(path))
        modified = info.get("mtime", info.get("created"))
        if isinstance(modified, datetime.datetime):
            modified = modified.timestamp()
        return Stat(path=path, type=info["type"], size=info["size"], modified=modified)

    def _exists(self, path: str) -> bool:
        return self._fs.exists(self._full(path))

    def _open(self, path: str, mode: str, encoding: str) -> IO:
        full = self._full(path)
        if "r" not in mode:
            self._fs.makedirs(posixpath.dirname(full), exist_ok=True)
        text = {} if "b" in mode else {"encoding": encoding}
        return self._fs.open(full, mode, **text)

    def _full(self, path: str) -> str:
        """The backend path of a checked relative path, after the symbolic-link check."""
        if self._real_root is None:
            self._fs.makedirs(self._root, exist_ok=True)
            self._real_root = os.path.realpath(self._root) if self._local else self._root
        full = f"{self._root}/{path}" if path else self._root
        if self._local:
            real = os.path.realpath(full)
            if real != self._real_root and not real.startswith(self._real_root + os.sep):
                raise PathOutsideRootError(f"FS path {path!r} leads out of the workflow's root "
                                           f"through a symbolic link")
        return full

    def _info(self, path: str, full: str) -> dict:
        try:
            return self._fs.info(full)
        except FileNotFoundError:
            raise FileNotFoundError(f"no such FS path: {path!r}") from None
