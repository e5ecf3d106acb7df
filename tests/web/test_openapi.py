"""The OpenAPI description served at ``/openapi.json`` is valid, and it is true: schemathesis
generates requests for every operation it lists (valid ones and invalid ones, and the methods
it does not list) and sends them to a front end whose engine really runs them, and every answer
must be one the description lists: never a 5xx; a documented status, content type, body and
headers; a 405 with ``Allow`` for a method it does not list; a 401 to a request without a valid
token. tests/web/fuzzing.py says how the generated requests are steered to what exists and
confined to the test's own files.
"""
import pytest
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate

from mr.auth.tokens import TokenStore
from mr.web.app import create_app
from mr.web.openapi import description
from tests.web.fuzzing import (CHECKS, GENERATED, Credential, Places, existing_requests,
                               headers_are_invalid, result_receiver, schema, upload_as_sent)


def test_the_served_description_is_valid_openapi(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    described = response.get_json()
    validate(described)
    assert described == description()  # the description the fuzzing below holds the API to
    assert "servers" not in described
    served = {(rule.rule, method) for rule in client.application.url_map.iter_rules()
              for method in rule.methods - {"HEAD"}}
    documented = {(path.replace("{", "<").replace("}", ">"), method.upper())
                  for path, operations in described["paths"].items() for method in operations
                  if method != "parameters"}
    assert documented == {(rule.replace("<job_name>", "<job>"), method)
                          for rule, method in served}


@pytest.fixture
def secured_engine(make_engine):
    return make_engine(with_worker=True, request_wait_timeout_s=20, auth="on")


@pytest.fixture
def app(secured_engine):
    return create_app(secured_engine)


@pytest.fixture
def admin(secured_engine):
    """What the generated requests are sent with, unless their headers are what is invalid:
    schemathesis' own missing or malformed tokens are sent as they are, to be refused."""
    token = TokenStore(secured_engine.kv, secured_engine.keys).create("admin", "admin")[1]
    return Credential("admin", f"Bearer {token}", valid=True)


@pytest.fixture
def places(app, admin, tmp_path):
    client = app.test_client()

    def send(method, path, body):
        response = client.open(path, method=method, json=body,
                               headers={"Authorization": admin.authorization})
        return response.status_code, response.get_json()

    with result_receiver() as receiver_url:
        yield Places(existing_requests(send), tmp_path, receiver_url)


@schema.parametrize()
@settings(max_examples=100, derandomize=True, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_answer_is_one_the_description_lists(case, app, admin, places):
    places.steer(case)
    upload_as_sent(case)
    credential = GENERATED if headers_are_invalid(case) else admin
    headers = credential.apply(case)
    places.confine(case)
    response = case.call_and_validate(app=app, headers=headers, checks=CHECKS)
    assert credential.judge(case, response.status_code) is None
