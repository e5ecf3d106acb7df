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
#: A frame up to this size goes in one write, its length and payload copied together; a larger
#: one in two, its payload not copied.
_JOINED_FRAME_BYTES = 64 << 10

#: The most that is kept of each of an invocation's stdout and stderr.
OUTPUT_LIMIT_BYTES = 1 << 20
#: How the note starts that a capture adds when it kept less than the handler wrote.
OUTPUT_NOTE_PREFIX = "[mr: output truncated:"
#: The most text an error dict from the executor holds (see bounded_error): tracebacks and
#: messages are read by people, and a handler can raise an exception with a 50 MB message.
ERROR_LIMIT_BYTES = 64 << 10
#: How a child that ran out of memory so completely that it could not even report it exits.
OUT_OF_MEMORY_EXIT_STATUS = 86


class HandlerProtocolError(Exception):
    """The handler ran but produced something its type may not produce."""


@dataclasses.dataclass(frozen=True)
class ChildConfig:
    """What a pool tells each child once, as its first message. ``work_dir``: the pool's own
    temporary directory (exec handlers' files are written there). ``memory_limit_mb``: what the
    child, and each process it starts, may allocate. ``scope_factory``: the dotted path of the
    scope factory class; ``fs_root_url``: the shared filesystem's root (no ``FS`` without it)."""
    work_dir: str
    memory_limit_mb: int
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
    #: Instead of ``inputs``: files the child reads lazily (see mr.executor.plans).
    source: dict | None = None
    #: Instead of returning the pairs: files the child writes them to (see mr.executor.plans).
    sink: dict | None = None

    def __post_init__(self):
        for field, allowed in (("handler_type", HANDLER_TYPES), ("source_type", SOURCE_TYPES)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field} must be one of {', '.join(allowed)}, "
                                 f"got {getattr(self, field)!r}")
        if self.session_writable is None:
            self.session_writable = self.handler_type != "reducer"

    def to_message(self) -> dict[str, Any]:
        # Its fields as they are: not dataclasses.asdict, which deep-copies large inputs.
        return dict(vars(self))


@dataclasses.dataclass
class Outcome:
    """What one invocation produced. ``directive`` (mappers): ``{"kind": "map", "step": name}`` or
    ``{"kind": "return"}``. ``pairs``: ``[[k, v], ...]``, for combiners ``[[k, [v, ...]], ...]``.
    ``session``: the session after the run (unchanged when it failed). ``error``: None or
    ``{"type", "message", "traceback", "kind"}``, kind being ``handler``, ``scope_factory``,
    ``timeout``, ``memory``, ``output``, ``crashed`` or ``data`` (a data plan's source or sink
    failed, see mr.executor.plans)."""
    ok: bool
    directive: dict | None = None
    pairs: list = dataclasses.field(default_factory=list)
    session: dict = dataclasses.field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    error: dict | None = None
    #: With a sink: what was written (``{"runs": ...}`` or ``{"path": ..., "count": ...}``).
    written: dict | None = None
    #: What the handler logged with ``NOTIFY``, ``EMAIL`` or ``HTTP`` (mr.notify.notices).
    notices: list = dataclasses.field(default_factory=list)
    #: What the handler counted (``increment_counter``): group -> name -> n.
    counters: dict = dataclasses.field(default_factory=dict)
    #: The last status the handler set (``set_status``), if any.
    status: str | None = None
    #: A mapper's run with a reducer to follow (``ExecutorPool.run(then=...)``): the reducer's
    #: outcome, when the mapper returned its pairs, which then stay in the child (``pairs`` is
    #: empty); None when the mapper failed or mapped to a step.
    then: "Outcome | None" = None


def handler_error(kind: str, error_type: str, message: str, traceback: str = "") -> dict[str, str]:
    """An invocation's error, as every part of the executor builds it: bounded in size."""
    return bounded_error({"type": error_type, "message": message, "traceback": traceback,
                          "kind": kind})


def memory_error(handler_name: str, limit_mb: int, traceback: str = "") -> dict[str, str]:
    """The error of an invocation whose child reached its memory limit (and is replaced)."""
    return handler_error("memory", "HandlerMemoryExceeded",
                         f"handler {handler_name!r} ran out of memory: an executor child may "
                         f"allocate at most {limit_mb} MiB (MR_EXECUTOR_MEMORY_MB)", traceback)


def bounded_error(error: dict[str, Any], limit_bytes: int = ERROR_LIMIT_BYTES) -> dict[str, Any]:
    """A copy of ``error`` whose string values take at most ``limit_bytes`` of UTF-8 together.

    Short values are kept whole and the long ones share what is left equally, each cut to its
    start and a note ``[mr: truncated: N bytes, the first M kept]``. Keys and values of other
    types are not counted, nor are the notes when a share is smaller than its note: leave room.
    """
    sizes = {key: _utf8_size(value) for key, value in error.items() if isinstance(value, str)}
    bounded = dict(error)
    if sum(sizes.values()) <= limit_bytes:
        return bounded
    budget = limit_bytes
    by_size = sorted(sizes, key=sizes.__getitem__)
    for number, key in enumerate(by_size):
        share = budget // (len(by_size) - number)
        if sizes[key] > share:
            bounded[key] = _cut(error[key], sizes[key], share)
        budget -= _utf8_size(bounded[key])
    return bounded


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # lone surrogates count as what they would take


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(_utf8(text))  # no copy of a long ASCII text


def _cut(text: str, size: int, limit_bytes: int) -> str:
    """The start of ``text`` (``size`` bytes) and a note, in about ``limit_bytes``; the note a
    capture ended ``text`` with (how much the handler wrote in all) is kept after it."""
    last_line = text.rstrip("\n").rsplit("\n", 1)[-1]
    capture_note = "\n" + last_line if last_line.startswith(OUTPUT_NOTE_PREFIX) else ""
    room = max(0, limit_bytes - len(_truncation_note(size, limit_bytes)) - len(capture_note))
    # ``room`` characters take at least ``room`` bytes; a character cut in two is dropped.
    kept = _utf8(text[:room])[:room].decode("utf-8", "ignore")
    return kept + _truncation_note(size, _utf8_size(kept)) + capture_note


def _truncation_note(size: int, kept: int) -> str:
    return f"\n[mr: truncated: {size} bytes, the first {kept} kept]"


def encode_message(message: Any) -> bytes:
    """``message`` as a frame's payload; CodecError (naming the type) if it cannot be encoded."""
    payload = codec.encode(message)
    if len(payload) > _MAX_PAYLOAD_BYTES:
        raise codec.CodecError(f"a message of {len(payload)} bytes does not fit in one frame")
    return payload


def write_frame(write: Callable[[memoryview], int], payload: bytes) -> None:
    length = _LENGTH.pack(len(payload))
    pieces = ((length + payload,) if len(payload) <= _JOINED_FRAME_BYTES
              else (length, payload))
    for data in pieces:
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
