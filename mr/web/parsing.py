"""The input of a job POST: the ``blocking`` flag, and the body's ``arguments`` object (or
``input`` naming files), optional ``output`` (a result writer), ``deadline_s`` and ``notify``; or
a body that is the input itself (an upload), with ``output`` and ``deadline_s`` as query
parameters."""
from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

from flask import Request
from werkzeug.datastructures import MultiDict

from mr.models.data_specs import check_input, check_output
from mr.notify.channels import check_notify
from mr.web.errors import ApiError

BODY_FIELDS = ("arguments", "input", "output", "deadline_s", "notify")
#: How deep arrays and objects may nest in "arguments": deeper values cost every process that
#: encodes or decodes them stack and time, and no job needs them.
MAX_ARGUMENT_DEPTH = 64
#: Content types of a body that is the request's input, and the input format each is read in.
UPLOAD_FORMATS = {"text/plain": "text", "application/x-ndjson": "jsonl",
                  "application/jsonl": "jsonl"}
JSON_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", int: "a number",
                   float: "a number", bool: "a boolean", type(None): "null"}


def parse_blocking(args: MultiDict) -> bool:
    """``true`` (the default) or ``false``; JobX read any other value as false, we refuse it."""
    value = args.get("blocking", "true")
    if value.lower() not in ("true", "false"):
        raise ApiError(400, "InvalidParameter",
                       f"query parameter 'blocking' must be true or false, got {value!r}")
    return value.lower() == "true"


class JobBody(NamedTuple):
    arguments: dict[str, Any]
    #: Seconds the request may run before it fails; None: the job's or the cluster's default.
    deadline_s: float | None
    #: The files to read instead of arguments, and the result writer; None: the job's.
    input: dict | None = None
    output: dict | None = None
    #: Where notifications go (mr.notify.channels); None: the job's.
    notify: list | None = None


def upload_format(http_request: Request) -> str | None:
    """The input format of a body that is the request's input; None for a JSON body."""
    return UPLOAD_FORMATS.get(http_request.mimetype)


def parse_upload_options(args: MultiDict) -> JobBody:
    """An upload's ``output`` (the JSON of a result writer) and ``deadline_s``, which a JSON
    body would carry, from the query string."""
    _refuse_unknown(args, {"blocking", "output", "deadline_s"},
                    "an upload takes 'blocking', 'output' and 'deadline_s'")
    output = args.get("output")
    if output is not None:
        try:
            output = json.loads(output)
        except ValueError as error:
            raise ApiError(400, "InvalidParameter", f"query parameter 'output' must be the JSON "
                                                    f"of a result writer: {error}") from None
    deadline = args.get("deadline_s")
    if deadline is not None:
        try:
            deadline = float(deadline)
        except ValueError:
            raise ApiError(400, "InvalidParameter", f"query parameter 'deadline_s' must be a "
                                                    f"number of seconds, got {deadline!r}") from None
    return JobBody({}, _deadline(deadline), None, _spec(check_output, output))


def parse_body(http_request: Request) -> JobBody:
    """A body ``{"arguments": {name: value, ...}, "deadline_s": seconds}``; of the query
    parameters, only ``blocking`` goes with it (an upload's ``output`` and ``deadline_s`` are
    body fields here, and a value given in two places would have to lose silently)."""
    _refuse_unknown(http_request.args, {"blocking"},
                    "with a JSON body only 'blocking' is one (the others are body fields)")
    if not http_request.is_json:
        raise ApiError(415, "UnsupportedMediaType",
                       f"the body must be JSON sent as Content-Type: application/json, or an "
                       f"input to upload as {' or '.join(UPLOAD_FORMATS)}; got "
                       f"{http_request.mimetype or 'no Content-Type'}")
    # Reading the body enforces MAX_CONTENT_LENGTH (413).
    body = _load_json(http_request.get_data(cache=False))
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidBody", f'the body must be a JSON object '
                                           f'{{"arguments": {{...}}}}, got {_json_type(body)}')
    unknown = sorted(set(body) - set(BODY_FIELDS))
    if unknown:
        raise ApiError(400, "InvalidBody", f"unknown body field(s) "
                                           f"{', '.join(map(repr, unknown))}; the body has only "
                                           f"{', '.join(map(repr, BODY_FIELDS))}")
    if "arguments" not in body and "input" not in body:
        raise ApiError(400, "InvalidBody", 'the body has no "arguments" (send {"arguments": {}} '
                                           'for none) and no "input"')
    arguments = body.get("arguments", {})
    if not isinstance(arguments, dict):
        raise ApiError(400, "InvalidBody", f'"arguments" must be a JSON object of name -> value, '
                                           f'got {_json_type(arguments)}')
    if nesting_depth(arguments) > MAX_ARGUMENT_DEPTH:
        raise ApiError(400, "InvalidBody", f'"arguments" are nested more than '
                                           f'{MAX_ARGUMENT_DEPTH} levels deep')
    return JobBody(arguments, _deadline(body.get("deadline_s")),
                   _spec(check_input, body.get("input")), _spec(check_output, body.get("output")),
                   _spec(check_notify, body.get("notify")))


def _refuse_unknown(args: MultiDict, known: set[str], explanation: str) -> None:
    unknown = sorted(set(args) - known)
    if unknown:
        raise ApiError(400, "InvalidParameter", f"unknown query parameter(s) "
                                                f"{', '.join(map(repr, unknown))}; {explanation}")


def _spec(check, value: Any) -> dict | None:
    if value is None:
        return None
    try:
        return check(value)
    except ValueError as error:
        raise ApiError(400, "InvalidBody", str(error)) from None


def _deadline(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0 < value < math.inf):
        raise ApiError(400, "InvalidBody", f'"deadline_s" must be a number of seconds > 0, got '
                                           f'{json.dumps(value)}')
    return float(value)


def _load_json(data: bytes) -> Any:
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except ValueError as error:  # includes undecodable bytes
        raise ApiError(400, "MalformedJSON", f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise ApiError(400, "MalformedJSON", "the body is nested too deeply") from None


def nesting_depth(value: Any) -> int:
    """How deep arrays and objects nest in ``value`` (a scalar: 0), without recursion."""
    deepest, level = 0, [(value, 0)]
    while level:
        item, depth = level.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth + 1)
            level.extend((child, depth + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _refuse_constant(name: str) -> None:
    """NaN and Infinity are not JSON; Python's parser accepts them unless told not to."""
    raise ValueError(f"{name} is not a JSON value")


def _json_type(value: Any) -> str:
    return JSON_TYPE_NAMES[type(value)]
