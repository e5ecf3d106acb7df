"""``POST /job/<workflow>/<job>``: accept a request, then answer with its outcome (blocking, the
default) or with where to follow it (``?blocking=false``)."""
from __future__ import annotations

import functools

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from mr.engine.engine import Engine, Upload
from mr.models import Request
from mr.web import auth
from mr.web.context import current_engine, requester_ip
from mr.web.errors import ApiError
from mr.web.parsing import parse_blocking, parse_body, parse_upload_options, upload_format
from mr.web.rendering import failure, request_response, result, status_url

blueprint = Blueprint("jobs", __name__)


@blueprint.post("/job/<workflow>/<job_name>")
def submit(workflow: str, job_name: str) -> Response:
    blocking = parse_blocking(request.args)
    engine = current_engine()
    fmt = upload_format(request)
    if fmt is None:
        try:
            body = parse_body(request)
        except RequestEntityTooLarge:
            raise ApiError(413, "RequestEntityTooLarge",
                           f"the body is larger than MR_MAX_REQUEST_BYTES "
                           f"({engine.settings.max_request_bytes} bytes); send a large input "
                           f"as an upload (Content-Type text/plain or application/x-ndjson) "
                           f"or name it by reference") from None
    else:
        body = parse_upload_options(request.args)
        request.max_content_length = engine.settings.max_upload_bytes
    try:
        upload = None if fmt is None else Upload(request.stream, fmt)
        accepted = engine.submit(workflow, job_name, body.arguments, blocking=blocking,
                                 context={"requester_ip": requester_ip(),
                                          **auth.owner_context()},
                                 deadline_s=body.deadline_s, input=body.input,
                                 output=body.output, notify=body.notify, upload=upload)
    except RequestEntityTooLarge:
        raise ApiError(413, "RequestEntityTooLarge",
                       f"the uploaded input is larger than MR_MAX_UPLOAD_BYTES "
                       f"({engine.settings.max_upload_bytes} bytes); put it in the data store "
                       f"(mr data put) and name it as the input instead") from None
    if not blocking:
        follow_at = status_url(accepted)
        response = request_response(accepted, {"request_id": accepted.request_id,
                                               "status_url": follow_at}, 202)
        response.headers["Location"] = follow_at
        return response
    finished = engine.wait(workflow, accepted.request_id, engine.settings.request_wait_timeout_s,
                           deadline=accepted.deadline)
    if finished is None:
        return _timed_out(engine, accepted)
    return _outcome(engine, finished)


def _outcome(engine: Engine, finished: Request) -> Response:
    if finished.state == "done":
        # Rendered whole before the request is released: a result that fails to render is
        # still there to fetch, never lost.
        response = request_response(finished, {"result": result(engine, finished)})
        # Delivered: nothing is left to keep it for. Removed once the server has sent the answer
        # (and closes it), in the background; should the process die first, its cleanup entry,
        # written when it finished, has it removed when due.
        response.call_on_close(functools.partial(engine.cleaner.release_soon, finished))
        return response
    if finished.state == "failed":  # the job's handler failed: not a bug of the server
        return request_response(finished, {"error": failure(finished)}, 422)
    return request_response(finished, {"error": {
        "type": "Cancelled", "message": f"request {finished.request_id} was cancelled",
        "request_id": finished.request_id}}, 409)


def _timed_out(engine: Engine, accepted: Request) -> Response:
    """The wait is over, the request is not: the client may follow it at its status URL."""
    return request_response(accepted, {"error": {
        "type": "Timeout",
        "message": f"request {accepted.request_id} did not finish within "
                   f"{engine.settings.request_wait_timeout_s:g} s; it keeps running: GET its "
                   f"status_url for the outcome",
        "request_id": accepted.request_id, "status_url": status_url(accepted)}}, 504)
