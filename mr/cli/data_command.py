"""``mr data put|ls|cat|rm``: datasets in the deployment's data store, for users who have no
object store of their own to name as a request's input.

A dataset is a file or a directory under ``datasets/`` in the data store (``MR_DATA_STORE_URL``);
``put`` prints the URL a request names as its input. Copies stream, a buffer at a time, and on
stores that can rename each file is written under a hidden name and renamed into place, so that a
request never reads half a file. ``cat`` also reads any URL or local path, such as a job's output
directory.
"""
from __future__ import annotations

import functools
import json
import os
import posixpath
import shutil
import sys
from pathlib import Path
from typing import Callable

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

# fsspec's async filesystems (s3fs) need their loop on a native thread under gevent.
from mr import fsspec_loop  # noqa: F401
from mr.cli.errors import UserError
from mr.data.fsspec_store import published
from mr.datasets.formats import FORMATS, MAGIC, DatasetError, read_pairs
from mr.datasets.splits import list_files
from mr.settings import Settings

#: The directory of the data store that holds the datasets users put.
DATASETS_DIR = "datasets"
#: Bytes copied per read and write of ``put``: memory does not grow with the file.
COPY_BUFFER_BYTES = 1024 * 1024
EMBEDDED_STORE = (
    "mr data works on a shared data store, and MR_DATA_STORE_URL is 'memory': the embedded "
    "store lives inside the 'mr run' process. Set MR_DATA_STORE_URL to the store's directory or "
    "URL, or name local files directly as a request's input")


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="copy datasets into the data store, list, print "
                                                "and remove them")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    put = verbs.add_parser("put", help="copy a local file or directory to datasets/NAME and "
                                       "print the URL a request names as its input")
    put.add_argument("local", type=Path, metavar="LOCAL")
    put.add_argument("name", metavar="NAME")
    put.add_argument("-f", "--force", action="store_true", help="replace NAME if it exists")
    put.set_defaults(run=run_put)
    ls = verbs.add_parser("ls", help="list the files of every dataset, or of NAME, with their "
                                     "sizes in bytes")
    ls.add_argument("name", nargs="?", metavar="NAME")
    ls.add_argument("--url", action="store_true", help="print full URLs instead of names")
    ls.set_defaults(run=run_ls)
    cat = verbs.add_parser("cat", help="print a dataset, or the files of any URL or local path")
    cat.add_argument("source", metavar="NAME_OR_URL",
                     help="a dataset name, a URL (with ://) or a path starting with / or .")
    cat.add_argument("--format", choices=FORMATS,
                     help="how to read the files (default: mr for files that start with its "
                          "magic bytes, else text)")
    cat.set_defaults(run=run_cat)
    rm = verbs.add_parser("rm", help="remove a dataset")
    rm.add_argument("name", metavar="NAME")
    rm.add_argument("-r", "--recursive", action="store_true",
                    help="remove a directory and every file under it")
    rm.set_defaults(run=run_rm)


def _failures_exit_1(run: Callable) -> Callable:
    """A store that fails or data not in its format: one line, status 1. The command itself was
    right; status 2 is for what the user can fix in it."""
    @functools.wraps(run)
    def guarded(arguments) -> int:
        try:
            return run(arguments)
        except (OSError, DatasetError) as error:
            print(f"mr: error: {error}", file=sys.stderr)
            return 1
    return guarded


class Datasets:
    """The ``datasets/`` directory of the configured data store."""

    def __init__(self, settings: Settings):
        if settings.data_store_url == "memory":
            raise UserError(EMBEDDED_STORE)
        try:
            self.fs, root = fsspec.core.url_to_fs(settings.data_store_url)
        except (ValueError, ImportError, TypeError, OSError) as error:
            raise UserError(f"cannot open the data store {settings.data_store_url!r} "
                            f"(MR_DATA_STORE_URL): {error}") from None
        self.root = f"{root.rstrip('/')}/{DATASETS_DIR}"

    def path(self, name: str) -> str:
        return f"{self.root}/{check_name(name)}"

    def relative(self, path: str) -> str:
        """``path`` as it is named under ``datasets/``."""
        return path[len(self.root) + 1:]

    def url(self, path: str) -> str:
        """A URL any process can open, as list_files gives them: a local path, else with the
        protocol."""
        return path if isinstance(self.fs, LocalFileSystem) else self.fs.unstrip_protocol(path)

    def files(self, path: str) -> list[tuple[str, int | None]]:
        """``(path, size)`` of the file at ``path`` or under it, but for writes in progress."""
        found = self.fs.find(path, detail=True)
        return sorted((name, info.get("size")) for name, info in found.items()
                      if not _in_progress(self.relative(name)))

    def require(self, name: str) -> str:
        path = self.path(name)
        if not self.fs.exists(path):
            raise UserError(f"no dataset {name!r} in {DATASETS_DIR}/ of the data store")
        return path


