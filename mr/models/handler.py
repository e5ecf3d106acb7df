"""The handler: one body of mapper, combiner, reducer or partitioner code, versioned by its
content."""
from __future__ import annotations

import hashlib
from typing import Any

from mr import codec
from mr.kv.base import Put
from mr.models.base import Field, WorkflowEntity, name_field
from mr.models.errors import ValidationError
from mr.models.names import GENERAL_CAPABILITY, normalize_capability

HANDLER_TYPES = ("mapper", "combiner", "reducer", "partitioner")
#: ``python``: a function body (mr.handlers.format); ``exec``: any executable speaking the exec
#: protocol (docs/handlers.rst).
SOURCE_TYPES = ("python", "exec")
#: The argument names each handler type is called with (JobX's protocol).
ARGUMENT_NAMES = {"mapper": ["arguments"], "combiner": ["results"], "reducer": ["results"],
                  "partitioner": ["key"]}


def _argument_spec(value: list, what: str) -> list:
    """A list of ``[name, type]`` pairs: a non-empty name, and a type name or None (no cast,
    as JobX's ``type: null``); tuples are stored as lists."""
    spec = []
    for pair in value:
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not (isinstance(pair[0], str) and pair[0])
                or not (pair[1] is None or (isinstance(pair[1], str) and pair[1]))):
            raise ValueError(f"field {what!r} must be a list of [name, type] pairs (a non-empty "
                             f"name, and a type name or None), got item {pair!r}")
        spec.append(list(pair))
    return spec


def _non_blank(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"field {what!r} must not be empty")
    return value


def _capability(value: str, what: str) -> str:
    return normalize_capability(value)


class Handler(WorkflowEntity):
    """``version`` is a property: the sha256 of what defines the behaviour, so it is never stale
    and never taken from the caller (a given version must equal it)."""

    kind = "handler"
    is_definition = True

    name = name_field()
    description = Field(str)
    argument_spec = Field(list, check=_argument_spec)
    source_type = Field(str, choices=SOURCE_TYPES)
    source_code = Field(str, check=_non_blank)
    handler_type = Field(str, choices=HANDLER_TYPES)
    required_capability = Field(str, default=GENERAL_CAPABILITY, check=_capability)

    def __init__(self, *, version: str | None = None, **values: Any):
        super().__init__(**values)
        if version is not None and version != self.version:
            raise ValidationError(f"{self.label}: version is computed from the handler's "
                                  f"content ({self.version}), got {version!r}")

    def check(self) -> None:
        names = [argument for argument, _type in self.argument_spec]
        expected = ARGUMENT_NAMES[self.handler_type]
        if names != expected:
            raise ValueError(f"a {self.handler_type}'s argument_spec must name exactly "
                             f"{expected}, got {names}")

    @property
    def version(self) -> str:
        content = [self.source_type, self.handler_type, self.argument_spec,
                   self.required_capability, self.source_code]
        return hashlib.sha256(codec.encode(content)).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "version": self.version}

    def code_record(self) -> dict[str, Any]:
        """What a worker needs to run this version: stored by version beside the handler."""
        return {"source_type": self.source_type, "handler_type": self.handler_type,
                "argument_spec": self.argument_spec,
                "required_capability": self.required_capability,
                "source_code": self.source_code}

    def companion_writes(self, keys) -> list:
        return [Put(keys.handler_code(self.workflow, self.version), codec.encode(self.code_record()))]
