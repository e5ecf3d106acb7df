"""The queue message of one invocation, and the return address it completes to.

A message carries everything its invocation needs to run and to report completion without
reading the KV first: the step, its input (inline for one pair, else a data store path), and the
chain of ancestors up to the root. Each ancestor is a map invocation that branched; the first is
the one this invocation completes to, together with how many children it waits for.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from mr import codec

MAP = "map"
REDUCE = "reduce"
_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Ancestor:
    """A branching map invocation, waiting for ``children`` completions."""
    invocation_id: str
    step: str
    children: int

    def to_list(self) -> list:
        return [self.invocation_id, self.step, self.children]


@dataclasses.dataclass(frozen=True)
class InvocationMessage:
    workflow: str
    request_id: str
    invocation_id: str
    kind: str  # MAP: run the step's mapper; REDUCE: run its reducer over committed input
    step: str
    #: Parent first, root last; empty for the root invocation, which completes the request.
    ancestors: tuple[Ancestor, ...] = ()
    #: MAP of a child: its one argument pair, when small enough to ride inline.
    pair: Any = None
    #: MAP: data store path of the argument pairs; REDUCE of a leaf: of the combined pairs.
    data_ref: str | None = None
    #: Published again (a redelivered parent, the sweeper): the invocation may have committed
    #: already, so its worker checks before it runs any handler.
    redelivered: bool = False
    #: REDUCE of a step with partitions: the one partition this invocation reduces.
    partition: int | None = None
    #: The root's first publish: its request's record as created (revision, encoded), so that
    #: a worker that knows of every finish since then need not read it (tracker.py).
    record: tuple[int, bytes] | None = None

    def encode(self) -> bytes:
        fields = [_VERSION, self.workflow, self.request_id, self.invocation_id, self.kind,
                  self.step, [a.to_list() for a in self.ancestors], self.pair, self.data_ref]
        optional = [self.redelivered, self.partition,
                    None if self.record is None else list(self.record)]
        while optional and (optional[-1] is None or optional[-1] is False):
            optional.pop()
        return codec.encode(fields + optional)

    @classmethod
    def decode(cls, body: bytes) -> "InvocationMessage":
        fields = codec.decode(body)
        if not isinstance(fields, list) or not fields or fields[0] != _VERSION:
            raise ValueError("not an invocation message of this version")
        (_, workflow, request_id, invocation_id, kind, step, ancestors, pair,
         data_ref, *rest) = fields
        return cls(workflow, request_id, invocation_id, kind, step,
                   tuple(Ancestor(*ancestor) for ancestor in ancestors), pair, data_ref,
                   bool(rest and rest[0]), rest[1] if len(rest) > 1 else None,
                   tuple(rest[2]) if len(rest) > 2 else None)

    @property
    def parent(self) -> Ancestor | None:
        return self.ancestors[0] if self.ancestors else None
