"""The shuffle: map output partitioned by key and spilled as sorted runs, then each partition's
runs merged back into one stream of key groups.

Memory is bounded by configuration, never by the data: a map keeps at most a buffer of pairs
before spilling it, and a reduce holds one read buffer per run and one key group.

Keys are ordered and told apart by :func:`sort_key`, which must agree in every process: runs
written by one process are merged by another, so nothing here may depend on ``hash()``.
"""
from __future__ import annotations

import heapq
import itertools
import math
import operator
import zlib
from typing import Any, Callable, Iterable, Iterator

import msgpack

from mr import codec
from mr.datasets.formats import (DatasetError, OutputUnavailable, guarded, open_writer,
                                 pair_encoder, read_pairs)

#: Read buffer of one run while merging: a partition may have hundreds of runs. With msgpack's
#: unpacker (about 40 KiB of its own), a run being merged holds about 80 KiB.
MERGE_BUFFER_BYTES = 16 * 1024

Group = list  # [key, [value, ...]]
#: mr.codec's encoding of small values, without its checks: keys reach the partitioner only
#: after their pair was encoded (Spiller.add), so they are encodable.
_pack = msgpack.Packer(use_bin_type=True).pack
_FIRST = operator.itemgetter(0)


def partition_of(key: Any, partitions: int) -> int:
    """The partition of ``key``: a checksum of its encoding, the same in every process and
    Python run (``hash()`` of a str is salted per process)."""
    return zlib.crc32(_pack(key)) % partitions


def sort_key(key: Any) -> tuple:
    """A total order over encodable keys: str, then numbers (an int just before an equal float,
    NaN after every number), then bytes, then bool, then anything else by its encoding. Keys
    equal here are one key, as in mr.grouping: 1, 1.0 and True are three keys."""
    if isinstance(key, str):
        return (0, key)
    if isinstance(key, bool):  # before int: a bool is an int
        return (3, key)
    if isinstance(key, int):
        return (1, key, 0)
    if isinstance(key, float):
        return (1, key, 1) if key == key else (1, math.inf, 2)
    if isinstance(key, (bytes, bytearray, memoryview)):
        return (2, bytes(key))  # bytes(key) is key for bytes: no copy
    return (4, codec.encode(key))


def _group_order(group: list) -> tuple:
    return sort_key(group[0])


class _KeyGroups:
    """Pairs gathered by key: one list ``[key, value, ...]`` per key, a key's values in arrival
    order. The dict's key is the key's identity: the key itself when a str (the commonest keys,
    then no tuple is made per pair), else its sort_key.

    Grouping as pairs arrive, rather than sorting all pairs at a spill, keeps one list per key
    instead of a tuple and a sort key per pair: much less memory when keys repeat, about as
    much when they do not, and the sort is of keys only.
    """

    def __init__(self):
        self.groups: dict[Any, list] = {}

    def add(self, key: Any, value: Any) -> None:
        identity = key if isinstance(key, str) else sort_key(key)
        group = self.groups.get(identity)
        if group is None:
            self.groups[identity] = [key, value]
        else:
            group.append(value)

    def sorted_groups(self, sort_values: bool) -> list[Group]:
        """``[[key, [value, ...]], ...]`` in key order."""
        return [[group[0], _values(group, sort_values)]
                for group in sorted(self.groups.values(), key=_group_order)]


def _values(group: list, sort_values: bool) -> list:
    values = group[1:]
    if sort_values:
        values.sort(key=sort_key)
    return values


