"""The ``http`` result writer's delivery: one POST of the result to the client's URL, retried.

Delivery is at least once: when an answer is lost (a timeout, a dropped connection, a 5xx from a
receiver that may have stored the result before failing), the POST is sent again, so a receiver
deduplicates by ``X-Mr-Request-Id``. What is retried is what may succeed later — no answer, a
5xx, 408 and 429 — with exponential backoff and jitter, so that many workers retrying at once do
not hit a recovering receiver in step; any other answer is final. Only the standard library is
used: in a gevent-patched process its sockets, DNS look-ups and sleeps are cooperative.
"""
from __future__ import annotations

import http.client
import random
import time
import urllib.error
import urllib.parse
import urllib.request

#: Longest wait between two attempts, whatever the backoff or a receiver's Retry-After asks.
MAX_DELAY_S = 60.0
#: Answers that may succeed when sent again: the receiver timed out, is throttling, or failed.
RETRIED_CLIENT_STATUSES = (408, 429)
#: How much of an error answer's body is kept for the error message.
ERROR_BODY_CHARS = 200


class ResultDeliveryError(Exception):
    """The result could not be delivered: the receiver refused it, or never answered in time."""

    def __init__(self, url: str, attempts: int, last_error: str):
        super().__init__(f"could not deliver the result to {url} after {attempts} "
                         f"attempt{'s' if attempts != 1 else ''}: {last_error}")
        self.url = url
        self.attempts = attempts
        self.last_error = last_error


def check_result_url(url: str) -> str:
    """``url`` if it is an http:// or https:// URL with a host; ValueError saying why not."""
    parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https"):
        raise ValueError(f"a result URL must be an http:// or https:// URL, got {url!r}")
    if not parsed.hostname:
        raise ValueError(f"result URL {url!r} has no host")
    return url


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a 301-303 answer to a POST with a GET without the body, and count the
    result as delivered; a redirect is an answer to report instead."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post_result(url: str, body: bytes, headers: dict[str, str], *, attempts: int,
                backoff_s: float, timeout_s: float) -> None:
    """POST ``body`` as JSON to ``url`` with ``headers`` until a 2xx answer, at most ``attempts``
    times; raises :class:`ResultDeliveryError` when that does not happen."""
    check_result_url(url)
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    request_headers = {"Content-Type": "application/json", **headers}
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, headers=request_headers, method="POST")
        try:
            with _opener.open(request, timeout=timeout_s):
                return
        except urllib.error.HTTPError as error:
            last_error = _describe_answer(error)
            retry_after = _retry_after_s(error)
            if not _is_retried(error.code) or attempt == attempts:
                raise ResultDeliveryError(url, attempt, last_error) from None
        except (OSError, http.client.HTTPException) as error:  # no answer: refused, reset, timeout
            last_error = _describe_failure(error)
            retry_after = None
            if attempt == attempts:
                raise ResultDeliveryError(url, attempt, last_error) from None
        time.sleep(retry_delay_s(attempt, backoff_s, retry_after))


def retry_delay_s(attempt: int, backoff_s: float, retry_after_s: float | None) -> float:
    """The wait after failed attempt number ``attempt``: the receiver's Retry-After when it gave
    one, else ``backoff_s`` doubled per attempt, jittered down to half; capped either way."""
    if retry_after_s is not None:
        return min(retry_after_s, MAX_DELAY_S)
    ceiling = min(backoff_s * 2 ** (attempt - 1), MAX_DELAY_S)
    return random.uniform(ceiling / 2, ceiling)


def _is_retried(status: int) -> bool:
    return status >= 500 or status in RETRIED_CLIENT_STATUSES


def _retry_after_s(error: urllib.error.HTTPError) -> float | None:
    """Retry-After in seconds, when the answer has it in that form (not as a date)."""
    value = (error.headers.get("Retry-After") or "").strip()
    return float(value) if value.isdigit() else None


def _describe_answer(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read(ERROR_BODY_CHARS).decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException):
        text = ""
    return f"HTTP {error.code} {error.reason}" + (f": {text}" if text else "")


def _describe_failure(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError) and not isinstance(error.reason, str):
        error = error.reason  # the socket's error, with its own message
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
