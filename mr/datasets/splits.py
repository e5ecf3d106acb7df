"""Input files cut into splits, and splits dealt out to map invocations.

Planning reads only the files' metadata (names and sizes), never their data, so it costs the
same for a megabyte and a terabyte. A split is a byte range of one file; which records belong
to it is decided when it is read (see :func:`mr.datasets.formats.read_pairs`). A map invocation
reads one or more splits.
"""
from __future__ import annotations

import dataclasses
import heapq
import math
import re
from typing import Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem

# fsspec's async filesystems (s3fs) need their loop on a native thread under gevent.
from mr import fsspec_loop  # noqa: F401
from mr.datasets.formats import DatasetError, read_pairs, require_format, splittable

_GLOB = re.compile(r"[*?\[]")
#: What a writer adds to a dataset directory last, once every part is in place (Hadoop's name);
#: hidden from listings, as every "_" name is.
SUCCESS_MARKER = "_SUCCESS"


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


def committed(url: str, storage_options: dict | None = None) -> bool:
    """Whether the dataset directory ``url`` was committed: it holds :data:`SUCCESS_MARKER`."""
    fs, path = _filesystem(url, storage_options)
    return fs.exists(f"{path.rstrip('/')}/{SUCCESS_MARKER}")


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


def plan_splits(url: str, fmt: str, split_bytes: int, parallelism: int = 1,
                storage_options: dict | None = None) -> list[list[Split]]:
    """The inputs of the map invocations over every file ``url`` names (see list_files): each a
    list of splits, read one after the other.

    The input is cut into a multiple of ``parallelism`` parts (the executor children that will
    map them), as few as keep every part within ``split_bytes``, and every file into ranges of
    at most a part's size; ranges are then dealt out, largest first, to the part holding the
    least, so parts are about equal. Small files thus share a map invocation (a directory of
    thousands of small files is not thousands of invocations), one large file is mapped by
    every child, and no child waits for one odd-sized split. A file that cannot be read from
    the middle is one range (a part may then exceed ``split_bytes``), an empty file none."""
    require_format(fmt)
    if split_bytes < 1 or parallelism < 1:
        raise DatasetError(f"split size and parallelism must be at least 1, not {split_bytes} "
                           f"and {parallelism}")
    files = [(file_url, size) for file_url, size in list_files(url, storage_options)
             if size != 0]
    total = sum(size or 0 for _, size in files)
    parts = parallelism * max(1, math.ceil(total / (split_bytes * parallelism)))
    part_bytes = max(1, math.ceil(total / parts))
    ranges: list[tuple[int, Split]] = []  # (size, split); size 0: a store gave none
    for file_url, size in files:
        if size is None or not splittable(file_url, fmt):
            ranges.append((size or 0, Split(file_url, 0, None, fmt)))
            continue
        step = math.ceil(size / math.ceil(size / part_bytes))  # equal ranges, none tiny
        ranges.extend((min(step, size - start),
                       Split(file_url, start, start + step if start + step < size else None, fmt))
                      for start in range(0, size, step))
    return _dealt(ranges, parts)


def _dealt(ranges: list[tuple[int, Split]], parts: int) -> list[list[Split]]:
    """The ranges in at most ``parts`` lists of about equal size, each in file order
    (largest first to the smallest part: within 4/3 of the best split of sizes)."""
    heap = [(0, number, []) for number in range(min(parts, len(ranges)))]
    for size, split in sorted(ranges, key=lambda item: -item[0]):
        held, number, splits = heapq.heappop(heap)
        splits.append(split)
        heapq.heappush(heap, (held + size, number, splits))
    return sorted((sorted(splits, key=lambda split: (split.url, split.start))
                   for _, _, splits in heap), key=lambda splits: (splits[0].url, splits[0].start))


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
