"""The HTTP API over a real engine: status codes, bodies and headers of every answer."""
import http.client
import importlib
import json
import logging
import os
import socket

import gevent
import pytest
from gunicorn import util as gunicorn_util

from mr.devservers import free_port
from mr.models import Request
from mr.queue.nsq import NsqQueue
from mr.web import openapi
from mr.web.app import create_app
from mr.web.gunicorn_errors import write_json_error

JSON = {"Content-Type": "application/json"}


def post_job(client, path="/job/w/j", body=b'{"arguments": {"a": 1}}', query="",
             headers=JSON, **options):
    return client.post(f"{path}{query}", data=body, headers=headers, **options)


def eventually(condition, timeout_s: float = 10) -> bool:
    """Whether ``condition`` holds within ``timeout_s``: for what the front end does right after
    it answered (the removal of a delivered request, in the background)."""
    with gevent.Timeout(timeout_s, False):
        while not condition():
            gevent.sleep(0.01)
        return True
    return False


def assert_error(response, status, error_type, *fragments):
    """A JSON error body, never HTML, naming what went wrong."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["type"] == error_type
    for fragment in fragments:
        assert fragment in error["message"]
    return error


# Client errors: always 4xx with a JSON body

def test_unknown_workflow_is_404(client):
    assert_error(post_job(client, "/job/nope/j"), 404, "NotFound", "'nope'", "not served")


def test_unknown_job_is_404(client):
    assert_error(post_job(client, "/job/w/nojob"), 404, "NotFound", "'nojob'")


@pytest.mark.parametrize("body, fragment", [
    (b'{"arguments": ', "not valid JSON"),
    (b"", "not valid JSON"),
    (b"\xff\xfe\x00", "not valid JSON"),
    (b'{"arguments": {"a": NaN}}', "NaN is not a JSON value"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
], ids=["truncated", "empty", "undecodable", "nan", "deep"])
def test_malformed_json_is_400(client, body, fragment):
    assert_error(post_job(client, body=body), 400, "MalformedJSON", fragment)


@pytest.mark.parametrize("body, fragment", [
    (b'[1, 2]', "must be a JSON object"),
    (b'"arguments"', "got a string"),
    (b'{}', 'has no "arguments"'),
    (b'{"argument": {}}', "unknown body field(s) 'argument'"),
    (b'{"arguments": [["a", 1]]}', '"arguments" must be a JSON object of name -> value, got an '
                                   'array'),
    (b'{"arguments": null}', "got null"),
    (b'{"arguments": {"a": ' + b"[" * 64 + b"]" * 64 + b'}}', "nested more than 64 levels deep"),
    (b'{"input": "books/"}', 'input must be an object such as {"url": ...}, got str'),
    (b'{"input": {"url": ""}}', "input.url must be a non-empty string"),
    (b'{"input": {"url": "b", "format": "csv"}}', "input.format must be one of text, jsonl, mr"),
    (b'{"input": {"url": "b", "fmt": 1, "size": 2}}',
     "input has unknown fields 'fmt', 'size'; allowed: url, format"),
    (b'{"arguments": {}, "output": {"url": "d", "fmt": 1}}', "output has unknown fields 'fmt'"),
    (b'{"arguments": {}, "output": {"http": "ftp://h/x"}}', "output.http: a result URL must be"),
    (b'{"arguments": {}, "output": {"http": "https://h/x", "url": "d"}}',
     "output has unknown fields 'url'; allowed: http"),
    (b'{"arguments": {}, "output": {"url": "d", "format": "csv"}}',
     "output.format must be one of "),
])
def test_invalid_body_is_400(client, body, fragment):
    assert_error(post_job(client, body=body), 400, "InvalidBody", fragment)


@pytest.mark.parametrize("body, fragment", [
    (b'{"input": {"url": "nosuchprotocol://bucket/x"}}', "cannot open 'nosuchprotocol://"),
    (b'{"arguments": {"a": 1}, "input": {"url": "/tmp"}}', "not both"),
])
def test_inputs_that_cannot_be_read_are_400(client, body, fragment):
    assert_error(post_job(client, body=body), 400, "ValidationError", fragment)


def test_arguments_nested_as_deep_as_allowed_are_accepted(client):
    body = b'{"arguments": {"a": ' + b"[" * 63 + b"]" * 63 + b'}}'
    assert post_job(client, body=body, query="?blocking=false").status_code == 202


def test_arguments_msgpack_cannot_hold_are_400(client):
    assert_error(post_job(client, body=b'{"arguments": {"big": 100000000000000000000000}}'), 400,
                 "ValidationError", "the arguments cannot be stored", "does not fit in 64 bits")


@pytest.mark.parametrize("headers, named", [
    ({"Content-Type": "application/xml"}, "got application/xml"),
    ({}, "got no Content-Type"),
])
def test_body_that_is_not_json_is_415(client, headers, named):
    assert_error(post_job(client, headers=headers), 415, "UnsupportedMediaType",
                 "application/json", "text/plain or application/x-ndjson", named)


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/jsonl"])
def test_a_body_of_records_is_the_requests_input(make_engine, content_type):
    engine = make_engine(with_worker=True)
    client = create_app(engine).test_client()
    # buffered: the answer is sent whole and closed, as a server does, and then released
    response = post_job(client, body=b'["a", 1]\n["b", 2]\n\n["a", 3]\n',
                        headers={"Content-Type": content_type}, buffered=True)
    assert response.status_code == 200, response.get_json()
    assert sorted(response.get_json()["result"]["pairs"]) == [["a", 4], ["b", 2]]
    # the upload went with its request
    assert eventually(lambda: engine.shuffle_store.list_tree("") == [])


@pytest.mark.parametrize("query, error_type, fragment", [
    ("?arguments=1", "InvalidParameter", "unknown query parameter(s) 'arguments'"),
    ("?output={", "InvalidParameter", "'output' must be the JSON of a result writer"),
    ('?output={"url": ""}', "InvalidBody", "output.url must be a non-empty string"),
    ("?deadline_s=soon", "InvalidParameter", "'deadline_s' must be a number of seconds"),
    ("?deadline_s=-1", "InvalidBody", '"deadline_s" must be a number of seconds > 0'),
])
def test_an_uploads_bad_options_are_400_and_store_nothing(engine, query, error_type, fragment):
    client = create_app(engine).test_client()
    response = post_job(client, body=b"a line\n", query=query,
                        headers={"Content-Type": "text/plain"})
    assert_error(response, 400, error_type, fragment)
    assert engine.shuffle_store.list_tree("") == []


def test_body_over_max_request_bytes_is_413(make_engine):
    client = create_app(make_engine(max_request_bytes=1024)).test_client()
    small = b'{"arguments": {"a": "' + b"x" * 900 + b'"}}'
    assert post_job(client, body=small, query="?blocking=false").status_code == 202
    large = b'{"arguments": {"a": "' + b"x" * 1100 + b'"}}'
    assert_error(post_job(client, body=large), 413, "RequestEntityTooLarge",
                 "larger than MR_MAX_REQUEST_BYTES (1024 bytes)", "as an upload")


def test_a_workflow_at_its_running_requests_limit_answers_429_until_one_ends(make_engine):
    engine = make_engine(max_running_requests=2)  # no worker: accepted requests keep running
    client = create_app(engine).test_client()
    accepted = [submit_non_blocking(client) for _ in range(2)]
    assert [response.status_code for response in accepted] == [202, 202]
    refused = post_job(client, query="?blocking=false")
    assert_error(refused, 429, "TooManyRequests", "'w' runs 2 requests",
                 "MR_MAX_RUNNING_REQUESTS")
    assert refused.headers["Retry-After"] == "1"
    engine.cancel("w", accepted[0].get_json()["request_id"])
    with gevent.Timeout(5):
        while (again := post_job(client, query="?blocking=false")).status_code == 429:
            gevent.sleep(0.02)
    assert again.status_code == 202, again.get_json()


@pytest.mark.parametrize("query", ["?deadline_s=5", "?output=%7B%7D", "?blocking=true&x=1"])
def test_a_query_parameter_a_json_body_does_not_take_is_400(client, query):
    assert_error(post_job(client, query=query), 400, "InvalidParameter",
                 "with a JSON body only 'blocking' is one")


def test_options_is_a_json_405_with_allow(client):
    response = client.options("/job/w/j")
    assert_error(response, 405, "MethodNotAllowed")
    assert response.headers["Allow"] == "POST"


def test_wrong_method_is_405_with_allow(client):
    response = client.get("/job/w/j")
    assert_error(response, 405, "MethodNotAllowed")
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("method", ["DELETE", "TRACE", "POST"])
def test_a_method_health_does_not_take_is_405_without_a_token(make_engine, method):
    """/health asks for no token, so neither does its 405."""
    client = create_app(make_engine(auth="on")).test_client()
    response = client.open("/health", method=method)
    assert_error(response, 405, "MethodNotAllowed")
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD"}
    assert_error(client.delete("/job/w/j"), 401, "Unauthorized")  # other routes ask for one


def test_every_operation_gunicorn_answers_for_lists_its_bad_request():
    """A malformed header (a Content-Length that is not a number) is refused by gunicorn on any
    route, the UI's included, with a JSON 400 of type BadRequest: every operation whose
    description lists gunicorn's 414 lists a 400 that admits it as JSON."""
    description = openapi.description()
    responses = description["components"]["responses"]
    checked = 0
    for path, operations in description["paths"].items():
        for method, operation in operations.items():
            answers = operation.get("responses", {}) if isinstance(operation, dict) else {}
            if "414" not in answers:  # not an operation
                continue
            bad_request = responses[answers["400"]["$ref"].rsplit("/", 1)[1]]
            schema = bad_request["content"]["application/json"]["schema"]
            assert "BadRequest" in _error_types(description, schema), (method, path)
            checked += 1
    assert checked > 20


