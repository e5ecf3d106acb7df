"""The datasets jobs of a pipeline read and write, named by URL: how two URLs relate (does a job
read what another writes?), whether an output is committed, its fingerprint, reading it, and
writing small records whole.

Local paths are made absolute, since the server that runs the jobs does not share the
caller's working directory; other URLs (``s3://...``) are kept as they are.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import posixpath
import re
from typing import Any, Iterator

import fsspec

# fsspec's async filesystems (s3fs) need their loop on a native thread under gevent.
from mr import fsspec_loop  # noqa: F401
from mr.data.fsspec_store import published
from mr.datasets import DatasetError, committed, list_files, read_pairs

_PROTOCOL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def absolute(url: str, base: str | None = None) -> str:
    """``url`` as a server elsewhere can open it: a local path made absolute (against ``base``,
    else the working directory), a ``file://`` URL turned into its path; others unchanged."""
    if url.startswith("file://"):
        url = url[len("file://"):]
    if _PROTOCOL.match(url):
        return url.rstrip("/") or url
    return os.path.normpath(os.path.join(base or os.getcwd(), os.path.expanduser(url)))


def overlaps(read: str, written: str) -> bool:
    """Whether reading ``read`` (a file, a directory or a glob) may read something of the
    dataset written at ``written``: one lies within the other, or the glob matches it, one of
    its parents or a path below it (compared component by component, as globs match)."""
    read_parts = read.rstrip("/").split("/")
    written_parts = written.rstrip("/").split("/")
    return all(fnmatch.fnmatchcase(name, pattern)
               for pattern, name in zip(read_parts, written_parts))


def _fs(url: str):
    return fsspec.core.url_to_fs(url)


def remove(url: str) -> None:
    """Remove a file or directory tree; nothing there is fine."""
    fs, path = _fs(url)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path, recursive=True)


def recreate(url: str) -> None:
    """An empty directory at ``url``, whatever was there."""
    remove(url)
    fs, path = _fs(url)
    fs.makedirs(path, exist_ok=True)


def fingerprint(url: str) -> dict[str, list]:
    """What identifies the content of the files ``url`` names (as a job reads them): each
    file's size and its store's etag, or its modification time where there is no etag."""
    prints = {}
    for file_url, size in list_files(url):
        fs, path = _fs(file_url)
        info = fs.info(path)
        identity = next((info[key] for key in ("ETag", "etag", "md5", "mtime", "LastModified",
                                               "last_modified", "updated") if key in info), None)
        prints[file_url] = [size, str(identity)]
    return prints


def read(url: str, fmt: str) -> Iterator[list]:
    """The ``[key, value]`` pairs of the files ``url`` names, in the file writer's ``fmt``."""
    for file_url, _ in list_files(url):
        fs, path = _fs(file_url)
        if fmt == "tsv":
            for _, line in read_pairs(fs, path, "text"):
                key, value = line.split("\t", 1)
                yield [json.loads(key), json.loads(value)]
        else:
            yield from read_pairs(fs, path, fmt)


def write_json(url: str, record: dict[str, Any]) -> None:
    """Write ``record`` as JSON at ``url`` whole: a reader sees the old record or the new one,
    never a part (renamed into place where the store renames; one put on object stores)."""
    fs, path = _fs(url)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with published(fs, path) as written:
        fs.pipe_file(written, json.dumps(record, indent=1, sort_keys=True).encode())


def read_json(url: str) -> dict[str, Any] | None:
    """The record written at ``url``; None when there is none."""
    fs, path = _fs(url)
    try:
        return json.loads(fs.cat_file(path))
    except FileNotFoundError:
        return None


__all__ = ["DatasetError", "absolute", "committed", "fingerprint", "overlaps", "read",
           "read_json", "recreate", "remove", "write_json"]
