"""``GET /openapi.json``: the OpenAPI description of this API, so that clients and tools can be
generated from it and the API fuzzed against it (tests/web/test_openapi.py keeps it true).

It names no server: requests go to the host that served it, whatever proxy is in front.
"""
from __future__ import annotations

import functools
from importlib.resources import files
from typing import Any

import yaml
from flask import Blueprint, Response, jsonify

DESCRIPTION_FILE = "openapi.yaml"

blueprint = Blueprint("openapi", __name__)


@functools.cache
def description() -> dict[str, Any]:
    """The description shipped beside this module, read once per process."""
    return yaml.safe_load(files(__package__).joinpath(DESCRIPTION_FILE).read_text("utf-8"))


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return jsonify(description())
