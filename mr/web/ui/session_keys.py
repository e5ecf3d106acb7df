"""The key that signs the UI's session cookie, and the CSRF token of its forms.

The cookie holds the token a browser logged in with, so its key must be secret and the same on
every front end: ``MR_UI_SECRET_KEY``, else one derived from ``MR_MESSAGE_SECRET`` (which every
process of a cluster shares), else a random one per process.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from flask import Flask, Request, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from mr.settings import Settings
from mr.web.errors import ApiError

log = logging.getLogger(__name__)

CSRF_KEY = "csrf"
CSRF_FIELD = "csrf_token"
#: What the derived key is for, so that it is no other use's key of the same secret.
DERIVATION_LABEL = b"mr web ui session cookie"


def secret_key(settings: Settings) -> bytes:
    if settings.ui_secret_key:
        return settings.ui_secret_key.encode()
    if settings.message_secret:
        return hmac.new(settings.message_secret.encode(), DERIVATION_LABEL,
                        hashlib.sha256).digest()
    # Embedded mode is one process: only a restart loses its sessions.
    (log.info if settings.kv_backend == "memory" else log.warning)(
        "MR_UI_SECRET_KEY and MR_MESSAGE_SECRET are empty: the web UI signs its sessions with a "
        "random key of this process, so logins do not survive a restart or span gunicorn's "
        "workers")
    return secrets.token_bytes(32)


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed cookie sessions, opened only for a request that sends cookies. A call to
    the API sends none, so its session is a new, empty one, made without the signer and the
    reading of every header that Flask would otherwise spend on each request."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)


def csrf_token() -> str:
    """The session's CSRF token, which every form of its pages sends back."""
    if CSRF_KEY not in session:
        session[CSRF_KEY] = secrets.token_urlsafe(32)
    return session[CSRF_KEY]


def check_csrf() -> None:
    """A form that changes something must come from a page of this UI in the same browser."""
    expected = session.get(CSRF_KEY, "")
    sent = request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise ApiError(400, "InvalidForm", "the form did not come from a page of this session "
                                           "(or the session ended): reload the page and send "
                                           "it again")