def _error_types(description: dict, schema: dict) -> list[str]:
    """The error types an error schema admits: its own constraint on ``error.type``, else the
    one of the schema it refers to."""
    constraint = schema.get("properties", {}).get("error", {}).get("properties", {}).get("type")
    if constraint and ("enum" in constraint or "const" in constraint):
        return constraint.get("enum", [constraint.get("const")])
    reference = schema.get("$ref")
    if reference is None:
        return []
    return _error_types(description, description["components"]["schemas"][
        reference.rsplit("/", 1)[1]])


@pytest.mark.parametrize("status, reason, error_type", [
    (414, "URI Too Long", "RequestURITooLarge"),
    (431, "Request Header Fields Too Large", "RequestHeaderFieldsTooLarge"),
    (400, "Bad Request", "BadRequest"),
])
def test_what_gunicorn_answers_itself_is_a_json_error(status, reason, error_type):
    """gunicorn refuses a request line or headers over its limits before the app sees them."""
    importlib.import_module("mr.web.gunicorn_base_conf")  # what every gunicorn config runs
    assert gunicorn_util.write_error is write_json_error
    ours, theirs = socket.socketpair()
    with ours, theirs:
        gunicorn_util.write_error(ours, status, reason, "Request Line is too large (5000 > 4094)")
        response = http.client.HTTPResponse(theirs)
        response.begin()
        assert (response.status, response.reason) == (status, reason)
        assert response.getheader("Content-Type") == "application/json"
        assert response.getheader("X-FULFILLED-BY") == f"{socket.gethostname()}/{os.getpid()}"
        assert json.loads(response.read()) == {"error": {
            "type": error_type, "message": "Request Line is too large (5000 > 4094)"}}


