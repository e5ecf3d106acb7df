"""``Client(url, token)``: mr's HTTP API from Python.

Only the standard library's HTTP client is used, so the client works in any Python process,
patched by gevent (every mr process) or not (a user's script).
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

from mr.client.errors import ApiError, Cancelled, JobFailed, Unreachable, error_for
from mr.settings import Settings

#: How long one HTTP call may take: above the front end's 60 s wait for blocking requests.
CALL_TIMEOUT_S = 90.0
#: How often a followed request is polled: at first, and at most (the interval doubles).
FIRST_POLL_S = 0.05
MAX_POLL_S = 1.0
FINISHED_STATES = ("done", "failed", "cancelled")


class Client:
    """One mr front end (``url``, such as ``http://127.0.0.1:8080``). ``token`` goes in every
    call's ``Authorization: Bearer`` header; None: the configured one (``MR_TOKEN``, or the
    settings file ``mr cluster start`` writes), if any."""

    def __init__(self, url: str, token: str | None = None, *, timeout_s: float = CALL_TIMEOUT_S):
        self.url = url.rstrip("/")
        self.token = Settings.load().token if token is None else token
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # Requests

    def submit(self, workflow: str, job: str, arguments: dict[str, Any] | None = None, *,
               input: dict | None = None, output: dict | None = None,
               deadline_s: float | None = None, wait: bool = True) -> Any:
        """Submit a request to ``job``. With ``wait`` (the default), its result once done
        (``{"pairs": ...}``, or ``{"output": ...}`` with the file writer), however long it
        takes; JobFailed or Cancelled when it fails. Without, its request id at once."""
        body: dict[str, Any] = {}
        if arguments is not None or input is None:
            body["arguments"] = arguments or {}
        for field, value in (("input", input), ("output", output), ("deadline_s", deadline_s)):
            if value is not None:
                body[field] = value
        path = f"/job/{_quote(workflow)}/{_quote(job)}"
        if not wait:
            return self._call("POST", f"{path}?blocking=false", body)["request_id"]
        try:
            return self._call("POST", path, body)["result"]
        except ApiError as error:
            if error.type != "Timeout":  # the front end stopped waiting; the request runs on
                raise
            return self.wait(workflow, error.details["request_id"])["result"]

    def status(self, workflow: str, request_id: str) -> dict[str, Any]:
        """The request's status document (``GET /request/<workflow>/<id>``)."""
        return self._call("GET", _request_path(workflow, request_id))

    def wait(self, workflow: str, request_id: str, timeout_s: float | None = None, *,
             on_status: Callable[[dict[str, Any]], None] | None = None) -> dict:
        """The status document once the request is done; JobFailed or Cancelled when it is
        not, TimeoutError when ``timeout_s`` passes first. ``on_status`` is given every status
        document read on the way, the last one included, to show progress."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        pause = FIRST_POLL_S
        while True:
            status = self.status(workflow, request_id)
            if on_status is not None:
                on_status(status)
            if status["state"] in FINISHED_STATES:
                return finished(status)
            if deadline is not None and time.monotonic() + pause > deadline:
                raise TimeoutError(f"request {request_id} of workflow {workflow!r} did not "
                                   f"finish within {timeout_s:g} s")
            time.sleep(pause)
            pause = min(pause * 2, MAX_POLL_S)

    def cancel(self, workflow: str, request_id: str) -> dict[str, Any]:
        """Cancel a running request; its status document."""
        return self._call("DELETE", _request_path(workflow, request_id))

    # Definitions

    def job(self, workflow: str, job: str) -> dict[str, Any]:
        """What a request to ``job`` would run now: its step and the versions of its handlers
        (``GET /job/<workflow>/<job>/definition``)."""
        return self._call("GET", f"/job/{_quote(workflow)}/{_quote(job)}/definition")

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def request_url(self, workflow: str, request_id: str) -> str:
        """Where the request's status is read: a link for people and programs."""
        return self.url + _request_path(workflow, request_id)

    def _call(self, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers,
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            raise error_for(error.code, _error_object(error)) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise Unreachable(f"cannot reach mr at {self.url}: {reason}") from None


def finished(status: dict[str, Any]) -> dict[str, Any]:
    """A finished request's status document when it is done, else its failure raised."""
    if status["state"] == "failed":
        raise JobFailed(422, status["error"])
    if status["state"] == "cancelled":
        raise Cancelled(409, {"type": "Cancelled", "request_id": status["request_id"],
                              "message": f"request {status['request_id']} was cancelled"})
    return status


def _error_object(error: urllib.error.HTTPError) -> dict[str, Any]:
    """The JSON error of an error answer; what a proxy answered otherwise."""
    text = error.read().decode(errors="replace")
    try:
        return json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        return {"type": f"HTTP{error.code}", "message": text[:200] or str(error.reason)}


def _request_path(workflow: str, request_id: str) -> str:
    return f"/request/{_quote(workflow)}/{_quote(request_id)}"


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")
