"""A receiver of webhook notifications that prints each one as a line of JSON, to watch what a
cluster sends (JobX's ``mr_http_notification_listen``).

A JSON body is printed as it came, compacted to one line; a form body (what JobX's HTTP log hook
posted) as an object of its fields. Every notification is answered 200; any other body 400
``InvalidNotification``.
"""
from __future__ import annotations

import http.server
import json
import sys
import urllib.parse
from typing import Any, TextIO

#: JobX's listener port.
DEFAULT_PORT = 3333
FORM_TYPE = "application/x-www-form-urlencoded"


def parse_notification(content_type: str, body: bytes) -> Any:
    """The notification a POST carried; ValueError when its body is neither JSON nor a form
    (malformed JSON included)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == FORM_TYPE:
        return dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                           keep_blank_values=True))
    if media_type == "application/json" or media_type.endswith("+json"):
        return json.loads(body)
    raise ValueError(f"expected application/json or {FORM_TYPE}, got "
                     f"{media_type or 'no Content-Type'}")


class NotificationListener(http.server.ThreadingHTTPServer):
    """Prints every notification it receives to ``output``, one JSON line each."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, host: str, port: int, output: TextIO = sys.stdout):
        super().__init__((host, port), _NotificationHandler)
        self.output = output

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def print_notification(self, notification: Any) -> None:
        self.output.write(json.dumps(notification, ensure_ascii=False,
                                     separators=(",", ":")) + "\n")
        self.output.flush()


class _NotificationHandler(http.server.BaseHTTPRequestHandler):
    server: NotificationListener

    def do_POST(self) -> None:  # noqa: N802 — the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            notification = parse_notification(self.headers.get("Content-Type", ""), body)
        except ValueError as error:
            self._answer(400, {"error": {"type": "InvalidNotification",
                                         "message": str(error)}})
            return
        self.server.print_notification(notification)
        self._answer(200, {"received": True})

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: stdout carries the notifications, and each one is its own record."""
