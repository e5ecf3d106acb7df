"""``/request/<workflow>/<id>``: follow a request (GET) or cancel it (DELETE)."""
from __future__ import annotations

from flask import Blueprint, Response

from mr.web import auth
from mr.web.context import current_engine
from mr.web.rendering import describe as describe_request
from mr.web.rendering import request_response

blueprint = Blueprint("request_status", __name__)


@blueprint.get("/request/<workflow>/<request_id>")
def describe(workflow: str, request_id: str) -> Response:
    engine = current_engine()
    request = engine.get_request(workflow, request_id)
    auth.check_owner(request)
    return request_response(request, describe_request(engine, request))


@blueprint.delete("/request/<workflow>/<request_id>")
def cancel(workflow: str, request_id: str) -> Response:
    """Cancel a running request; a finished one is left as it is and described."""
    engine = current_engine()
    if auth.needs_owner_check():
        auth.check_owner(engine.get_request(workflow, request_id))
    request = engine.cancel(workflow, request_id)
    return request_response(request, describe_request(engine, request))
