"""``/ui/login`` and ``/ui/logout``: a browser cannot send a bearer header, so the UI keeps the
token pasted here in its signed session cookie, where mr.web.auth finds it for the UI's pages."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, flash, redirect, request, session, url_for

from mr.auth.tokens import auth_required
from mr.web import auth
from mr.web.context import current_engine
from mr.web.ui.pages import blueprint, render
from mr.web.ui.session_keys import check_csrf


@blueprint.get("/login")
def login() -> Response:
    return render("login.html", next_page=_next_page(request.args.get("next")))


@blueprint.post("/login")
def log_in() -> Response:
    check_csrf()
    next_page = _next_page(request.form.get("next"))
    if not auth_required(current_engine().settings):
        return _go_to(next_page)
    presented = request.form.get("token", "").strip()
    token = auth.authenticate(presented) if presented else None
    if token is None:
        return render("login.html", 400, next_page=next_page,
                      failure="This token is not valid: it was revoked, or never created "
                              "(mr token create makes one)." if presented else
                              "Paste a token to log in.")
    session[auth.SESSION_TOKEN] = presented
    flash(f"Logged in with token {token.name} ({token.role}).")
    return _go_to(next_page)


@blueprint.post("/logout")
def logout() -> Response:
    check_csrf()
    session.clear()
    flash("Logged out: this browser no longer holds the token (which stays valid until "
          "mr token revoke).")
    return redirect(url_for("ui.login"), 303)


def _go_to(next_page: str | None) -> Response:
    return redirect(request.script_root + next_page if next_page else url_for("ui.workflows"),
                    303)


def _next_page(path: str | None) -> str | None:
    """Where to go once logged in: a page of the UI, never another site."""
    if not path:
        return None
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or "\\" in path or not (
            parts.path == "/ui" or parts.path.startswith("/ui/")):
        return None
    return path
