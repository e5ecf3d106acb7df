"""Requests: a workflow's recent ones, and one request's page — its state, timings, progress,
counters, result or error, its invocation tree drawn and listed, each invocation's output — with
the button that cancels it."""
from __future__ import annotations

import time
from typing import Iterator

from flask import Response, flash, g, redirect, request, url_for

from mr import codec
from mr.data.base import DataNotFoundError
from mr.engine.trace_graph import DEFAULT_COLLAPSE_OVER
from mr.engine.trace_tree import Collapsed, Node, RequestTrace, read_trace, shown_children
from mr.engine.tracker import TERMINAL_STATES
from mr.models import Request
from mr.models.base import valid_hex_id
from mr.web import auth, request_status
from mr.web import trace as trace_view
from mr.web.context import current_engine
from mr.web.errors import ApiError
from mr.web.rendering import describe
from mr.web.ui.forms import positive_number
from mr.web.ui.listing import recent_requests
from mr.web.ui.pages import blueprint, render
from mr.web.ui.session_keys import check_csrf

#: Requests per page of a workflow's listing.
RECENT_REQUESTS = 100
#: Pairs of a result shown on its page (the API's status document has them all).
RESULT_ROWS = 200
#: Invocations listed on a request's page (``mr request tree`` lists them all).
TREE_ROWS = 500
#: How often a running request's page reloads itself.
REFRESH_SECONDS = 2


@blueprint.get("/workflow/<workflow>/requests")
def requests(workflow: str) -> Response:
    before = _before(request.args.get("before"))
    engine = current_engine()
    engine.check_served(workflow)
    token = g.get("token") if auth.needs_owner_check() else None
    recent = recent_requests(engine, workflow, RECENT_REQUESTS, before=before,
                             owner=token.name if token else None)
    return render("requests.html", workflow=workflow, recent=recent, before=before)


def _before(value: str | None) -> float | None:
    if value is None:
        return None
    before = positive_number(value)
    if before is None:
        raise ApiError(400, "InvalidParameter", f"query parameter 'before' must be a time in "
                                                f"seconds since the epoch, got {value!r}")
    return before


@blueprint.get("/request/<workflow>/<request_id>", endpoint="request")
def request_page(workflow: str, request_id: str) -> Response:
    engine = current_engine()
    record = _own_request(workflow, request_id)
    status = describe(engine, record)
    pairs = status.get("result", {}).get("pairs", [])
    running = record.state not in TERMINAL_STATES
    return render("request.html", record=record, status=status, pairs=pairs[:RESULT_ROWS],
                  pairs_count=len(pairs), now=time.time(),
                  rows=list(_tree_rows(read_trace(engine, workflow, request_id))),
                  tree_rows=TREE_ROWS, may_cancel=running and _may_cancel(record),
                  refresh_seconds=REFRESH_SECONDS if running else None)


def _own_request(workflow: str, request_id: str) -> Request:
    """The request, if the token may see it."""
    record = current_engine().get_request(workflow, request_id)
    auth.check_owner(record)
    return record


def _may_cancel(record: Request) -> bool:
    token = g.get("token")
    return token is None or token.role == "admin" or (
        token.role == "submit" and record.context.get("token") == token.name)


def _tree_rows(trace: RequestTrace) -> Iterator[tuple[int, Node | Collapsed]]:
    """The invocations as ``mr request tree`` lists them, with their depth: runs of many
    sibling leaves as one row; at most TREE_ROWS + 1 rows (the last says there are more)."""
    stack: list[tuple[int, Node | Collapsed]] = [(0, trace.root)]
    count = 0
    while stack and count <= TREE_ROWS:
        depth, item = stack.pop()
        yield depth, item
        count += 1
        if isinstance(item, Node):
            stack.extend((depth + 1, child) for child in
                         reversed(shown_children(item, DEFAULT_COLLAPSE_OVER)))


@blueprint.post("/request/<workflow>/<request_id>/cancel")
def cancel(workflow: str, request_id: str) -> Response:
    """As ``DELETE /request/...``; then the request's page says how it ended."""
    check_csrf()
    request_status.cancel(workflow, request_id)
    flash("Cancel asked: a running request is cancelled, a finished one is left as it is.")
    return redirect(url_for("ui.request", workflow=workflow, request_id=request_id), 303)


@blueprint.get("/request/<workflow>/<request_id>/graph.svg")
def graph(workflow: str, request_id: str) -> Response:
    """The drawing ``GET /request/<workflow>/<id>/graph.svg`` serves, for the UI's session."""
    return trace_view.graph(workflow, request_id)


@blueprint.get("/request/<workflow>/<request_id>/invocation")
def invocation(workflow: str, request_id: str) -> Response:
    """One invocation's runs (its map, its reduce, each attempt's trace) and what its handlers
    printed, as ``mr invocation logs`` prints them."""
    invocation_id = request.args.get("id", "")
    try:
        valid_hex_id(invocation_id, "query parameter 'id', the invocation id,")
    except ValueError as error:
        raise ApiError(400, "InvalidParameter", str(error)) from None
    engine = current_engine()
    record = _own_request(workflow, request_id)
    nodes = read_trace(engine, workflow, request_id).find(invocation_id)
    if not nodes:
        raise ApiError(404, "NotFound", f"request {request_id!r} of workflow {workflow!r} has "
                                        f"no invocation {invocation_id!r}")
    runs = [(node, run, _output(run.log)) for node in nodes for run in node.runs]
    return render("invocation.html", record=record, invocation_id=invocation_id, nodes=nodes,
                  runs=runs)


def _output(path: str | None) -> list | None:
    """A run's ``[label, text]`` outputs; None when it kept none (or they were removed)."""
    if path is None:
        return None
    try:
        return codec.decode(current_engine().data.get(path))
    except DataNotFoundError:
        return None
