"""``/metrics``: the front end's Prometheus metrics (docs/operations.rst); under gunicorn,
those of all its workers summed, whichever answers."""
from __future__ import annotations

from flask import Blueprint, Response, request

from mr.metrics.exposition import exposition

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def metrics() -> Response:
    body, content_type = exposition(request.headers.get("Accept"))
    return Response(body, content_type=content_type)
