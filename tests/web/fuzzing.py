"""What the fuzzing of the HTTP API needs wherever the front end runs (an embedded app in
tests/web/test_openapi.py, a local cluster in tests/web/fuzz_cluster.py): the description as
schemathesis reads it, the checks every answer must pass, the token each request carries, and
where generated requests may read and write.

The generated requests are steered, not limited: three in four valid path parameters name the
served workflow, its jobs or requests that exist, instead of generated names that could only be
404s, and three in four JSON bodies go without the query parameters of uploads. What they would
read or write outside the run is confined to it: every input URL names a file of the run, every
output directory one under the run's directory, every result POST a receiver on loopback.
Nothing else of a generated request is changed, but for the Authorization header (``Credential``)
and an upload's body sent as the text it is on the wire (``upload_as_sent``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import schemathesis
from gevent.pywsgi import WSGIServer
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NotSet
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.transforms import to_wire_text
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                                negative_data_rejection,
                                                response_headers_conformance,
                                                response_schema_conformance,
                                                status_code_conformance, unsupported_method)

from mr.results.http_post import check_result_url
from mr.web.openapi import description
from tests.web.workflow import WORKFLOW

#: Never a 5xx; a documented status, content type, body and headers; a 405 with ``Allow`` for
#: a method the description does not list; a 4xx for what the description forbids.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance, unsupported_method,
          negative_data_rejection]
JOBS = ("j", "fails")
#: The query parameters of an upload, which a JSON body carries in itself.
UPLOAD_PARAMETERS = ("output", "deadline_s")
#: Uploads are strings of records; schemathesis sends them as it sends text/plain bodies.
UPLOAD_MEDIA_TYPES = ("application/x-ndjson", "application/jsonl")
schemathesis.serializer.alias(list(UPLOAD_MEDIA_TYPES), "text/plain")
#: Every phase: the description's examples, the coverage of its boundaries (and of the methods
#: it does not list), then generated requests.
PHASES = ("examples", "coverage", "fuzzing")
#: What gunicorn refuses before mr reads the request (a request line or headers over its
#: limits), whatever the request's token.
REFUSED_BY_GUNICORN = (414, 431)
#: The answers that refuse invalid data: schemathesis' own list, gunicorn's refusals, and the
#: web UI's way to refuse a browser without a valid token (a 302 to its login page).
REFUSALS = ["302", "400", "401", "403", "404", "405", "406", "409", "414", "415", "422", "428",
            "429", "431", "5xx"]
schema = schemathesis.openapi.from_dict(description(), config=SchemathesisConfig.from_dict({
    "phases": {name: {"enabled": True} for name in PHASES},
    "checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}))

#: ``send(method, path, json_body)`` -> the answer's status and JSON body.
Send = Callable[[str, str, dict | None], tuple[int, dict]]
#: The operations that ask for no token.
OPEN = frozenset(operation["operationId"] for operations in description()["paths"].values()
                 for operation in operations.values()
                 if isinstance(operation, dict) and operation.get("security") == [])


@dataclasses.dataclass(frozen=True)
class Credential:
    """The Authorization header a request is sent with, and what its answer must then be."""
    kind: str
    #: ``Bearer <token>``, or None for no header at all.
    authorization: str | None = None
    #: Whether it is a stored token. One is also sent as the caller's header (which
    #: schemathesis' ignored_auth check removes or spoils to see an accepted request refused
    #: then); any other only as part of the generated request (which that check expects
    #: never accepted).
    valid: bool = False
    #: The operations (their ids) that must not answer a 2xx to this token.
    refused: frozenset[str] = frozenset()

    def apply(self, case) -> dict[str, str]:
        """Put the header on ``case`` (schemathesis then tells again whether the case is valid);
        returns the headers to send ``case`` with."""
        if self is GENERATED:
            return {}
        case.headers.pop("Authorization", None)
        if self.authorization is None:
            return {}
        case.headers["Authorization"] = self.authorization
        return {"Authorization": self.authorization} if self.valid else {}

    def judge(self, case, status: int) -> str | None:
        """What is wrong with answering ``status`` to ``case`` sent with this, if anything."""
        operation = operation_id(case)
        if not self.valid and operation not in OPEN and \
                status not in (401, *REFUSED_BY_GUNICORN):
            return f"{self.kind} token answered {status} instead of 401"
        if operation in self.refused and 200 <= status < 300:
            return f"{self.kind} token let through with {status}"
        return None


#: The header schemathesis generated, never a stored token: ``Bearer <generated>``, or, in a
#: case whose headers it made invalid, none or a malformed one.
GENERATED = Credential("generated")


def operation_id(case) -> str:
    return case.operation.definition.raw["operationId"]


def headers_are_invalid(case) -> bool:
    """Whether schemathesis made ``case`` invalid through its headers: its Authorization
    header, the only one the description has, is missing or malformed."""
    return case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)


def upload_as_sent(case) -> None:
    """An upload's body as the text that goes on the wire. A negative case's body that is not
    a string is sent as its JSON text, a valid upload, which schemathesis knows of text/* types
    only: it would take the upload for invalid data let through."""
    if case.media_type in UPLOAD_MEDIA_TYPES and not isinstance(case.body, (str, bytes, NotSet)):
        case.body = to_wire_text(case.body)


class Places:
    """Where the fuzzed requests may read and write: the run's own files and receiver."""

    def __init__(self, request_ids: list[str], directory: Path, receiver_url: str):
        self.request_ids = request_ids
        self.input_file = directory / "input.txt"
        self.input_file.write_text("one line\nanother line\n")
        self.output_root = directory / "outputs"
        self.receiver_url = receiver_url

    def steer(self, case) -> None:
        """Three in four path parameters name what exists instead of what was generated (unless
        they are what schemathesis made invalid), and three in four JSON bodies go without the
        query parameters only uploads take (which would be a 400 before the body is read),
        chosen by a hash of the generated request, so that a run is reproduced exactly."""
        existing = {"workflow": [WORKFLOW], "job": JOBS, "request_id": self.request_ids}
        invalid_path = case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH)
        for name, value in list({} if invalid_path else (case.path_parameters or {}).items()):
            digest = zlib.crc32(f"{name}={value!r} {_fingerprint(case)}".encode())
            if digest % 4:
                case.path_parameters[name] = existing[name][digest // 4 % len(existing[name])]
        if case.media_type == "application/json" and isinstance(case.query, dict) and \
                zlib.crc32(_fingerprint(case).encode()) % 4:
            for name in UPLOAD_PARAMETERS:
                case.query.pop(name, None)

    def confine(self, case) -> None:
        """The last change before ``case`` is sent. A valid request stays valid, and an invalid
        one invalid, so schemathesis is told what the case is before: its metadata is frozen,
        since it takes the JSON text of an ``output`` query parameter for an invalid value."""
        if case.meta is not None:  # reading it takes in the changes made so far
            case.freeze_metadata()
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


def _fingerprint(case) -> str:
    """The query and body of ``case``, the same in every run that generates it."""
    body = None if isinstance(case.body, NotSet) else case.body  # its repr names an address
    return f"{case.query!r} {body!r}"


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


@contextlib.contextmanager
def result_receiver() -> Iterator[str]:
    """The URL of a server on loopback that accepts every result POSTed to it."""
    receiver = WSGIServer(("127.0.0.1", 0), _accept_result, log=None)
    receiver.start()
    try:
        yield f"http://127.0.0.1:{receiver.server_port}/"
    finally:
        receiver.stop()


def existing_requests(send: Send) -> list[str]:
    """Requests the fuzzed GETs and DELETEs may name: one done, one failed, one cancelled
    (or done, if it finished first)."""
    body = {"arguments": {"a": 1}}
    status, done = send("POST", f"/job/{WORKFLOW}/j?blocking=false", body)
    assert status == 202, done
    status, failed = send("POST", f"/job/{WORKFLOW}/fails", body)
    assert status == 422, failed
    status, cancelled = send("POST", f"/job/{WORKFLOW}/j?blocking=false", body)
    assert status == 202, cancelled
    status, state = send("DELETE", f"/request/{WORKFLOW}/{cancelled['request_id']}", None)
    assert status == 200, state
    with gevent.Timeout(30):
        while send("GET", done["status_url"], None)[1]["state"] != "done":
            gevent.sleep(0.05)
    return [done["request_id"], failed["error"]["request_id"], cancelled["request_id"]]