def check_name(name: str) -> str:
    """``name`` (without a trailing '/') if readers of a request's input see all of it: a
    relative path whose segments are not empty and none of which is hidden (starts with '.' or
    '_', like '..' or _SUCCESS), with no glob character."""
    stripped = name.rstrip("/")
    segments = stripped.split("/")
    if (not stripped or name.startswith("/") or any(c in stripped for c in "*?[")
            or any(not segment or segment[0] in "._" for segment in segments)):
        raise UserError(f"invalid dataset name {name!r}: a name is a relative path of segments "
                        f"that do not start with '.' or '_', without *, ? or [")
    return stripped


def _in_progress(relative_path: str) -> bool:
    return any(segment.startswith(".") for segment in relative_path.split("/"))


@_failures_exit_1
def run_put(arguments) -> int:
    datasets = Datasets(Settings.load())
    target = datasets.path(arguments.name)
    sources = _local_files(arguments.local)
    if datasets.fs.exists(target):
        if not arguments.force:
            raise UserError(f"dataset {arguments.name!r} exists: --force replaces it")
        datasets.fs.rm(target, recursive=True)
    copied = 0
    for local, relative in sources:
        destination = posixpath.join(target, relative) if relative else target
        copied += _copy(local, datasets.fs, destination)
    print(f"copied {len(sources)} file(s), {copied} bytes, to {DATASETS_DIR}/"
          f"{datasets.relative(target)}", file=sys.stderr)
    print(datasets.url(target))
    return 0


def _local_files(local: Path) -> list[tuple[Path, str]]:
    """``(file, path relative to local)`` of what ``put`` copies: the file itself (relative path
    empty), or every file under a directory but for hidden ones ('.' names, which the store
    reserves for writes in progress)."""
    if local.is_file():
        return [(local, "")]
    if not local.is_dir():
        raise UserError(f"{local}: no such file or directory")
    files = [(path, path.relative_to(local).as_posix()) for path in sorted(local.rglob("*"))
             if path.is_file() and not _in_progress(path.relative_to(local).as_posix())]
    if not files:
        raise UserError(f"{local}: no files to copy")
    return files


def _copy(local: Path, fs: AbstractFileSystem, target: str) -> int:
    """Stream ``local`` to ``target``, published whole where the store can rename; the number of
    bytes copied."""
    fs.makedirs(posixpath.dirname(target), exist_ok=True)
    with published(fs, target) as written, open(local, "rb") as source, \
            fs.open(written, "wb") as destination:
        shutil.copyfileobj(source, destination, COPY_BUFFER_BYTES)
    return os.path.getsize(local)


@_failures_exit_1
def run_ls(arguments) -> int:
    datasets = Datasets(Settings.load())
    top = datasets.require(arguments.name) if arguments.name else datasets.root
    for path, size in datasets.files(top):
        shown = datasets.url(path) if arguments.url else datasets.relative(path)
        print(f"{shown}\t{'-' if size is None else size}")
    return 0


@_failures_exit_1
def run_cat(arguments) -> int:
    url = _source_url(arguments.source)
    try:
        files = list_files(url)
    except DatasetError as error:
        raise UserError(str(error)) from None
    try:
        for file_url, size in files:
            if size != 0:
                _print_file(file_url, arguments.format)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader stopped early (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush
    return 0


def _source_url(source: str) -> str:
    """A URL or a path as it is; anything else names a dataset in the data store (a name cannot
    start with '/' or '.')."""
    if "://" in source or source[:1] in ("/", "."):
        return source
    datasets = Datasets(Settings.load())
    return datasets.url(datasets.path(source))


def _print_file(url: str, fmt: str | None) -> None:
    fs, path = fsspec.core.url_to_fs(url)
    fmt = fmt or _sniffed_format(fs, path)
    for key, value in read_pairs(fs, path, fmt):
        print(value if fmt == "text" else _json_line(path, key, value))


def _sniffed_format(fs: AbstractFileSystem, path: str) -> str:
    with fs.open(path, "rb", compression="infer") as file:
        return "mr" if file.read(len(MAGIC)) == MAGIC else "text"


def _json_line(path: str, key, value) -> str:
    try:
        return json.dumps([key, value], ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise DatasetError(f"{path}: cannot print the pair of key {key!r:.80} as JSON: "
                           f"{error}") from None


@_failures_exit_1
def run_rm(arguments) -> int:
    datasets = Datasets(Settings.load())
    path = datasets.require(arguments.name)
    is_directory = datasets.fs.isdir(path)
    if is_directory and not arguments.recursive:
        raise UserError(f"dataset {arguments.name!r} is a directory: --recursive removes it "
                        f"with every file under it")
    removed = len(datasets.files(path))
    datasets.fs.rm(path, recursive=is_directory)
    _remove_empty_parents(datasets, posixpath.dirname(path))
    print(f"removed {DATASETS_DIR}/{datasets.relative(path)} ({removed} file(s))")
    return 0


def _remove_empty_parents(datasets: Datasets, directory: str) -> None:
    """On stores with real directories, a directory that only held the dataset would stand in
    the way of a later ``put`` of a file under its name."""
    while directory != datasets.root and datasets.fs.isdir(directory):
        if datasets.fs.ls(directory):
            return
        datasets.fs.rmdir(directory)
        directory = posixpath.dirname(directory)
