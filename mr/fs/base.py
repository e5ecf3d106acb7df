"""The shared filesystem handlers see as ``FS``: one directory tree per workflow.

Handlers name files by paths relative to their workflow's root, ``/``-separated. A path that is
absolute, or whose ``..`` would climb above the root, is refused here, before any backend sees
it; a backend refuses what only it can see (a symbolic link leading out of the root). These rules
keep handlers, and the keys and values they build paths from, inside their workflow's tree; they
are not a security boundary against handler code, which runs with the worker's rights.
"""
from __future__ import annotations

import abc
import dataclasses
import posixpath
from typing import IO

#: What ``open`` accepts: read, write (truncating) or append, as text or bytes.
OPEN_MODES = ("r", "w", "a", "rb", "wb", "ab")


class PathOutsideRootError(PermissionError):
    """A path that would leave the workflow's root."""


@dataclasses.dataclass(frozen=True)
class Stat:
    """``type`` is ``file`` or ``directory``; ``modified`` a POSIX time, None when the backend
    does not keep one."""
    path: str
    type: str
    size: int
    modified: float | None


def relative_path(path: str, allow_root: bool = False) -> str:
    """``path`` normalized ('' for the root itself, when ``allow_root``); refuses what would
    leave the root."""
    if not isinstance(path, str):
        raise TypeError(f"an FS path must be a str, got {type(path).__name__}")
    if "\0" in path:
        raise ValueError(f"FS path {path!r} contains a NUL character")
    if path.startswith("/") or "://" in path:
        raise PathOutsideRootError(f"FS path {path!r} is absolute; FS paths are relative to the "
                                   f"workflow's root")
    normalized = posixpath.normpath(path) if path else "."
    if normalized == ".." or normalized.startswith("../"):
        raise PathOutsideRootError(f"FS path {path!r} leaves the workflow's root")
    if normalized == ".":
        if not allow_root:
            raise ValueError(f"FS path {path!r} names the workflow's root itself, which this "
                             f"operation cannot take")
        return ""
    return normalized


class SharedFilesystem(abc.ABC):
    """A workflow's files. The public methods check paths, then call the backend's."""

    def mkdir(self, path: str) -> None:
        """Create the directory ``path`` and its missing parents; an existing one is fine."""
        self._mkdir(relative_path(path, allow_root=True))

    def ls(self, path: str = "") -> list[str]:
        """The sorted names of the entries of the directory ``path`` (the root by default)."""
        return self._ls(relative_path(path, allow_root=True))

    def cp(self, source: str, destination: str) -> None:
        """Copy a file, or a directory with everything in it, to ``destination``. An existing
        destination is replaced only if both are files (as ``cp`` would)."""
        self._cp(relative_path(source), relative_path(destination))

    def mv(self, source: str, destination: str) -> None:
        """Move (rename) a file or a directory; the same rule as :meth:`cp` for what exists."""
        self._mv(relative_path(source), relative_path(destination))

    def rm(self, path: str, recursive: bool = False) -> None:
        """Remove a file, an empty directory, or with ``recursive`` a directory and its
        contents."""
        self._rm(relative_path(path), recursive)

    def stat(self, path: str) -> Stat:
        """FileNotFoundError when there is nothing at ``path``."""
        return self._stat(relative_path(path, allow_root=True))

    def exists(self, path: str) -> bool:
        return self._exists(relative_path(path, allow_root=True))

    def open(self, path: str, mode: str = "r", encoding: str = "utf-8") -> IO:
        """A file object (use it in a ``with``). Writing creates the missing parent
        directories. ``encoding`` applies in text mode."""
        if mode not in OPEN_MODES:
            raise ValueError(f"FS.open mode must be one of {', '.join(OPEN_MODES)}, got {mode!r}")
        return self._open(relative_path(path), mode, encoding)

    @abc.abstractmethod
    def _mkdir(self, path: str) -> None: ...

    @abc.abstractmethod
    def _ls(self, path: str) -> list[str]: ...

    @abc.abstractmethod
    def _cp(self, source: str, destination: str) -> None: ...

    @abc.abstractmethod
    def _mv(self, source: str, destination: str) -> None: ...

    @abc.abstractmethod
    def _rm(self, path: str, recursive: bool) -> None: ...

    @abc.abstractmethod
    def _stat(self, path: str) -> Stat: ...

    @abc.abstractmethod
    def _exists(self, path: str) -> bool: ...

    @abc.abstractmethod
    def _open(self, path: str, mode: str, encoding: str) -> IO: ...
