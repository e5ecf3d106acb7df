"""Every error answer is JSON ``{"error": {"type": ..., "message": ...}}``.

Client mistakes are 4xx, an unreachable backend is 503 with a ``Retry-After`` header, and a 500
only ever means a bug in mr: it is logged with its traceback under an incident id that the answer
names.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from mr.data.base import DataError
from mr.engine.errors import ServiceUnavailable, TooManyRequests
from mr.kv.base import KVError, KVSpaceExceededError
from mr.models.errors import NotFoundError, ValidationError
from mr.queue.base import QueueError

log = logging.getLogger(__name__)

#: Errors of the layers below, and how they are answered: (status, error type).
KNOWN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    NotFoundError: (404, "NotFound"),
    ValidationError: (400, "ValidationError"),
    ServiceUnavailable: (503, "ServiceUnavailable"),
    TooManyRequests: (429, "TooManyRequests"),
    KVError: (503, "ServiceUnavailable"),
    QueueError: (503, "ServiceUnavailable"),
    DataError: (503, "ServiceUnavailable"),
}

#: Retry-After of a 503, in seconds: a backend that could not be reached is usually back within
#: seconds, an etcd out of space only once an operator has freed some.
RETRY_AFTER_S = 5
#: Retry-After of a 429: a request of the workflow has to finish first.
RETRY_AFTER_BUSY_S = 1
RETRY_AFTER_SPACE_EXCEEDED_S = 60


class ApiError(Exception):
    """A refusal the views raise, answered as it is."""

    def __init__(self, status: int, error_type: str, message: str, *,
                 headers: dict[str, str] | None = None, **details: Any):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.headers = headers or {}
        self.details = details


def error_response(status: int, error_type: str, message: str, **details: Any) -> Response:
    response = jsonify({"error": {"type": error_type, "message": message, **details}})
    response.status_code = status
    return response


def install(app: Flask) -> None:
    """Answer every error in JSON; Flask picks the handler of the most specific class."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    for error_class, (status, error_type) in KNOWN_ERRORS.items():
        app.register_error_handler(error_class, _known_error(status, error_type))
    app.register_error_handler(Exception, _unexpected_error)


def _api_error(error: ApiError) -> Response:
    response = error_response(error.status, error.error_type, str(error), **error.details)
    response.headers.update(error.headers)
    return response


def _http_error(error: HTTPException) -> Response:
    """Werkzeug's errors (unknown route, wrong method, body too large) without their HTML."""
    response = error_response(error.code, type(error).__name__, error.description)
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value  # e.g. Allow on a 405
    return response


def _known_error(status: int, error_type: str):
    def answer(error: Exception) -> Response:
        response = error_response(status, error_type, str(error))
        if status == 429:
            response.headers["Retry-After"] = str(RETRY_AFTER_BUSY_S)
        if status == 503:
            log.warning("answering 503 to %s %s: %s", request.method, request.path, error)
            response.headers["Retry-After"] = str(
                RETRY_AFTER_SPACE_EXCEEDED_S if isinstance(error, KVSpaceExceededError)
                else RETRY_AFTER_S)
        return response
    return answer


def _unexpected_error(error: Exception) -> Response:
    incident_id = uuid.uuid4().hex[:12]
    log.error("incident %s: %s %s failed", incident_id, request.method, request.path,
              exc_info=error)
    return error_response(
        500, "InternalError",
        f"{request.method} {request.path} failed on an unexpected error (a bug in mr); the "
        f"server log has its traceback under incident {incident_id}", incident_id=incident_id)
