"""What can go wrong talking to mr: the server could not be reached, it refused the call (its
JSON error, ``docs/http.rst``), or the job ran and failed or was cancelled."""
from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Every error of :mod:`mr.client`."""


class Unreachable(ClientError):
    """No answer: the connection failed or timed out."""


class ApiError(ClientError):
    """An error answer: its HTTP ``status``, its ``type`` and ``message``, and the whole
    ``error`` object (``details``)."""

    def __init__(self, status: int, error: dict[str, Any]):
        self.status = status
        self.type = error.get("type", "Error")
        self.details = error
        super().__init__(f"{self.type}: {error.get('message', '')}")


class JobFailed(ApiError):
    """The job ran and failed (a 422, or a followed request found ``failed``): the request id,
    the failed invocation and the handler's error are in ``details``."""

    def __init__(self, status: int, error: dict[str, Any]):
        super().__init__(status, error)
        self.request_id = error.get("request_id")
        self.failed_invocation_id = error.get("failed_invocation_id")


class Cancelled(ApiError):
    """The request was cancelled before it finished."""


def error_for(status: int, error: dict[str, Any]) -> ApiError:
    """The exception for an error answer, by its HTTP status."""
    return {422: JobFailed, 409: Cancelled}.get(status, ApiError)(status, error)
