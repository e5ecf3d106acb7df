"""Datasets: files read as ``[key, value]`` pairs a split at a time, pairs written to files, and
the shuffle that partitions, sorts and merges map output.

A low layer: it knows fsspec filesystems and mr.codec's encoding, nothing of the engine. Every
function streams; none reads a whole file or keeps more than a bounded buffer.
"""
from mr.datasets.formats import (FORMATS, MAGIC, OUTPUT_FORMATS, DatasetError, DatasetWriter,
                                 InputUnavailable, OutputUnavailable, open_writer, read_pairs)
from mr.datasets.shuffle import Spiller, merged_groups, partition_of, sort_key
from mr.datasets.splits import SUCCESS_MARKER, Split, committed, list_files, plan_splits

__all__ = [
    "FORMATS", "MAGIC", "OUTPUT_FORMATS", "DatasetError", "DatasetWriter", "InputUnavailable",
    "OutputUnavailable", "open_writer",
    "read_pairs", "Spiller", "merged_groups", "partition_of", "sort_key", "Split", "list_files",
    "plan_splits", "SUCCESS_MARKER", "committed",
]
