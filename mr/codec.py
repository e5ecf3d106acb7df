"""The one binary encoding of mr, at rest (KV values, datasets) and on the wire (queue messages).

msgpack: typed (bytes stay bytes, ints stay ints), compact, and unlike pickle it cannot run code
when decoding. Tuples come back as lists, as they would through JSON. Anything msgpack cannot
represent is refused with the offending type named, instead of being silently converted.

Large values do not hold the gevent event loop for long (see :mod:`mr.offload`). Past
:data:`OFFLOAD_BYTES`, encoding and decoding continue in a native thread, and they work in
pieces of about :data:`PIECE_BYTES`, each one short msgpack call, so that the thread gives the
GIL back to the loop between pieces: a single call over 50 MB would hold it for a quarter of a
second. The pieces are those of the value's structure, so the bytes are exactly msgpack's for the
whole value: a collection (an array or map of more than :data:`RECORD_ITEMS` items, such as a
dataset) goes in slices of items; a record (a pair, a message's fields) is walked into, down to
:data:`WALK_DEPTH` levels, to reach the collections it holds.
"""
from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, Iterable, Iterator

import msgpack

from mr import offload

#: Values whose encoding is at most this long are made and read inline. Measured on the 2-core
#: development machine: a hop to the thread pool and back costs 30 to 100 µs; decoding 512 KiB of
#: ``[key, value]`` pairs takes about 0.7 ms and encoding it 0.25 ms. Below this, a hop would add
#: a sizeable share to calls that most often are tiny; above it, the hop costs under a tenth of
#: the work, and the loop is never held for more than about a millisecond.
OFFLOAD_BYTES = 512 * 1024
#: About how many bytes one msgpack call of a large encoding or decoding handles: well under a
#: millisecond, far below the interpreter's 5 ms thread switch interval.
PIECE_BYTES = 64 * 1024
#: Containers up to this many items are records, walked into; longer ones are collections.
RECORD_ITEMS = 16
#: How many levels of records are walked into: enough for the values of a key in a dataset
#: inside a message's record, e.g. ``{"task": {"inputs": [[key, [value, ...]]]}}``.
WALK_DEPTH = 5

_FIRST_SLICE_ITEMS = 64
_CONTAINERS = (list, tuple, dict)
_ARRAY_STARTS = frozenset([*range(0x90, 0xa0), 0xdc, 0xdd])
_MAP_STARTS = frozenset([*range(0x80, 0x90), 0xde, 0xdf])


class CodecError(ValueError):
    """A value that cannot be encoded, or bytes that are not one encoded value."""


def _refuse(value: Any) -> Any:
    """msgpack's fallback for values it has no representation for."""
    if isinstance(value, int):
        raise CodecError(f"cannot encode int {value}: it does not fit in 64 bits")
    raise CodecError(f"cannot encode a value of type {type(value).__name__}: {value!r:.80}")


def encode(obj: Any) -> bytes:
    """``obj`` as bytes: None, bool, int, float, str, bytes, and lists, tuples, dicts of them."""
    try:
        packer = msgpack.Packer(use_bin_type=True, default=_refuse)
        if not _holds_collection(obj, 0):  # most values: one call, inline
            return packer.pack(obj)
        pieces = _pieces(obj, packer, 0)
        done, size = [], 0  # made inline until they pass OFFLOAD_BYTES
        for piece in pieces:
            done.append(piece)
            size += len(piece)
            if size > OFFLOAD_BYTES:
                return offload.run(b"".join, itertools.chain(done, pieces))
        return b"".join(done)
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as error:  # e.g. a list containing itself
        raise CodecError(f"cannot encode {type(obj).__name__} value: {error}") from None


def _holds_collection(value: Any, depth: int) -> bool:
    """Whether ``value`` is a collection, or a record that holds one within the walked levels."""
    if depth >= WALK_DEPTH or not isinstance(value, _CONTAINERS):
        return False
    if len(value) > RECORD_ITEMS:
        return True
    for item in value.values() if isinstance(value, dict) else value:
        if isinstance(item, _CONTAINERS) and _holds_collection(item, depth + 1):
            return True
    return False


def _pieces(value: list | tuple | dict, packer: msgpack.Packer,
            depth: int) -> Iterator[bytes | memoryview]:
    """The encoding of ``value``, a collection or a record that holds one, in pieces."""
    is_map = isinstance(value, dict)
    header = packer.pack_map_header if is_map else packer.pack_array_header
    yield header(len(value))
    if len(value) > RECORD_ITEMS:
        items = iter(value.items() if is_map else value)
        yield from _slices(items, dict if is_map else list, header, packer)
        return
    for item in itertools.chain.from_iterable(value.items()) if is_map else value:
        if _holds_collection(item, depth + 1):
            yield from _pieces(item, packer, depth + 1)
        else:
            yield packer.pack(item)


def _slices(items: Iterator, build: Callable[[Iterable], list | dict],
            header: Callable[[int], bytes], packer: msgpack.Packer) -> Iterator[memoryview]:
    """The encodings of a collection's items, a slice of about PIECE_BYTES at a time: each slice
    is packed as a collection of its own, less that collection's header."""
    count = _FIRST_SLICE_ITEMS
    while True:
        chunk = build(itertools.islice(items, count))
        if not chunk:
            return
        packed = packer.pack(chunk)
        yield memoryview(packed)[len(header(len(chunk))):]
        count = max(1, count * PIECE_BYTES // len(packed))


def decode(data: bytes) -> Any:
    """The value that :func:`encode` turned into ``data``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"can only decode bytes, got {type(data).__name__}")
    try:
        if len(data) <= OFFLOAD_BYTES:
            # strict_map_key=False: dicts with int keys are as valid as dicts with str keys.
            return msgpack.unpackb(data, raw=False, strict_map_key=False)
        return offload.run(_decoded_in_pieces, data)
    except (ValueError, TypeError, IndexError, msgpack.UnpackException) as error:
        reason = str(error) or type(error).__name__
        raise CodecError(f"cannot decode {len(data)} bytes: {reason}") from None


def _decoded_in_pieces(data: bytes | bytearray | memoryview) -> Any:
    """What ``msgpack.unpackb`` would return, read one collection item at a time."""
    data = memoryview(data).cast("B")
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(data))
    unpacker.feed(data)
    value = _read(unpacker, data, 0)
    if unpacker.tell() != len(data):
        raise ValueError(f"extra data after {unpacker.tell()} bytes")
    return value


def _read(unpacker: msgpack.Unpacker, data: memoryview, depth: int) -> Any:
    """The next value: records walked into, collections read item by item."""
    start = data[unpacker.tell()] if depth < WALK_DEPTH else None
    if start in _ARRAY_STARTS:
        count = unpacker.read_array_header()
    elif start in _MAP_STARTS:
        count = unpacker.read_map_header()
    else:
        return unpacker.unpack()
    item = (functools.partial(_read, unpacker, data, depth + 1) if count <= RECORD_ITEMS
            else unpacker.unpack)
    if start in _ARRAY_STARTS:
        return [item() for _ in range(count)]
    return {item(): item() for _ in range(count)}
