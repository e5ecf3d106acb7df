"""``GET /request/<workflow>/<id>/graph.svg``: a request's invocation tree, drawn with graphviz
as ``mr request trace`` draws it (``docs/tracing.rst``); of a running request, as it stands."""
from __future__ import annotations

from flask import Blueprint, Response, request

from mr.engine.errors import ServiceUnavailable
from mr.engine.trace_graph import (DEFAULT_COLLAPSE_OVER, GraphvizMissing, collapse_option,
                                   draw)
from mr.engine.trace_tree import read_trace
from mr.web import auth
from mr.web.context import current_engine
from mr.web.errors import ApiError

blueprint = Blueprint("trace", __name__)


@blueprint.get("/request/<workflow>/<request_id>/graph.svg")
def graph(workflow: str, request_id: str) -> Response:
    collapse_over = _collapse_over(request.args.get("collapse"))
    engine = current_engine()
    auth.check_owner(engine.get_request(workflow, request_id))
    trace = read_trace(engine, workflow, request_id)
    try:
        svg = draw(trace, "svg", collapse_over)
    except GraphvizMissing as error:
        raise ServiceUnavailable(str(error)) from None
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"  # a running request's tree changes
    return response


def _collapse_over(value: str | None) -> int:
    if value is None:
        return DEFAULT_COLLAPSE_OVER
    try:
        return collapse_option(value)
    except ValueError as error:
        raise ApiError(400, "InvalidParameter", f"query parameter 'collapse': {error}") from None
