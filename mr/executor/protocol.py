"""What the pool and its children say to each other, and how it is framed on their pipes.

Each message is a 4-byte big-endian length followed by that many bytes of :mod:`mr.codec`. The
pipes are the protocol's own file descriptors, never stdin or stdout, so nothing a handler prints
can corrupt a message. The framing functions take the side's own ``read``/``write`` (blocking in
the child, gevent-cooperative in the pool).
"""
from __future__ import annotations

import dataclasses
import struct
from typing import Any, Callable

from mr import codec
from mr.models.handler import HANDLER_TYPES, SOURCE_TYPES
from mr.models.names import GENERAL_CAPABILITY

_LENGTH = struct.Struct(">I")
_CHUNK_SIZE = 1 << 20
_MAX_PAYLOAD_BYTES = (1 << 32) - 1

#: The most that is kept of each of an invocation's stdout and stderr.
OUTPUT_LIMIT_BYTES = 1 << 20


class HandlerProtocolError(Exception):
    """The handler ran but produced something its type may not produce."""


@dataclasses.dataclass(frozen=True)
class ChildConfig:
    """What a pool tells each child once, as its first message. ``work_dir``: the pool's own
    temporary directory (exec handlers' files are written there). ``scope_factory``: the dotted
    path of the scope factory class; ``fs_root_url``: the shared filesystem's root (no ``FS``
    without it)."""
    work_dir: str
    scope_factory: str | None = None
    fs_root_url: str | None = None

    def to_message(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Task:
    """One invocation of a handler. ``inputs``: mapper and combiner ``[[k, v], ...]``, reducer
    ``[[k, [v, ...]], ...]``. ``session_writable`` defaults to the rule: all but reducers."""
    workflow: str
    handler_name: str
    handler_version: str
    source_type: str
    source_code: str
    handler_type: str
    inputs: list
    required_capability: str = GENERAL_CAPABILITY
    session: dict = dataclasses.field(default_factory=dict)
    session_writable: bool | None = None

    def __post_init__(self):
        for field, allowed in (("handler_type", HANDLER_TYPES), ("source_type", SOURCE_TYPES)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field} must be one of {', '.join(allowed)}, "
                                 f"got {getattr(self, field)!r}")
        if self.session_writable is None:
            self.session_writable = self.handler_type != "reducer"

    def to_message(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies, which is slow for large inputs.
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


@dataclasses.dataclass
class Outcome:
    """What one invocation produced. ``directive`` (mappers): ``{"kind": "map", "step": name}`` or
    ``{"kind": "return"}``. ``pairs``: ``[[k, v], ...]``, for combiners ``[[k, [v, ...]], ...]``.
    ``session``: the session after the run (unchanged when it failed). ``error``: None or
    ``{"type", "message", "traceback", "kind"}``, kind being ``handler``, ``scope_factory``,
    ``timeout`` or ``crashed``."""
    ok: bool
    directive: dict | None = None
    pairs: list = dataclasses.field(default_factory=list)
    session: dict = dataclasses.field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    error: dict | None = None


def handler_error(kind: str, error_type: str, message: str, traceback: str = "") -> dict[str, str]:
    return {"type": error_type, "message": message, "traceback": traceback, "kind": kind}


def encode_message(message: Any) -> bytes:
    """``message`` as a frame's payload; CodecError (naming the type) if it cannot be encoded."""
    payload = codec.encode(message)
    if len(payload) > _MAX_PAYLOAD_BYTES:
        raise codec.CodecError(f"a message of {len(payload)} bytes does not fit in one frame")
    return payload


def write_frame(write: Callable[[memoryview], int], payload: bytes) -> None:
    for data in (_LENGTH.pack(len(payload)), payload):
        view = memoryview(data)
        while view:
            view = view[write(view[:_CHUNK_SIZE]):]


def read_message(read: Callable[[int], bytes]) -> Any:
    """The next message; EOFError when the other side closed its end (between or in a frame)."""
    (length,) = _LENGTH.unpack(_read_exactly(read, _LENGTH.size))
    return codec.decode(_read_exactly(read, length))


def _read_exactly(read: Callable[[int], bytes], size: int) -> bytearray:
    data = bytearray()
    while len(data) < size:
        chunk = read(min(size - len(data), _CHUNK_SIZE))
        if not chunk:
            raise EOFError("the other end of the pipe was closed")
        data += chunk
    return data
