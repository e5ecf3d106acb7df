"""How a request is shown to clients: its status document, its result, its failure."""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, url_for

from mr.data.base import DataNotFoundError
from mr.engine.engine import Engine
from mr.engine.trace import counted
from mr.models import NotFoundError, Request

REQUEST_ID_HEADER = "X-MR-REQUEST-ID"
#: The fields of a failure, as the engine records them (absent ones are null).
FAILURE_FIELDS = ("type", "message", "kind", "handler", "traceback", "stdout", "stderr")


def request_response(request: Request, body: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers[REQUEST_ID_HEADER] = request.request_id
    return response


def status_url(request: Request) -> str:
    return url_for("request_status.describe", workflow=request.workflow,
                   request_id=request.request_id)


def describe(engine: Engine, request: Request) -> dict[str, Any]:
    """The status document of ``GET /request/<workflow>/<id>``."""
    body = {"request_id": request.request_id, "workflow": request.workflow,
            "job": request.job_name, "state": request.state, "blocking": request.blocking,
            "context": request.context, "created_at": request.created_at,
            "finished_at": request.finished_at, "deadline": request.deadline,
            # done: summed on the record; else what the invocations committed so far
            "counters": (request.counters or {}) if request.state == "done"
            else counted(engine.kv, engine.keys, request)}
    if request.state == "done":
        body["result"] = result(engine, request)
    elif request.state == "failed":
        body["error"] = failure(request)
    elif request.state == "running":
        body["progress"] = engine.tree.progress(request)
    return body


def result(engine: Engine, request: Request) -> dict[str, Any]:
    if request.output_parts is not None:  # the file writer's: the result is in files
        return {"output": {**request.output, "parts": request.output_parts}}
    try:
        return {"pairs": engine.result(request)}
    except DataNotFoundError:  # removed between reading the record and reading the data
        raise NotFoundError(f"request {request.request_id!r} of workflow {request.workflow!r} "
                            f"was removed") from None


def failure(request: Request) -> dict[str, Any]:
    recorded = request.error or {}
    return {**{field: recorded.get(field) for field in FAILURE_FIELDS},
            "failed_invocation_id": request.failed_invocation_id,
            "request_id": request.request_id}
