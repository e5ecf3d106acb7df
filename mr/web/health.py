"""``/health``: for load balancers and process supervisors. It answers as long as the worker
process serves HTTP; it does not probe etcd or nsqd, so a backend outage does not take every
front end out of rotation (requests then get a 503 that says which backend failed)."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

blueprint = Blueprint("health", __name__)


@blueprint.get("/health")
def health() -> Response:
    return jsonify({"status": "ok"})