class Spiller:
    """Map output buffered, then spilled as one sorted run per partition whenever the buffer's
    encoded size reaches ``buffer_bytes``. Runs are ``mr`` files named
    ``{prefix}/run-{spill:05d}-p{partition:05d}``.

    In memory, a buffered pair takes more than its encoding: a key's list and dict entry, about
    150 bytes, plus 8 bytes per value and the values themselves. Count on about 15 times
    ``buffer_bytes`` when every key is a short str seen once, far less when keys repeat.
    """

    def __init__(self, fs, prefix: str, partitions: int, buffer_bytes: int, *,
                 sort_values: bool = False,
                 combine: Callable[[list[Group]], Iterable[Group]] | None = None,
                 partitioner: Callable[[Any, int], int] | None = None):
        if partitions < 1 or buffer_bytes < 1:
            raise DatasetError(f"a shuffle needs at least 1 partition and a buffer of at least "
                               f"1 byte, not {partitions} and {buffer_bytes}")
        self._fs, self._prefix = fs, prefix.rstrip("/")
        self._partitions, self._buffer_bytes = partitions, buffer_bytes
        self._sort_values, self._combine = sort_values, combine
        self._partitioner = partitioner or partition_of
        self._encoded = pair_encoder()  # sizes the buffer; refuses what a run could not hold
        self._buffer = _KeyGroups()
        self._buffered = 0
        self._spills = 0
        self._runs: list[list[str]] = [[] for _ in range(partitions)]

    def add(self, key: Any, value: Any) -> None:
        self._buffered += len(self._encoded(key, value))
        self._buffer.add(key, value)
        if self._buffered >= self._buffer_bytes:
            self._spill()

    def add_all(self, pairs: Iterable[Any]) -> None:
        """As ``add`` for each pair, in one loop: a spill runs per few hundred thousand pairs,
        so the call per pair is what costs."""
        encoded, limit = self._encoded, self._buffer_bytes
        for key, value in pairs:
            self._buffered += len(encoded(key, value))
            self._buffer.add(key, value)
            if self._buffered >= limit:
                self._spill()

    def finish(self) -> list[list[str]]:
        """Spill what is left; ``runs[partition]`` lists that partition's runs in spill order."""
        if self._buffer.groups:
            self._spill()
        return [list(paths) for paths in self._runs]

    def _spill(self) -> None:
        buffer, self._buffer, self._buffered = self._buffer, _KeyGroups(), 0
        if self._combine is not None:  # it may emit keys in any order, or one key twice
            groups = buffer.sorted_groups(self._sort_values)
            buffer = _KeyGroups()
            for key, values in self._combine(groups):
                for value in values:
                    buffer.add(key, value)
            del groups
        by_partition: dict[int, list[list]] = {}
        for group in buffer.groups.values():
            by_partition.setdefault(self._partition(group[0]), []).append(group)
        del buffer
        if self._spills == 0:
            guarded(OutputUnavailable, f"write {self._prefix}", self._fs.makedirs, self._prefix,
                    exist_ok=True)
        for partition in sorted(by_partition):
            groups = by_partition.pop(partition)
            groups.sort(key=_group_order)
            path = f"{self._prefix}/run-{self._spills:05d}-p{partition:05d}"
            with open_writer(self._fs, path, "mr") as run:
                for group in groups:
                    key = group[0]
                    for value in _values(group, self._sort_values):
                        run.write(key, value)
            self._runs[partition].append(path)
        self._spills += 1

    def _partition(self, key: Any) -> int:
        partition = self._partitioner(key, self._partitions)
        if not isinstance(partition, int) or not 0 <= partition < self._partitions:
            raise DatasetError(f"the partitioner gave {partition!r} for key {key!r:.80}: not a "
                               f"partition from 0 to {self._partitions - 1}")
        return partition


def merged_groups(fs, run_paths: list[str], *, sort_values: bool = False) -> Iterator[Group]:
    """``[key, [value, ...]]`` in key order over runs sorted by key, one group in memory at a
    time; a key's values in run order (heapq.merge takes equal keys from earlier runs first), or
    sorted with ``sort_values``."""
    runs = [((sort_key(key), key, value) for key, value in
             read_pairs(fs, path, "mr", buffer_bytes=MERGE_BUFFER_BYTES)) for path in run_paths]
    previous = ()  # before every key
    for identity, items in itertools.groupby(heapq.merge(*runs, key=_FIRST), key=_FIRST):
        if identity < previous:  # a run out of order: its key's group would be split
            raise DatasetError(f"runs not sorted by key: {identity[1:]!r:.80} comes after "
                               f"{previous[1:]!r:.80}")
        previous = identity
        _, key, value = next(items)
        values = [value]
        values.extend(item[2] for item in items)
        if sort_values:
            values.sort(key=sort_key)
        yield [key, values]
