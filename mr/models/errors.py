"""The errors of the entity models, under one base so that callers can catch them together."""
from __future__ import annotations


class ModelError(Exception):
    """An entity could not be built, read or written; the message names the entity and why."""


class ValidationError(ModelError, ValueError):
    """A field value (given, or read from the store) that the entity does not accept."""


class NotFoundError(ModelError, KeyError):
    """The entity (or session key) does not exist."""

    __str__ = Exception.__str__  # KeyError would quote the whole message


class AlreadyExistsError(ModelError):
    """A create found the entity already there."""


class ConflictError(ModelError):
    """The entity changed between the read and the write (optimistic concurrency)."""


class InvalidReferenceError(ModelError):
    """A field names an entity that does not exist, or one of the wrong type for the field."""


class InUseError(ModelError):
    """Other entities refer to this one, so it cannot be deleted or changed that way."""


class ReadOnlySessionError(ModelError, PermissionError):
    """A reducer tried to write the session it may only read."""
