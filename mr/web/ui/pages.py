"""The UI's blueprint and what all its pages share: the templates and what they may call, the
headers of every answer, and errors shown as pages.

Errors are raised as the API raises them and answered by the API's handlers; only then does
:func:`_as_page` turn the JSON answer into a page with the same status and headers, so that the
UI tells exactly what the API would. A page that needs a token and has none sends the browser
to the login page instead.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from flask import (Blueprint, Response, flash, g, make_response, redirect, render_template,
                   request, send_from_directory, session, url_for)

from mr.auth.tokens import auth_required
from mr.engine.trace_tree import elapsed
from mr.web.auth import SESSION_TOKEN
from mr.web.context import ENGINE_EXTENSION, current_engine
from mr.web.ui import session_keys

STATIC = Path(__file__).parent / "static"
#: Pages load their own stylesheet, script and drawings, and nothing else from anywhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; "
                               "img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
#: A value shown in a table cell is cut to this many characters of its JSON.
VALUE_CHARS = 500

blueprint = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates")


@blueprint.record_once
def _configure_sessions(state) -> None:
    """The signed session cookie that holds a browser's token and its forms' CSRF token."""
    app = state.app
    app.secret_key = session_keys.secret_key(app.extensions[ENGINE_EXTENSION].settings)
    app.session_interface = session_keys.CookieSessions()
    app.config.update(SESSION_COOKIE_NAME="mr_ui", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax")


def render(template: str, status: int = 200, /, **context: Any) -> Response:
    response = make_response(render_template(template, **context), status)
    response.headers["Cache-Control"] = "no-store"  # live states, and what a token may see
    return response


@blueprint.context_processor
def _page_context() -> dict[str, Any]:
    return {"token": g.get("token"), "auth_on": auth_required(current_engine().settings),
            "may_submit": may_submit(), "csrf_token": session_keys.csrf_token,
            "when": when, "elapsed": elapsed, "shown": shown}


def may_submit() -> bool:
    """Whether the page's token may run jobs (any may, when authentication is off)."""
    token = g.get("token")
    return token is None or token.role in ("submit", "admin")


def when(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "-"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch_s))
    except (OverflowError, OSError, ValueError):  # beyond the calendar
        return f"{epoch_s:g} s after 1970"


def shown(value: Any) -> str:
    """A value as its JSON (strings as they are), cut to VALUE_CHARS."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                            default=repr)
    return text if len(text) <= VALUE_CHARS else f"{text[:VALUE_CHARS]}… ({len(text):,} chars)"


@blueprint.get("/ui.css")
def stylesheet() -> Response:
    return send_from_directory(STATIC, "ui.css", max_age=300)


@blueprint.get("/refresh.js")
def script() -> Response:
    return send_from_directory(STATIC, "refresh.js", max_age=300)


@blueprint.after_request
def _as_page(response: Response) -> Response:
    if response.status_code == 401:
        response = _to_login()
    elif response.status_code >= 400 and response.is_json:
        response = _error_page(response)
    response.headers.update(SECURITY_HEADERS)
    return response


def _to_login() -> Response:
    """A page that needs a token: log in first, then come back (to a page, not to a form)."""
    if session.pop(SESSION_TOKEN, None) is not None:
        flash("The token this browser logged in with is not valid any more (revoked?): log in "
              "again.")
    here = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("ui.login", next=here))


def _error_page(answer: Response) -> Response:
    error = (answer.get_json(silent=True) or {}).get("error") or {}
    page = render("error.html", answer.status_code, status=answer.status,
                  error_type=error.get("type", "Error"), message=error.get("message", ""))
    for name, value in answer.headers.items():
        if name.lower() not in ("content-type", "content-length"):
            page.headers[name] = value
    return page
