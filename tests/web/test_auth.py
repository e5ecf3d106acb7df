"""Bearer tokens on the front end: 401 without a valid token, 403 outside its role or workflows,
and the tokens themselves (stored as digests only, revoked at once)."""
import logging
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import gevent
import pytest

from mr.auth.tokens import TokenStore, auth_required, name_in
from mr.models.errors import AlreadyExistsError, NotFoundError, ValidationError
from mr.settings import Settings
from mr.web.app import create_app
from tests.web.test_api import assert_error, post_job

REPOSITORY = Path(__file__).resolve().parents[2]
#: Every endpoint with a token-free request to it, but /health.
ENDPOINTS = [("post", "/job/w/j"), ("get", "/job/w/j/definition"),
             ("get", "/request/w/" + "0" * 32), ("delete", "/request/w/" + "0" * 32),
             ("get", "/openapi.json"), ("get", "/no/such/route")]


@pytest.fixture
def secured(make_engine):
    """An engine with a worker, the app with authentication on, and a way to make tokens."""
    engine = make_engine(with_worker=True, auth="on")
    tokens = TokenStore(engine.kv, engine.keys)

    def token(name: str, role: str, *workflows: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens.create(name, role, workflows)[1]}"}

    return create_app(engine).test_client(), tokens, token


def submitted(client, headers) -> str:
    response = post_job(client, query="?blocking=false",
                        headers={"Content-Type": "application/json", **headers})
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["request_id"]


@pytest.mark.parametrize("method,path", ENDPOINTS)
@pytest.mark.parametrize("authorization", [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer nope",
                                           "Bearer mrt_admin.wrongsecret"])
def test_every_endpoint_but_health_refuses_a_missing_or_bad_token(secured, method, path,
                                                                  authorization):
    client, tokens, _ = secured
    tokens.create("admin", "admin")
    headers = {"Authorization": authorization} if authorization else {}
    response = getattr(client, method)(path, headers=headers)
    assert_error(response, 401, "Unauthorized")
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="mr"')


def test_health_needs_no_token(secured):
    client, _, _ = secured
    assert client.get("/health").status_code == 200


def test_an_admin_token_does_everything(secured):
    client, _, token = secured
    admin = token("root", "admin")
    request_id = submitted(client, admin)
    assert client.get(f"/request/w/{request_id}", headers=admin).status_code == 200
    assert client.delete(f"/request/w/{request_id}", headers=admin).status_code == 200
    assert client.get("/job/w/j/definition", headers=admin).status_code == 200
    assert client.get("/openapi.json", headers=admin).status_code == 200
    assert_error(client.get("/no/such/route", headers=admin), 404, "NotFound")


def test_a_submit_token_runs_jobs_and_sees_only_its_own_requests(secured):
    client, _, token = secured
    alice, bob = token("alice", "submit", "w"), token("bob", "submit")
    mine = submitted(client, alice)
    response = post_job(client, headers={"Content-Type": "application/json", **alice})
    assert response.status_code == 200 and response.get_json()["result"] == {"pairs": [["a", 1]]}
    assert client.get(f"/request/w/{mine}", headers=alice).status_code == 200
    assert_error(client.get(f"/request/w/{mine}", headers=bob), 403, "Forbidden",
                 "'bob'", "requests it submitted")
    assert_error(client.delete(f"/request/w/{mine}", headers=bob), 403, "Forbidden")
    assert client.delete(f"/request/w/{mine}", headers=alice).status_code == 200
    assert client.get("/job/w/j/definition", headers=bob).status_code == 200


def test_a_read_token_follows_any_request_but_runs_and_cancels_nothing(secured):
    client, _, token = secured
    request_id = submitted(client, token("submitter", "submit"))
    reader = token("reader", "read", "w")
    described = client.get(f"/request/w/{request_id}", headers=reader)
    assert described.status_code == 200
    assert_error(post_job(client, headers={"Content-Type": "application/json", **reader}), 403,
                 "Forbidden", "'reader'", "role read", "POST /job/w/j")
    assert_error(client.delete(f"/request/w/{request_id}", headers=reader), 403, "Forbidden")


def test_a_token_of_other_workflows_is_refused_but_may_read_the_api_description(secured):
    client, _, token = secured
    elsewhere = token("elsewhere", "admin", "other")
    assert_error(post_job(client, headers={"Content-Type": "application/json", **elsewhere}),
                 403, "Forbidden", "'elsewhere'", "workflow 'w'")
    assert_error(client.get("/job/w/j/definition", headers=elsewhere), 403, "Forbidden")
    assert client.get("/openapi.json", headers=elsewhere).status_code == 200


