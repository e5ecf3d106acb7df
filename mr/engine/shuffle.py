"""Inputs by reference, the partitioned shuffle and the file writer, in the tree of invocations.

Two kinds of branch hand their children's output over through files instead of completion
markers (see ``docs/data.rst``):

- the root of a request that names an ``input``: its children are one map invocation per split,
  whose mapper output is combined map-side and spilled, partitioned and sorted;
- a branch whose step declares ``partitions``: its children's reduced output is spilled so.

Such a branch is then reduced by R partition invocations, each merging its partition's runs;
the last one to commit completes the branch, with the parts they wrote. Executor children read
and write the files themselves (:mod:`mr.executor.plans`): no bulk data crosses a worker.

Files are written under a name no other delivery uses (a fresh id per attempt), and only a
commit in the KV makes them count, so a duplicate or a crash leaves unreferenced files, removed
with the request.
"""
from __future__ import annotations

import dataclasses
import posixpath
import uuid
from typing import TYPE_CHECKING, BinaryIO

import fsspec

# fsspec's async filesystems (s3fs) need their loop on a native thread under gevent.
from mr import fsspec_loop  # noqa: F401
from mr import offload
from mr.data.base import DataError
from mr.data.fsspec_store import published
from mr.datasets import SUCCESS_MARKER, DatasetError, committed, plan_splits, read_pairs
from mr.engine.errors import HandlerFailure, engine_error
from mr.models import Request

if TYPE_CHECKING:
    from mr.engine.engine import Engine

#: What one read of an uploaded body takes: the most of it a front end holds at a time.
UPLOAD_CHUNK_BYTES = 1 << 20

#: Where a file writer's parts are written before the request commits them.
TEMPORARY_DIRECTORY = "_temporary"


@dataclasses.dataclass(frozen=True)
class Partitioning:
    partitions: int
    sort_values: bool
    #: The partitioner handler's name; None: a checksum of the key's encoding.
    partitioner: str | None = None


