"""Sessions: per map invocation, a private key -> value namespace (``S_SET``/``S_GET``/``S_LIST``).

The mapper and its combiner write their invocation's session; the reducer that reduces that
invocation reads it through a :class:`ReadOnlySession`. Values are anything :mod:`mr.codec`
encodes; keys are names, so that each is one KV key segment.
"""
from __future__ import annotations

from typing import Any

from mr import codec
from mr.kv.base import KV
from mr.models.base import valid_hex_id, valid_workflow_name
from mr.models.errors import NotFoundError, ReadOnlySessionError, ValidationError
from mr.models.keys import Keys
from mr.models.names import InvalidNameError, check_name


class Session:
    """The session of map invocation ``invocation_id`` of request ``request_id``."""

    def __init__(self, kv: KV, workflow: str, request_id: str, invocation_id: str,
                 prefix: str):
        self.label = f"session of invocation {invocation_id!r}"
        try:
            valid_workflow_name(workflow, "workflow")
            valid_hex_id(request_id, "request_id")
            valid_hex_id(invocation_id, "invocation_id")
        except ValueError as error:
            raise ValidationError(f"{self.label}: {error}") from None
        self.kv = kv
        self.prefix = Keys(prefix).session(workflow, request_id, invocation_id)

    def _key(self, key: str) -> str:
        try:
            return self.prefix + check_name(key, "session key")
        except InvalidNameError as error:
            raise ValidationError(f"{self.label}: {error}") from None

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``; CodecError if the value cannot be encoded."""
        self.kv.put(self._key(key), codec.encode(value))

    def get(self, key: str) -> Any:
        """The value under ``key``; NotFoundError (a KeyError) if it was never set."""
        stored = self.kv.get(self._key(key))
        if stored is None:
            raise NotFoundError(f"{self.label}: key {key!r} is not set")
        return codec.decode(stored.value)

    def list(self) -> dict[str, Any]:
        """Every key and value of the session."""
        return {stored.key[len(self.prefix):]: codec.decode(stored.value)
                for stored in self.kv.range(self.prefix, prefix=True).kvs}

    def delete_all(self) -> int:
        """Remove the whole session; returns how many keys it had."""
        return self.kv.delete(self.prefix, prefix=True).deleted

    def read_only(self) -> "ReadOnlySession":
        return ReadOnlySession(self)


class ReadOnlySession:
    """The view of a session that its reducer gets: reads pass through, writes are refused."""

    def __init__(self, session: Session):
        self._session = session
        self.label = session.label

    def get(self, key: str) -> Any:
        return self._session.get(key)

    def list(self) -> dict[str, Any]:
        return self._session.list()

    def set(self, key: str, value: Any) -> None:
        raise ReadOnlySessionError(f"cannot set {key!r}: the {self.label} is read-only for its "
                                   f"reducer; only its mapper and combiner may write it")

    def delete_all(self) -> int:
        raise ReadOnlySessionError(f"cannot delete the {self.label}: it is read-only for its "
                                   f"reducer")
