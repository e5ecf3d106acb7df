"""The one binary encoding of mr, at rest (KV values, datasets) and on the wire (queue messages).

msgpack: typed (bytes stay bytes, ints stay ints), compact, and unlike pickle it cannot run code
when decoding. Tuples come back as lists, as they would through JSON. Anything msgpack cannot
represent is refused with the offending type named, instead of being silently converted.
"""
from __future__ import annotations

from typing import Any

import msgpack


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
        return msgpack.packb(obj, use_bin_type=True, default=_refuse)
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as error:  # e.g. a list containing itself
        raise CodecError(f"cannot encode {type(obj).__name__} value: {error}") from None


def decode(data: bytes) -> Any:
    """The value that :func:`encode` turned into ``data``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"can only decode bytes, got {type(data).__name__}")
    try:
        # strict_map_key=False: dicts with int keys are as valid as dicts with str keys.
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        reason = str(error) or type(error).__name__
        raise CodecError(f"cannot decode {len(data)} bytes: {reason}") from None
