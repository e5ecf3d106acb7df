"""Data plans: invocations whose data never passes through the worker.

A map invocation over an input split, or a reduce over a partition of the shuffle, handles more
data than a worker should hold or a pipe should carry. Its task names files instead: a *source*
the child reads lazily as the handler's ``arguments`` or ``results``, and a *sink* the child
writes the handler's output to as it comes. The worker only learns what was written (paths and
counts), so the memory of every process stays bounded by configuration, not by input size.

Sources:
- ``{"splits": [[...], ...]}``: the records of input splits (:class:`mr.datasets.splits.Split`),
  one after the other;
- ``{"root": url, "runs": [path, ...], "sort_values": bool}``: the merge of sorted runs, one
  ``[key, [values]]`` group at a time.

Sinks:
- ``{"spill": {"root", "prefix", "partitions", "buffer_bytes", "sort_values"},
  "combiner": task fields or None, "partitioner": task fields or None}``: partition, combine
  (map-side, per buffer), sort and spill; writes ``{"runs": [[path, ...] per partition]}``;
- ``{"write": {"root", "path", "format"}}``: one dataset file; writes ``{"path", "count"}``.
"""
from __future__ import annotations

import itertools
import posixpath
from typing import Any, Callable, Iterable, Iterator

import fsspec

# fsspec's async filesystems (s3fs) need their loop on a native thread under gevent.
from mr import fsspec_loop  # noqa: F401
from mr.datasets.formats import OutputUnavailable, guarded, open_writer
from mr.datasets.shuffle import Spiller, merged_groups
from mr.datasets.splits import Split


def source_pairs(source: dict) -> Iterator[list]:
    """What the handler reads, lazily; a file that cannot be read raises
    :class:`mr.datasets.InputUnavailable` through the handler."""
    if "splits" in source:
        splits = [Split.from_message(message) for message in source["splits"]]
        return itertools.chain.from_iterable(split.open_pairs() for split in splits)
    return merged_groups(filesystem(source["root"]), source["runs"],
                         sort_values=source.get("sort_values", False))


def write_to_sink(sink: dict, pairs: Iterable[list],
                  combine: Callable[[list], Iterable[list]] | None = None,
                  partition: Callable[[Any, int], int] | None = None) -> dict[str, Any]:
    """Write ``pairs`` where ``sink`` says; what was written. ``combine``: the map-side
    combiner of a spill (None: values are only grouped); ``partition``: its partitioner
    (None: a checksum of the key). A file that cannot be written raises
    :class:`mr.datasets.OutputUnavailable`."""
    if "spill" in sink:
        spill = sink["spill"]
        spiller = Spiller(filesystem(spill["root"]), spill["prefix"], spill["partitions"],
                          spill["buffer_bytes"], sort_values=spill["sort_values"],
                          combine=combine, partitioner=partition)
        spiller.add_all(pairs)
        return {"runs": spiller.finish()}
    target = sink["write"]
    fs = filesystem(target["root"])
    guarded(OutputUnavailable, f"write {target['path']}", fs.makedirs,
            posixpath.dirname(target["path"]), exist_ok=True)
    with open_writer(fs, target["path"], target["format"]) as writer:
        writer.write_all(pairs)
    return {"path": target["path"], "count": writer.count}


def filesystem(root_url: str):
    """The fsspec filesystem of a store's root URL (fsspec caches the instances)."""
    return fsspec.core.url_to_fs(root_url)[0]
