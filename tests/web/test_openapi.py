"""The OpenAPI description served at ``/openapi.json`` is valid, and it is true: schemathesis
generates requests for every operation it lists (valid ones and invalid ones, and the methods
it does not list) and sends them to a front end whose engine really runs them, and every answer
must be one the description lists: never a 5xx; a documented status, content type, body and
headers; a 405 with ``Allow`` for a method it does not list.

The generated requests are steered, not limited: three in four path parameters name the
served workflow, its jobs or requests that exist, instead of generated names that could only be
404s. What they would read or write outside the test is confined to it: every input URL names a
file of the test, every output directory one under the test's directory, every result POST a
receiver on loopback. Nothing else of a generated request is changed.
"""
import json
import zlib

import gevent
import pytest
import schemathesis
from gevent.pywsgi import WSGIServer
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                                negative_data_rejection,
                                                response_headers_conformance,
                                                response_schema_conformance,
                                                status_code_conformance, unsupported_method)

from mr.results.http_post import check_result_url
from mr.web.app import create_app
from mr.web.openapi import description
from tests.web.workflow import WORKFLOW

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance, unsupported_method,
          negative_data_rejection]
JOBS = ("j", "fails")
#: Uploads are strings of records; schemathesis sends them as it sends text/plain bodies.
schemathesis.serializer.alias(["application/x-ndjson", "application/jsonl"], "text/plain")


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


class Places:
    """Where the fuzzed requests may read and write: the test's own files and receiver."""

    def __init__(self, app, tmp_path, receiver_url: str):
        self.app = app
        self.request_ids = _existing_requests(app.test_client())
        self.input_file = tmp_path / "input.txt"
        self.input_file.write_text("one line\nanother line\n")
        self.output_root = tmp_path / "outputs"
        self.receiver_url = receiver_url

    def steer(self, case) -> None:
        """Three in four path parameters name what exists instead of what was generated, chosen
        by a hash of the generated request, so that a run is reproduced exactly."""
        existing = {"workflow": [WORKFLOW], "job": JOBS, "request_id": self.request_ids}
        for name, value in list((case.path_parameters or {}).items()):
            digest = zlib.crc32(f"{name}={value!r} {case.query!r} {case.body!r}".encode())
            if digest % 4:
                case.path_parameters[name] = existing[name][digest // 4 % len(existing[name])]

    def confine(self, case) -> None:
        if isinstance(case.body, dict):
            for field, confine in (("input", self._input), ("output", self._output)):
                if field in case.body:
                    case.body[field] = confine(case.body[field])
        if isinstance(case.query, dict) and "output" in case.query:
            case.query["output"] = self._output_parameter(case.query["output"])

    def _input(self, spec):
        if _names_a_url(spec):
            return {**spec, "url": str(self.input_file)}
        return spec

    def _output(self, spec):
        if _names_a_url(spec):
            return {**spec, "url": str(self.output_root / _digest(spec["url"]))}
        if isinstance(spec, dict) and _is_result_url(spec.get("http")):
            return {**spec, "http": self.receiver_url}
        return spec

    def _output_parameter(self, value):
        """The query parameter is the JSON of a writer, or whatever a negative case made it."""
        if not isinstance(value, str):
            return self._output(value)
        try:
            spec = json.loads(value)
        except ValueError:
            return value
        return json.dumps(self._output(spec))


def _digest(value) -> str:
    return f"{zlib.crc32(repr(value).encode()):08x}"


def _names_a_url(spec) -> bool:
    return isinstance(spec, dict) and isinstance(spec.get("url"), str) and bool(
        spec["url"].strip())


def _is_result_url(url) -> bool:
    try:
        check_result_url(url)
    except ValueError:
        return False
    return True


def _accept_result(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"stored\n"]


@pytest.fixture
def places(make_engine, tmp_path):
    receiver = WSGIServer(("127.0.0.1", 0), _accept_result, log=None)
    receiver.start()
    engine = make_engine(with_worker=True, request_wait_timeout_s=20)
    yield Places(create_app(engine), tmp_path, f"http://127.0.0.1:{receiver.server_port}/")
    receiver.stop()


def _existing_requests(client) -> list[str]:
    """Requests the fuzzed GETs and DELETEs may name: one done, one failed, one cancelled
    (or done, if it finished first)."""
    body = {"arguments": {"a": 1}}
    done = client.post(f"/job/{WORKFLOW}/j?blocking=false", json=body).get_json()["request_id"]
    failed = client.post(f"/job/{WORKFLOW}/fails", json=body).get_json()["error"]["request_id"]
    cancelled = client.post(f"/job/{WORKFLOW}/j?blocking=false", json=body).get_json()[
        "request_id"]
    assert client.delete(f"/request/{WORKFLOW}/{cancelled}").status_code == 200
    with gevent.Timeout(30):
        while client.get(f"/request/{WORKFLOW}/{done}").get_json()["state"] != "done":
            gevent.sleep(0.05)
    return [done, failed, cancelled]


#: Every phase: the description's examples, the coverage of its boundaries (and of the methods
#: it does not list), then generated requests.
schema = schemathesis.openapi.from_dict(description(), config=SchemathesisConfig.from_dict(
    {"phases": {name: {"enabled": True} for name in ("examples", "coverage", "fuzzing")}}))


@schema.parametrize()
@settings(max_examples=100, derandomize=True, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_answer_is_one_the_description_lists(case, places):
    places.steer(case)
    places.confine(case)
    case.call_and_validate(app=places.app, checks=CHECKS)