class Shuffle:
    def __init__(self, engine: "Engine"):
        self.engine = engine
        self.store = engine.shuffle_store

    def partitioning(self, request: Request, branch_id: str, step: str) -> Partitioning | None:
        """How the children of branch ``branch_id`` of ``step`` hand over their output: through
        partitions, or (None) in completion markers, as in JobX's tree."""
        options = request.shuffles.get(step)
        if request.input is not None and branch_id == request.root_invocation_id:
            options = options or {"partitions": 1}
        if not options:
            return None
        return Partitioning(options["partitions"], options.get("sort_values", False),
                            options.get("partitioner"))

    def is_split(self, request: Request, parent_id: str | None) -> bool:
        """Whether a map invocation with this parent reads an input split."""
        return request.input is not None and parent_id == request.root_invocation_id

    def splits(self, request: Request) -> list[list]:
        """The root's children: ``[number, [split, ...]]`` pairs, listed without reading the
        data; as many as this worker has executor children, or a multiple of that (or of
        MR_SPLIT_PARALLELISM)."""
        spec, settings = request.input, self.engine.settings
        executor = self.engine.executor
        parallelism = settings.split_parallelism or (executor.size if executor else 1)
        try:
            inputs = offload.run(plan_splits, spec["url"], spec["format"], settings.split_bytes,
                                 parallelism)
        except DatasetError as error:
            raise HandlerFailure(request.root_invocation_id,
                                 engine_error("InputError", str(error))) from None
        return [[number, [split.to_message() for split in splits]]
                for number, splits in enumerate(inputs)]

    def store_upload(self, workflow: str, request_id: str, body: BinaryIO, fmt: str) -> dict:
        """Copy a request's body into the shuffle store, a chunk at a time, as the request's
        input file; the input spec that names it. What a failed copy wrote is removed; the
        file goes with the request. Errors of reading the body are the client's: they pass."""
        fs = self.store.fs

        def stored(operation, *args):
            try:
                return offload.run(operation, *args)
            except OSError as error:
                raise DataError(f"cannot store the uploaded input: {error}") from error

        target = self.store.location(f"{workflow}/{request_id}/input/body.{fmt}")
        stored(lambda: fs.makedirs(posixpath.dirname(target), exist_ok=True))
        with published(fs, target) as written:
            file = stored(fs.open, written, "wb")
            try:
                while chunk := body.read(UPLOAD_CHUNK_BYTES):
                    stored(file.write, chunk)
            finally:
                stored(file.close)
        return {"url": self.store.url_of(target), "format": fmt}

    # Sources and sinks of executor tasks (mr.executor.plans)

    def spill_sink(self, request: Request, branch_id: str, partitioning: Partitioning,
                   combiner: dict | None, partitioner: dict | None) -> dict:
        """``combiner``, ``partitioner``: the tasks (mr.executor.Task fields, no inputs) of the
        map-side combiner and of the partitioner handler, or None."""
        prefix = self._fresh(request, branch_id, "runs")
        return {"spill": {"root": self.store.url, "prefix": prefix,
                          "partitions": partitioning.partitions,
                          "buffer_bytes": self.engine.settings.sort_buffer_mb << 20,
                          "sort_values": partitioning.sort_values},
                "combiner": combiner, "partitioner": partitioner}

    def runs_source(self, runs: list[str], partitioning: Partitioning) -> dict:
        return {"root": self.store.url, "runs": runs, "sort_values": partitioning.sort_values}

    def part_sink(self, request: Request, branch_id: str, partition: int) -> dict:
        """A partition's output, read by the branch's parent: an ``mr`` dataset."""
        path = f"{self._fresh(request, branch_id, 'parts')}/{part_name(partition)}"
        return {"write": {"root": self.store.url, "path": path, "format": "mr"}}

    def output_sink(self, request: Request, partition: int) -> dict:
        """A part of the file writer's output, beside it until the request commits it."""
        fs, base = fsspec.core.url_to_fs(request.output["url"])
        path = (f"{base.rstrip('/')}/{TEMPORARY_DIRECTORY}/{request.request_id}/"
                f"{uuid.uuid4().hex[:12]}/{part_name(partition)}")
        return {"write": {"root": request.output["url"], "path": path,
                          "format": request.output["format"]}}

    def _fresh(self, request: Request, branch_id: str, what: str) -> str:
        return self.store.location(f"{request.workflow}/{request.request_id}/shuffle/"
                                   f"{branch_id}/{what}-{uuid.uuid4().hex[:12]}")

    # Results

    def parts_size(self, parts: list[str]) -> int:
        """How many bytes a partitioned branch's parts take: about their pairs' encoding."""
        fs = self.store.fs
        return offload.run(lambda: sum(fs.size(part) for part in parts))

    def read_parts(self, parts: list[str]) -> list[list]:
        """The pairs of a partitioned branch's parts, partition by partition."""
        fs = self.store.fs
        return offload.run(lambda: [pair for part in parts for pair in read_pairs(fs, part, "mr")])

    def commit_output(self, request: Request, parts: list[str]) -> list[str]:
        """Move the file writer's parts into place and write its ``_SUCCESS`` marker; their URLs.

        Idempotent: a part already moved by an earlier delivery is left where it is."""
        return offload.run(self._commit_output, request, parts)

    @staticmethod
    def _commit_output(request: Request, parts: list[str]) -> list[str]:
        fs, base = fsspec.core.url_to_fs(request.output["url"])
        base = base.rstrip("/")
        final = [f"{base}/{part_name(partition)}" for partition in range(len(parts))]
        try:
            for temporary, target in zip(parts, final):
                if fs.exists(temporary):
                    fs.mv(temporary, target)
                elif not fs.exists(target):
                    raise DataError(f"part {temporary!r} of the output is gone")
            fs.pipe_file(f"{base}/{SUCCESS_MARKER}", b"")
            _remove_temporary(fs, f"{base}/{TEMPORARY_DIRECTORY}", request.request_id)
        except OSError as error:
            raise DataError(f"cannot commit the output at {request.output['url']!r}: "
                            f"{error}") from error
        return [fs.unstrip_protocol(path) for path in final]

    def check_specs(self, input: dict | None, output: dict | None) -> None:
        """Refuse, before anything runs (``ValueError``), an input or output URL whose protocol
        is not installed, and a file writer's URL that holds a committed output."""
        for spec in (input, output):
            if spec is not None and "url" in spec:
                try:
                    fsspec.core.url_to_fs(spec["url"])
                except (ImportError, ValueError, OSError) as error:
                    raise ValueError(f"cannot open {spec['url']!r}: {error}") from None
        if output is not None and "url" in output:
            if offload.run(committed, output["url"]):
                raise ValueError(f"output {output['url']!r} already holds a committed result "
                                 f"({SUCCESS_MARKER}); remove it or name another URL")


def _remove_temporary(fs, temporary: str, request_id: str) -> None:
    """Remove a request's temporary directory, and the parent when no other request uses it."""
    try:
        fs.rm(f"{temporary}/{request_id}", recursive=True)
    except FileNotFoundError:
        pass  # removed by an earlier delivery
    try:
        if not fs.ls(temporary):
            fs.rmdir(temporary)
    except OSError:
        pass  # gone, in use by another request, or a store without directories


def part_name(partition: int) -> str:
    return f"part-{partition:05d}"