def test_a_revoked_token_stops_working(secured):
    client, tokens, token = secured
    headers = token("brief", "read")
    assert client.get("/openapi.json", headers=headers).status_code == 200
    tokens.revoke("brief")
    with gevent.Timeout(1):  # the watch brings the deletion
        while client.get("/openapi.json", headers=headers).status_code != 401:
            gevent.sleep(0.01)
    with pytest.raises(NotFoundError):
        tokens.revoke("brief")


def test_a_token_works_as_soon_as_it_is_created(secured):
    """Created after the app started: found by a lookup before the watch brings it."""
    client, tokens, _ = secured
    presented = tokens.create("fresh", "read")[1]
    response = client.get("/openapi.json", headers={"Authorization": f"Bearer {presented}"})
    assert response.status_code == 200


def test_only_a_digest_of_a_token_is_stored(make_engine):
    engine = make_engine()
    tokens = TokenStore(engine.kv, engine.keys)
    token, presented = tokens.create("t", "submit", ("w", "w"))
    secret = presented.split(".", 1)[1]
    stored = engine.kv.get(engine.keys.tokens() + "t").value
    assert secret.encode() not in stored and token.digest.encode() in stored
    assert name_in(presented) == "t" and token.workflows == ("w",)
    assert [listed.describe() for listed in tokens.list()] == [
        {"name": "t", "role": "submit", "workflows": ["w"], "created_at": token.created_at}]
    with pytest.raises(AlreadyExistsError, match="mr token revoke t"):
        tokens.create("t", "read")
    with pytest.raises(ValidationError, match="role must be one of submit, read, admin"):
        tokens.create("u", "owner")
    with pytest.raises(ValidationError, match="token name"):
        tokens.create("a/b", "read")


@pytest.mark.parametrize("presented", ["", "mrt_", "mrt_name", "mrt_.secret", "mrt_a/b.secret",
                                       "xyz_name.secret"])
def test_what_is_not_shaped_like_a_token_names_none(presented):
    assert name_in(presented) is None


@pytest.mark.parametrize("environ,required", [
    ({}, False),
    ({"MR_HTTP_HOST": "::1"}, False),
    ({"MR_HTTP_HOST": "localhost"}, False),
    ({"MR_HTTP_HOST": "0.0.0.0"}, True),
    ({"MR_KV_BACKEND": "etcd"}, True),
    ({"MR_AUTH": "on"}, True),
    ({"MR_AUTH": "off", "MR_KV_BACKEND": "etcd"}, False),
])
def test_authentication_is_on_but_for_an_embedded_mr_on_loopback(environ, required):
    assert auth_required(Settings.load(environ)) is required


def test_turning_authentication_off_is_logged(make_engine, caplog):
    engine = make_engine(kv_backend="etcd", auth="off")
    with caplog.at_level(logging.WARNING, logger="mr.web.auth"):
        client = create_app(engine).test_client()
    assert "MR_AUTH=off" in caplog.text
    assert client.get("/job/w/j/definition").status_code == 200


def test_metrics_are_for_tokens_of_every_workflow_that_may_read(secured):
    client, _, token = secured
    assert client.get("/metrics", headers=token("scraper", "read")).status_code == 200
    assert_error(client.get("/metrics", headers=token("narrow", "read", "w")), 403, "Forbidden",
                 "not for every workflow")
    assert_error(client.get("/metrics", headers=token("runner", "submit")), 403, "Forbidden")


def test_the_admin_token_of_a_new_start_replaces_the_last_one(make_engine):
    engine = make_engine()
    tokens = TokenStore(engine.kv, engine.keys)
    first, second = tokens.admin_token(), tokens.admin_token()
    assert first != second and name_in(second) == "admin"
    (stored,) = tokens.list()
    assert (stored.role, stored.workflows) == ("admin", ())


def test_an_embedded_mr_that_asks_for_tokens_prints_an_admin_token():
    """Its tokens live in its own memory, where no mr token command reaches."""
    environment = {**{name: value for name, value in os.environ.items()
                      if not name.startswith("MR_")}, "MR_AUTH": "on"}
    server = subprocess.Popen([sys.executable, "-m", "mr.cli.main", "run", "handlers/wordcount",
                               "--port", "0"], cwd=REPOSITORY, env=environment,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = server.stdout.readline().split()[4]
        token = server.stdout.readline().split(": ", 1)[1].strip()
        assert name_in(token) == "admin"
        path = f"{url}/job/wordcount/wordcount/definition"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(path, timeout=10)
        assert refused.value.code == 401
        allowed = urllib.request.Request(path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(allowed, timeout=10) as answer:
            assert answer.status == 200
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
