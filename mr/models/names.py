"""The one definition of what a name may be.

Names become parts of KV keys (separated by ``/``) and of NSQ topic names
(``mr.<workflow>.<direction>.<capability>``, at most 64 characters, dots as separators), so a name
is letters, digits, ``_`` and ``-``, starting with a letter or digit: valid in both, never
ambiguous in either. Workflow and capability names are shorter so that every topic fits.
"""
from __future__ import annotations

import re

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")

NAME_MAX_LENGTH = 128
WORKFLOW_NAME_MAX_LENGTH = 24
CAPABILITY_NAME_MAX_LENGTH = 24

#: The capability of handlers that declare none (JobX wrote it ``none``).
GENERAL_CAPABILITY = "general"


class InvalidNameError(ValueError):
    """A name that cannot be used as a key part or topic part; the message says why."""


def check_name(name: object, what: str = "name", max_length: int = NAME_MAX_LENGTH) -> str:
    """Return ``name`` if it is a valid name, else raise :class:`InvalidNameError`."""
    if not isinstance(name, str):
        raise InvalidNameError(f"{what} must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidNameError(f"{what} must not be empty")
    if len(name) > max_length:
        raise InvalidNameError(f"{what} {name!r} is longer than {max_length} characters")
    if not _NAME_RE.match(name):
        raise InvalidNameError(
            f"{what} {name!r} may contain only letters, digits, '_' and '-', "
            f"and must start with a letter or digit")
    return name


def check_workflow_name(name: object) -> str:
    return check_name(name, "workflow name", WORKFLOW_NAME_MAX_LENGTH)


def normalize_capability(name: object) -> str:
    """The canonical form of a capability, used alike when publishing and when consuming.

    Capabilities are case-insensitive; ``none`` and the empty string mean the general pool.
    """
    if name is None or name == "" or (isinstance(name, str) and name.lower() == "none"):
        return GENERAL_CAPABILITY
    return check_name(name, "capability", CAPABILITY_NAME_MAX_LENGTH).lower()


def topic_name(workflow: str, direction: str, capability: str) -> str:
    """The queue topic of one workflow, direction (``map``/``reduce``) and capability."""
    if direction not in ("map", "reduce"):
        raise ValueError(f"direction must be 'map' or 'reduce', got {direction!r}")
    return f"mr.{check_workflow_name(workflow)}.{direction}.{normalize_capability(capability)}"