def test_unknown_route_is_404(client):
    assert_error(client.get("/jobs"), 404, "NotFound")


@pytest.mark.parametrize("value", ["1", "yes", ""])
def test_blocking_must_be_true_or_false(client, value):
    assert_error(post_job(client, query=f"?blocking={value}"), 400, "InvalidParameter",
                 "'blocking' must be true or false", repr(value))


def test_unknown_request_is_404(client):
    assert_error(client.get(f"/request/w/{'a' * 32}"), 404, "NotFound", "a" * 32)
    assert_error(client.delete(f"/request/w/{'a' * 32}"), 404, "NotFound")


def test_malformed_request_id_is_400(client):
    assert_error(client.get("/request/w/not-an-id"), 400, "ValidationError", "not-an-id")


# Accepted requests

def submit_non_blocking(client, **options):
    response = post_job(client, query="?blocking=false", **options)
    assert response.status_code == 202, response.get_json()
    return response


def test_non_blocking_is_202_with_where_to_follow(client):
    response = submit_non_blocking(client)
    request_id = response.get_json()["request_id"]
    status_url = f"/request/w/{request_id}"
    assert response.get_json() == {"request_id": request_id, "status_url": status_url}
    assert response.headers["Location"] == status_url
    assert response.headers["X-MR-REQUEST-ID"] == request_id

    status = client.get(status_url)
    assert status.status_code == 200
    assert status.headers["X-MR-REQUEST-ID"] == request_id
    described = status.get_json()
    assert described["state"] == "running"
    assert {key: described[key] for key in ("request_id", "workflow", "job", "blocking",
                                            "finished_at")} == {
        "request_id": request_id, "workflow": "w", "job": "j", "blocking": False,
        "finished_at": None}
    assert described["created_at"] > 0
    assert "result" not in described and "error" not in described


