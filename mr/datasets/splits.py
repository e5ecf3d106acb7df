"""Input files cut into splits: the unit of work of one map invocation.

Planning reads only the files' metadata (names and sizes), never their data, so it costs the
same for a megabyte and a terabyte. A split is a byte range of one file; which records belong
to it is decided when it is read (see :func:`mr.datasets.formats.read_pairs`).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem

# fsspec's async filesystems (s3fs) need their loop on a native thread under gevent.
from mr import fsspec_loop  # noqa: F401
from mr.datasets.formats import DatasetError, read_pairs, require_format, splittable

_GLOB = re.compile(r"[*?\[]")


@dataclasses.dataclass(frozen=True)
class Split:
    """Bytes ``[start, end)`` of the file at ``url`` (``end`` None: to the end of the file)."""
    url: str
    start: int
    end: int | None
    fmt: str

    @property
    def size(self) -> int | None:
        return None if self.end is None else self.end - self.start

    def to_message(self) -> list:
        return [self.url, self.start, self.end, self.fmt]

    @classmethod
    def from_message(cls, message: list) -> Split:
        try:
            url, start, end, fmt = message
        except (TypeError, ValueError):
            raise DatasetError(f"not a split: {message!r:.200}") from None
        return cls(url, start, end, fmt)

    def open_pairs(self, storage_options: dict | None = None) -> Iterator[list]:
        fs, path = _filesystem(self.url, storage_options)
        return read_pairs(fs, path, self.fmt, self.start, self.end)


def list_files(url: str, storage_options: dict | None = None) -> list[tuple[str, int]]:
    """``(url, size)`` of every file ``url`` names, sorted by URL: the file itself; every file
    under a directory, but for hidden ones (a name on the way starting with "_" or ".", such as
    ``_SUCCESS``, ``_temporary/`` or a writer's ``.partial``); or what a glob matches, a
    directory matched standing for its files."""
    fs, path = _filesystem(url, storage_options)
    try:
        if _GLOB.search(path):
            matches = {name: info for name, info in fs.glob(path, detail=True).items()
                       if not _hidden(name.rsplit("/", 1)[-1])}
        else:
            info = fs.info(path)
            matches = {info["name"]: info}
        files = []
        for name, info in matches.items():
            if info["type"] == "directory":
                files.extend(_visible_files(fs, name))
            else:
                files.append((name, info.get("size")))
    except FileNotFoundError:
        files = []
    except OSError as error:
        raise DatasetError(f"cannot list {url}: {error}") from None
    if not files:
        raise DatasetError(f"no input files at {url}")
    return sorted((_url(fs, name), size) for name, size in files)


def plan_splits(url: str, fmt: str, split_bytes: int,
                storage_options: dict | None = None) -> list[Split]:
    """Splits of about ``split_bytes`` covering every file ``url`` names (see list_files); a
    file that cannot be read from the middle is one split, an empty file none."""
    require_format(fmt)
    if split_bytes < 1:
        raise DatasetError(f"split size must be at least 1 byte, not {split_bytes}")
    splits = []
    for file_url, size in list_files(url, storage_options):
        if size == 0:
            continue
        if size is None or not splittable(file_url, fmt):  # None: a store that gives no sizes
            splits.append(Split(file_url, 0, None, fmt))
            continue
        for start in range(0, size, split_bytes):
            end = start + split_bytes
            splits.append(Split(file_url, start, end if end < size else None, fmt))
    return splits


def _filesystem(url: str, storage_options: dict | None):
    """``(fs, path)`` for ``url``, or a DatasetError naming it: an unknown protocol, one whose
    package is not installed, options it does not take."""
    try:
        return fsspec.core.url_to_fs(url, **(storage_options or {}))
    except (ValueError, ImportError, TypeError, OSError) as error:
        raise DatasetError(f"cannot open {url}: {error}") from None


def _visible_files(fs, root: str) -> list[tuple[str, int]]:
    root = root.rstrip("/")
    return [(name, info.get("size")) for name, info in fs.find(root, detail=True).items()
            if not _hidden(name[len(root) + 1:])]


def _hidden(relative_path: str) -> bool:
    return any(part[:1] in ("_", ".") for part in relative_path.split("/"))


def _url(fs, path: str) -> str:
    """A URL any process can open: the path on the local filesystem, else with the protocol."""
    return path if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)
