"""``mr submit`` and ``mr request wait|cancel``: jobs run from the command line, over mr's HTTP
API (``mr.client``), against the front end ``MR_URL`` names (``mr cluster start`` writes it).

``submit`` always asks for a non-blocking request and then follows it, so that the request id is
known from the start: whatever interrupts the wait (Ctrl-C, a lost connection, ``--timeout``),
the message says how to follow the request again, and no work is lost from sight.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mr.cli.errors import UserError
from mr.cli.front_end import (EXIT_FAILED, add_connection_options, client_errors, client_for,
                              follow)


#: ``--input`` and ``--output``: what the URL is for, and the formats it may be in.
DATA_OPTIONS = {
    "input": ("files to read by reference instead of arguments (docs/data.rst)",
              "text (the default), jsonl or mr"),
    "output": ("write the result as files under URL (the file writer)",
               "jsonl (the default), tsv or mr"),
}


def register(subparsers) -> None:
    submit = subparsers.add_parser(
        "submit", help="submit a request to a job and print its result",
        description="Submit a request to a job; by default wait for it, print its result "
                    "pairs as JSON lines (or the URLs of the output parts) and exit 0, or print "
                    "its error on stderr and exit 1.")
    submit.add_argument("workflow", metavar="WORKFLOW")
    submit.add_argument("job", metavar="JOB")
    submit.add_argument("--arg", dest="pairs", action="append", default=[], type=_argument,
                        metavar="NAME=VALUE",
                        help="one argument; VALUE is read as JSON when it is JSON (42, true, "
                             "[1, 2], {\"a\": 1}, \"quoted\"), else taken as a string; "
                             "repeatable, and overrides --args")
    submit.add_argument("--args", type=Path, metavar="FILE.json",
                        help="the arguments: a JSON object in a file ('-': stdin)")
    for option, (url_help, formats) in DATA_OPTIONS.items():
        submit.add_argument(f"--{option}", metavar="URL", help=url_help)
        submit.add_argument(f"--{option}-format", metavar="FORMAT", help=formats)
    submit.add_argument("--deadline-s", type=float, metavar="SECONDS",
                        help="how long the request may run (default: the job's)")
    submit.add_argument("--no-wait", action="store_true",
                        help="print the request id and its status URL, and return at once")
    add_following_options(submit)
    submit.set_defaults(run=run_submit)


def add_following_options(parser) -> None:
    parser.add_argument("--progress", action="store_true",
                        help="show the request's state and elapsed time on stderr while waiting")
    add_connection_options(parser)


def add_request_verbs(verbs) -> None:
    """``wait`` and ``cancel``, beside ``mr request get|list|cleanup``."""
    wait = verbs.add_parser("wait", help="wait for a request and print its result")
    _add_request_positionals(wait)
    wait.add_argument("--timeout", type=float, metavar="SECONDS",
                      help="give up waiting after this long (exit status 124); the request "
                           "keeps running")
    add_following_options(wait)
    wait.set_defaults(run=run_wait)
    cancel = verbs.add_parser("cancel", help="cancel a running request")
    _add_request_positionals(cancel)
    add_connection_options(cancel)
    cancel.set_defaults(run=run_cancel)


def _add_request_positionals(parser) -> None:
    parser.add_argument("workflow", metavar="WORKFLOW")
    parser.add_argument("request_id", metavar="REQUEST_ID")


def _argument(text: str) -> tuple[str, Any]:
    """``NAME=VALUE``: VALUE as JSON when it is JSON (NaN and Infinity, which are not, stay
    strings), else as the string it is."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value, parse_constant=_not_json)
    except ValueError:
        return name, value


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _arguments(arguments) -> dict[str, Any] | None:
    """The request's arguments: the file's, then each --arg; None when neither is given."""
    if arguments.args is None and not arguments.pairs:
        return None
    values = _read_arguments_file(arguments.args) if arguments.args else {}
    values.update(arguments.pairs)
    return values


def _read_arguments_file(path: Path) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        values = json.loads(text)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise UserError(f"{path} is not JSON: {error}") from None
    if not isinstance(values, dict):
        raise UserError(f"{path} must hold a JSON object of arguments, not "
                        f"{type(values).__name__}")
    return values


def _data_spec(url: str | None, data_format: str | None, option: str) -> dict | None:
    if url is None:
        if data_format is not None:
            raise UserError(f"--{option}-format needs --{option}")
        return None
    return {"url": url, **({"format": data_format} if data_format else {})}


def run_submit(arguments) -> int:
    client = client_for(arguments)
    with client_errors():
        request_id = client.submit(
            arguments.workflow, arguments.job, _arguments(arguments),
            input=_data_spec(arguments.input, arguments.input_format, "input"),
            output=_data_spec(arguments.output, arguments.output_format, "output"),
            deadline_s=arguments.deadline_s, wait=False)
    if arguments.no_wait:
        print(request_id)
        print(client.request_url(arguments.workflow, request_id))
        return 0
    return follow(client, arguments.workflow, request_id, progress=arguments.progress)


def run_wait(arguments) -> int:
    return follow(client_for(arguments), arguments.workflow, arguments.request_id,
                  timeout_s=arguments.timeout, progress=arguments.progress)


def run_cancel(arguments) -> int:
    with client_errors():
        status = client_for(arguments).cancel(arguments.workflow, arguments.request_id)
    if status["state"] == "cancelled":
        print(f"request {arguments.request_id} cancelled")
        return 0
    print(f"mr: request {arguments.request_id} had finished ({status['state']}) before it could "
          f"be cancelled", file=sys.stderr)
    return EXIT_FAILED
