"""An HTTP client of mr as a program would be one: JSON bodies over one keep-alive connection.

Under gevent each client greenlet holds its own ``Client``; a failed connection is dropped and
the next call opens a new one, so one client can ride out a restarted server.
"""
from __future__ import annotations

import http.client
import json
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from tests.faults.harness import WORKFLOW

#: What a call raises when no answer came back at all.
CONNECTION_ERRORS = (OSError, http.client.HTTPException)


class Answer(NamedTuple):
    status: int
    body: dict[str, Any]

    @property
    def error(self) -> dict[str, Any]:
        return self.body.get("error") or {}


class Front(NamedTuple):
    """Where a cluster's front end answers, and the token it asks for."""
    url: str
    token: str = ""


def front_of(cluster, nginx: bool = False) -> Front:
    """The front end of a cluster (``LocalCluster``, ``MultiNodeCluster``), or nginx before it."""
    return Front(cluster.nginx_url if nginx else cluster.url, cluster.env.get("MR_TOKEN", ""))


class Client:
    def __init__(self, front: Front, timeout_s: float = 120.0):
        parts = urlsplit(front.url)
        self._host, self._port, self._timeout_s = parts.hostname, parts.port, timeout_s
        self._headers = {"Content-Type": "application/json"}
        if front.token:
            self._headers["Authorization"] = f"Bearer {front.token}"
        self._connection: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: dict | None = None) -> Answer:
        """One exchange; CONNECTION_ERRORS when it broke (the connection is then dropped)."""
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self._host, self._port,
                                                          timeout=self._timeout_s)
        data = None if body is None else json.dumps(body).encode()
        try:
            self._connection.request(method, path, body=data, headers=self._headers)
            response = self._connection.getresponse()
            payload = response.read()
        except CONNECTION_ERRORS:
            self.close()
            raise
        try:
            decoded = json.loads(payload)
        except ValueError:
            decoded = {"error": {"type": "NotJSON", "message": payload[:200].decode(
                errors="replace")}}
        return Answer(response.status, decoded)

    def submit(self, job: str, arguments: dict, *, blocking: bool,
               deadline_s: float | None = None) -> Answer:
        body: dict[str, Any] = {"arguments": arguments}
        if deadline_s is not None:
            body["deadline_s"] = deadline_s
        return self.call("POST", f"/job/{WORKFLOW}/{job}?blocking={str(blocking).lower()}", body)

    def status(self, request_id: str) -> Answer:
        return self.call("GET", f"/request/{WORKFLOW}/{request_id}")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def pairs_of(body: dict[str, Any]) -> dict:
    """The result pairs of a done request's answer, as a dict."""
    return {key: value for key, value in body["result"]["pairs"]}
