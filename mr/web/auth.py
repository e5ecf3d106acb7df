"""Bearer tokens on every endpoint but ``/health`` (docs/security.rst).

Every request names its token in ``Authorization: Bearer mrt_<name>.<secret>``. No token, or one
that is not stored, is a 401; a token whose role or workflows do not cover the endpoint is a 403.
An endpoint not listed in ``ROLES`` is for ``admin`` tokens only, so a new endpoint is closed
until it is given a rule.
"""
from __future__ import annotations

import logging

from flask import Flask, current_app, g, request

from mr.auth.tokens import Token, TokenCache, TokenStore, auth_required
from mr.engine.engine import Engine
from mr.models import Request
from mr.web.errors import ApiError

log = logging.getLogger(__name__)

#: Endpoints anyone may call.
OPEN = frozenset({"health.health"})
#: The roles besides ``admin`` each endpoint admits. ``submit`` tokens see and cancel only the
#: requests they submitted (``check_owner``).
ROLES: dict[str, frozenset[str]] = {
    "jobs.submit": frozenset({"submit"}),
    "job_definition.describe": frozenset({"submit", "read"}),
    "request_status.describe": frozenset({"submit", "read"}),
    "request_status.cancel": frozenset({"submit"}),
    "openapi.openapi": frozenset({"submit", "read"}),
}
#: Endpoints of no workflow that every token may call, whatever its workflows.
OF_NO_WORKFLOW = frozenset({"openapi.openapi"})

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
    if endpoint in OPEN:
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


def _authenticated() -> Token:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise _unauthorized("this endpoint needs a token: send Authorization: Bearer <token> "
                            "(mr token create makes one)")
    token = current_app.extensions[_CACHE_EXTENSION].authenticate(presented.strip())
    if token is None:
        raise _unauthorized("the token is not valid: it was revoked, or never created",
                            'error="invalid_token"')
    return token


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
