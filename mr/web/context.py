"""What the views take from the app and from the incoming HTTP request."""
from __future__ import annotations

import os
import socket

from flask import current_app, request

from mr.engine.engine import Engine

ENGINE_EXTENSION = "mr.engine"


def current_engine() -> Engine:
    return current_app.extensions[ENGINE_EXTENSION]


def requester_ip() -> str | None:
    """The client's address as the proxy in front reported it, else the peer's address.

    JobX refused requests without the header; we serve direct clients too. Of a list
    (``client, proxy1, ...``) the first entry is the original client.
    """
    forwarded = request.headers.get(_header_name(current_engine().settings.remote_addr_header))
    if forwarded and forwarded.split(",")[0].strip():
        return forwarded.split(",")[0].strip()
    return request.remote_addr


def _header_name(setting: str) -> str:
    """JobX named a WSGI environ key (``HTTP_X_FORWARDED_FOR``); a header name works as well."""
    return setting[len("HTTP_"):] if setting.upper().startswith("HTTP_") else setting


def fulfilled_by() -> str:
    """``hostname/pid`` of this process: which gunicorn worker answered (read per answer, since
    workers are forked)."""
    return f"{socket.gethostname()}/{os.getpid()}"