def test_delete_cancels(client):
    request_id = submit_non_blocking(client).get_json()["request_id"]
    cancelled = client.delete(f"/request/w/{request_id}")
    assert cancelled.status_code == 200
    assert cancelled.get_json()["state"] == "cancelled"
    again = client.get(f"/request/w/{request_id}").get_json()
    assert again["state"] == "cancelled" and again["finished_at"] >= again["created_at"]


def test_blocking_past_the_deadline_is_504_and_keeps_running(make_engine):
    client = create_app(make_engine(request_wait_timeout_s=0.2)).test_client()
    response = post_job(client)
    error = assert_error(response, 504, "Timeout", "0.2 s", "keeps running")
    request_id = response.headers["X-MR-REQUEST-ID"]
    assert error["request_id"] == request_id
    assert error["status_url"] == f"/request/w/{request_id}"
    assert client.get(error["status_url"]).get_json()["state"] == "running"


def wait_for_request(engine):
    """The one request of workflow ``w``, once the engine has recorded it."""
    with gevent.Timeout(5):
        while not (requests := engine.store.list(Request, "w")):
            gevent.sleep(0.01)
    return requests[0]


def test_blocking_request_cancelled_while_waiting_is_409(engine, client):
    waiting = gevent.spawn(post_job, client)
    request = wait_for_request(engine)
    engine.cancel("w", request.request_id)
    response = waiting.get(timeout=5)
    error = assert_error(response, 409, "Cancelled", request.request_id)
    assert error["request_id"] == request.request_id == response.headers["X-MR-REQUEST-ID"]


def test_blocking_done_is_200_with_the_result_and_releases_it(make_engine):
    client = create_app(make_engine(with_worker=True)).test_client()
    response = post_job(client, body=b'{"arguments": {"a": 1, "b": 2}}', buffered=True)
    assert response.status_code == 200, response.get_json()
    assert sorted(response.get_json()["result"]["pairs"]) == [["a", 1], ["b", 2]]
    request_id = response.headers["X-MR-REQUEST-ID"]
    assert response.headers["X-FULFILLED-BY"] == f"{socket.gethostname()}/{os.getpid()}"
    assert eventually(lambda: client.get(f"/request/w/{request_id}").status_code == 404)
    assert_error(client.get(f"/request/w/{request_id}"), 404, "NotFound")


def test_non_blocking_done_is_fetched_with_its_result(make_engine):
    client = create_app(make_engine(with_worker=True)).test_client()
    status_url = submit_non_blocking(client).get_json()["status_url"]
    with gevent.Timeout(30):
        while (described := client.get(status_url).get_json())["state"] == "running":
            gevent.sleep(0.05)
    assert described["state"] == "done"
    assert described["result"] == {"pairs": [["a", 1]]}
    assert described["finished_at"] >= described["created_at"]


def test_failed_handler_is_422_naming_the_failure(make_engine):
    client = create_app(make_engine(with_worker=True)).test_client()
    response = post_job(client, "/job/w/fails")
    error = assert_error(response, 422, "ValueError", "no good")
    request_id = response.headers["X-MR-REQUEST-ID"]
    assert error["request_id"] == request_id
    assert error["handler"] == "boom"
    assert error["failed_invocation_id"]
    assert "ValueError: no good" in error["traceback"]
    assert error["stdout"] == "about to fail\n"
    assert set(error) == {"type", "message", "kind", "handler", "traceback", "stdout",
                          "stderr", "failed_invocation_id", "request_id"}
    described = client.get(f"/request/w/{request_id}").get_json()
    assert described["state"] == "failed" and described["error"] == error


# The requester's address

@pytest.mark.parametrize("setting, headers, recorded", [
    ("X-Forwarded-For", {}, "127.0.0.1"),
    ("X-Forwarded-For", {"X-Forwarded-For": "203.0.113.7"}, "203.0.113.7"),
    ("X-Forwarded-For", {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}, "203.0.113.7"),
    ("HTTP_X_FORWARDED_FOR", {"X-Forwarded-For": "203.0.113.7"}, "203.0.113.7"),
    ("X-Real-IP", {"X-Real-IP": "198.51.100.2", "X-Forwarded-For": "203.0.113.7"},
     "198.51.100.2"),
], ids=["absent", "present", "list", "jobx-environ-key", "other-header"])
def test_requester_ip_is_recorded_in_context(make_engine, setting, headers, recorded):
    engine = make_engine(remote_addr_header=setting)
    client = create_app(engine).test_client()
    response = submit_non_blocking(client, headers={**JSON, **headers})
    request_id = response.get_json()["request_id"]
    assert engine.get_request("w", request_id).context == {"requester_ip": recorded}
    assert client.get(f"/request/w/{request_id}").get_json()["context"] == {
        "requester_ip": recorded}


