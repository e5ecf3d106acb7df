"""Bearer tokens on every endpoint but ``/health`` (docs/security.rst).

Every request names its token in ``Authorization: Bearer mrt_<name>.<secret>``. No token, or one
that is not stored, is a 401; a token whose role or workflows do not cover the endpoint is a 403.
An endpoint not listed in ``ROLES`` is for ``admin`` tokens only, so a new endpoint is closed
until it is given a rule. The web UI's pages (mr.web.ui) also take the token that its login
keeps in the session cookie, since a browser cannot send the header.
"""
from __future__ import annotations

import logging

from flask import Flask, current_app, g, request, session
from werkzeug.exceptions import MethodNotAllowed

from mr.auth.tokens import Token, TokenCache, TokenStore, auth_required
from mr.engine.engine import Engine
from mr.models import Request
from mr.web.errors import ApiError

log = logging.getLogger(__name__)

#: Endpoints anyone may call: the web UI's login and logout and its files among them.
OPEN = frozenset({"health.health", "ui.login", "ui.log_in", "ui.logout", "ui.stylesheet",
                  "ui.script"})
#: The roles besides ``admin`` each endpoint admits. ``submit`` tokens see and cancel only the
#: requests they submitted (``check_owner``).
ROLES: dict[str, frozenset[str]] = {
    "jobs.submit": frozenset({"submit"}),
    "job_definition.describe": frozenset({"submit", "read"}),
    "request_status.describe": frozenset({"submit", "read"}),
    "request_status.cancel": frozenset({"submit"}),
    "openapi.openapi": frozenset({"submit", "read"}),
    "trace.graph": frozenset({"submit", "read"}),
    # Of every workflow: only a token of every workflow may call it (_check_workflow).
    "metrics.metrics": frozenset({"read"}),
    # The web UI: its pages show what the API's reads show, its forms do what the API does.
    **dict.fromkeys(("ui.workflows", "ui.workflow", "ui.handler", "ui.job", "ui.requests",
                     "ui.request", "ui.graph", "ui.invocation"), frozenset({"submit", "read"})),
    "ui.submit": frozenset({"submit"}),
    "ui.cancel": frozenset({"submit"}),
}
#: Endpoints of no workflow that every token may call, whatever its workflows (the UI's index
#: lists the workflows of the token).
OF_NO_WORKFLOW = frozenset({"openapi.openapi", "ui.workflows"})
#: Where the web UI's session keeps the token a browser logged in with.
SESSION_TOKEN = "token"

_CACHE_EXTENSION = "mr.tokens"


def install(app: Flask, engine: Engine) -> None:
    if not auth_required(engine.settings):
        if engine.settings.auth == "off":
            log.warning("authentication is off (MR_AUTH=off): whoever reaches this front end "
                        "may run, read and cancel every request")
        return
    cache = TokenCache(TokenStore(engine.kv, engine.keys), engine.kv)
    cache.start()
    engine.on_stop.append(cache.stop)
    app.extensions[_CACHE_EXTENSION] = cache
    app.before_request(_admit)


def _admit() -> None:
    endpoint = request.endpoint
    if endpoint in OPEN or _is_open_path():
        return
    token = _authenticated()
    g.token = token
    if endpoint is None:
        return  # a route that does not exist: a valid token is told so (404, 405)
    if token.role != "admin" and token.role not in ROLES.get(endpoint, ()):
        raise ApiError(403, "Forbidden",
                       f"token {token.name!r} has the role {token.role}, which may not "
                       f"{request.method} {request.path}")
    if endpoint not in OF_NO_WORKFLOW:
        _check_workflow(token)


def _is_open_path() -> bool:
    """Whether the path is one of open endpoints only (or of the web UI's, which show anyone
    without a token the login page), asked with a method they do not take: its 405 tells no
    more than they do."""
    error = request.routing_exception
    if not isinstance(error, MethodNotAllowed):
        return False
    routes = current_app.url_map.bind_to_environ(request.environ)
    return all(endpoint in OPEN or endpoint.startswith("ui.") for endpoint in
               (routes.match(method=method)[0] for method in error.valid_methods))


def _authenticated() -> Token:
    presented = _presented()
    if not presented:
        raise _unauthorized("this endpoint needs a token: send Authorization: Bearer <token> "
                            "(mr token create makes one)")
    token = authenticate(presented)
    if token is None:
        raise _unauthorized("the token is not valid: it was revoked, or never created",
                            'error="invalid_token"')
    return token


def _presented() -> str:
    """The bearer token sent; on the web UI's pages, else the one its session keeps."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and presented.strip():
        return presented.strip()
    return session.get(SESSION_TOKEN, "") if request.blueprint == "ui" else ""


def authenticate(presented: str) -> Token | None:
    """The stored token ``presented`` is; None if it is not one (or authentication is off)."""
    cache = current_app.extensions.get(_CACHE_EXTENSION)
    return cache.authenticate(presented) if cache is not None else None


def _unauthorized(message: str, challenge: str = "") -> ApiError:
    return ApiError(401, "Unauthorized", message, headers={
        "WWW-Authenticate": " ".join(filter(None, ['Bearer realm="mr"', challenge]))})


def _check_workflow(token: Token) -> None:
    workflow = (request.view_args or {}).get("workflow")
    if not token.covers(workflow):
        what = f"workflow {workflow!r}" if workflow else "every workflow"
        raise ApiError(403, "Forbidden", f"token {token.name!r} is not for {what}")


def owner_context() -> dict[str, str]:
    """What a new request records of who submitted it."""
    token = g.get("token")
    return {"token": token.name} if token is not None else {}


def check_owner(record: Request) -> None:
    """A ``submit`` token may only see and cancel the requests it submitted."""
    token = g.get("token")
    if token is not None and token.role == "submit" and \
            record.context.get("token") != token.name:
        raise ApiError(403, "Forbidden", f"token {token.name!r} may only see and cancel the "
                                         f"requests it submitted")


def needs_owner_check() -> bool:
    token = g.get("token")
    return token is not None and token.role == "submit"
