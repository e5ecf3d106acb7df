"""The errors gunicorn answers itself, before the app sees the request (a request line or
headers over its limits, a malformed request), as JSON errors like every other answer of mr:
gunicorn writes them as HTML pages. The gunicorn configs install this (gunicorn_base_conf).

The type is Werkzeug's name for the status, as the app names the HTTP errors it answers itself
(``RequestURITooLarge`` for a 414, ``RequestHeaderFieldsTooLarge`` for a 431).
"""
from __future__ import annotations

import json

from gunicorn import util
from werkzeug.exceptions import default_exceptions


def install() -> None:
    """Replace gunicorn's writer of its own error answers: a config module runs this in the
    master, whose workers inherit it."""
    util.write_error = write_json_error


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """What ``gunicorn.util.write_error`` writes, but JSON."""
    from mr.web.context import fulfilled_by  # in the worker, which has imported the app

    error_type = default_exceptions[status_int].__name__ if status_int in default_exceptions \
        else reason.replace(" ", "")
    body = json.dumps({"error": {"type": error_type, "message": mesg or reason}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"X-FULFILLED-BY: {fulfilled_by()}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)
