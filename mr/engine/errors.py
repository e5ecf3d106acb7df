"""Errors of the engine that the front end and the worker turn into answers."""
from __future__ import annotations


class HandlerFailure(Exception):
    """An invocation failed for good (its handler raised, timed out or crashed, or the request
    names something that does not exist): the request fails with ``error``."""

    def __init__(self, invocation_id: str | None, error: dict):
        super().__init__(f"{error.get('type')}: {error.get('message')}")
        self.invocation_id = invocation_id
        self.error = error


class RequestFinished(Exception):
    """Raised into an invocation whose request failed or was cancelled while it ran."""


class ServiceUnavailable(Exception):
    """The request could not be accepted because a backend is unreachable (HTTP 503)."""


class TooManyRequests(Exception):
    """A workflow runs as many requests as MR_MAX_RUNNING_REQUESTS allows (HTTP 429)."""


class NoFreeSlot(Exception):
    """This worker runs as many invocations as it may; the message goes back to the queue."""


def engine_error(error_type: str, message: str) -> dict[str, str]:
    """An error of the engine (not of a handler), in the shape of a handler's error record."""
    return {"type": error_type, "message": message, "traceback": "", "kind": "engine"}