# Health, and the answers that are not the client's fault

def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert response.headers["X-FULFILLED-BY"] == f"{socket.gethostname()}/{os.getpid()}"


def test_unreachable_queue_is_503(make_engine):
    engine = make_engine()
    unreachable = NsqQueue([f"127.0.0.1:{free_port()}"], publish_timeout_s=0.5)
    engine.queue = engine.dispatch.queue = unreachable
    try:
        assert_error(post_job(create_app(engine).test_client()), 503, "ServiceUnavailable",
                     "could not be queued")
    finally:
        unreachable.close()


def test_unexpected_error_is_a_logged_500_with_an_incident_id(engine, client, monkeypatch,
                                                                caplog):
    def broken(workflow, request_id):
        raise RuntimeError("a bug")
    monkeypatch.setattr(engine, "get_request", broken)
    with caplog.at_level(logging.ERROR, logger="mr.web.errors"):
        response = client.get(f"/request/w/{'a' * 32}")
    error = assert_error(response, 500, "InternalError", f"GET /request/w/{'a' * 32}",
                         "a bug in mr")
    assert error["incident_id"] in error["message"]
    (record,) = caplog.records
    assert error["incident_id"] in record.getMessage()
    assert "RuntimeError: a bug" in caplog.text


@pytest.mark.parametrize("deadline", ["0", "-1", '"soon"', "true", "null"])
def test_a_deadline_must_be_a_positive_number_of_seconds(client, deadline):
    body = f'{{"arguments": {{"a": 1}}, "deadline_s": {deadline}}}'.encode()
    if deadline == "null":  # the same as none given
        assert post_job(client, body=body, query="?blocking=false").status_code == 202
    else:
        assert_error(post_job(client, body=body), 400, "InvalidBody",
                     '"deadline_s" must be a number of seconds > 0')


def test_a_blocking_request_past_its_deadline_is_answered_failed_at_the_deadline(client):
    """Without a worker nothing finishes: the front end fails the request at its deadline."""
    response = post_job(client, body=b'{"arguments": {"a": 1}, "deadline_s": 0.3}')
    error = assert_error(response, 422, "DeadlineExceeded", "deadline of 0.3 s")
    assert client.get(f"/request/w/{error['request_id']}").get_json()["state"] == "failed"


def test_a_result_that_fails_to_render_is_not_released(make_engine, monkeypatch):
    engine = make_engine(with_worker=True)
    client = create_app(engine).test_client()
    monkeypatch.setattr(engine, "result", lambda request: [["raw", b"\x00 bytes, not JSON"]])
    response = client.post("/job/w/j", data=b'{"arguments": {"a": 1}}',
                           content_type="application/json", buffered=True)
    assert response.status_code == 500
    (kept,) = engine.store.list(Request, "w")  # still there to fetch
    assert kept.state == "done"
    monkeypatch.undo()
    # Removals run in the order the answers went out: once the next request's is done, one of
    # the first would be too.
    assert post_job(client, buffered=True).status_code == 200
    assert eventually(lambda: [request.request_id for request in engine.store.list(
        Request, "w")] == [kept.request_id])


def test_an_upload_whose_request_cannot_be_recorded_leaves_nothing(engine, monkeypatch):
    from mr.kv.base import KVError

    def refuse(entity, guards=()):
        raise KVError("etcd is down")
    monkeypatch.setattr(engine.store, "create", refuse)
    client = create_app(engine).test_client()
    response = post_job(client, body=b"a line\n" * 1000, headers={"Content-Type": "text/plain"})
    assert_error(response, 503, "ServiceUnavailable", "etcd is down")
    assert engine.shuffle_store.list_tree("") == []


def test_an_upload_the_data_store_cannot_take_is_a_503_and_leaves_nothing(engine, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(engine.shuffle_store.fs, "open", disk_full)
    client = create_app(engine).test_client()
    response = post_job(client, body=b"a line\n" * 1000, headers={"Content-Type": "text/plain"})
    assert_error(response, 503, "ServiceUnavailable",
                 "cannot store the uploaded input: [Errno 28] No space left on device")
    assert engine.shuffle_store.list_tree("") == []
