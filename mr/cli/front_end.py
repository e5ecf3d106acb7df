"""What the commands over mr's HTTP API share (``mr submit``, ``mr request wait|cancel``): the
front end they talk to, its errors as one line, and a followed request's outcome — its result
on stdout, its failure on stderr — as an exit status.

Exit statuses: 0 done, 1 failed or cancelled, 2 a user error (a bad argument, an unknown job,
no front end at the URL), 124 ``--timeout`` passed first (as ``timeout(1)``), 130 interrupted.
A request accepted before anything went wrong keeps running, and every message about it names
the command that follows it again.
"""
from __future__ import annotations

import contextlib
import json
import signal
import sys
from typing import Any, Iterator

import gevent

from mr.cli.errors import UserError
from mr.cli.progress import ProgressLine
from mr.client import ApiError, Cancelled, Client, JobFailed, Unreachable
from mr.settings import Settings

EXIT_FAILED = 1
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130


def add_connection_options(parser) -> None:
    parser.add_argument("--url", help="the front end (default: MR_URL, else "
                                      "http://127.0.0.1:MR_HTTP_PORT, where mr run listens)")
    parser.add_argument("--token", help="bearer token to send (default: MR_TOKEN)")


def front_end_url(settings: Settings) -> str:
    """``MR_URL``, else where ``mr run`` listens by default."""
    return settings.url or f"http://127.0.0.1:{settings.http_port}"


def client_for(arguments) -> Client:
    settings = Settings.load()
    return Client(arguments.url or front_end_url(settings),
                  arguments.token or settings.token or None)


@contextlib.contextmanager
def client_errors(unreachable: str = "") -> Iterator[None]:
    """The front end's refusals and its absence as one-line user errors; ``unreachable`` is
    appended to the latter (what became of a request accepted before the connection failed)."""
    try:
        yield
    except (JobFailed, Cancelled):
        raise
    except ApiError as error:
        raise UserError(str(error)) from None
    except Unreachable as error:
        raise UserError(f"{error}{unreachable}") from None


def follow(client: Client, workflow: str, request_id: str, *, timeout_s: float | None = None,
           progress: bool = False) -> int:
    """Wait for the request, print its outcome and return the exit status."""
    line = ProgressLine(sys.stderr) if progress else None
    again = f"follow it with: mr request wait {workflow} {request_id}"
    try:  # the progress line ends before any message
        with interruptible(), line or contextlib.nullcontext(), \
                client_errors(f"; request {request_id} keeps running: {again}"):
            status = client.wait(workflow, request_id, timeout_s,
                                 on_status=line.show if line else None)
    except JobFailed as failure:
        print_failure(failure.details)
        return EXIT_FAILED
    except Cancelled:
        print(f"mr: request {request_id} was cancelled", file=sys.stderr)
        return EXIT_FAILED
    except TimeoutError as timeout:
        print(f"mr: {timeout}; it keeps running: {again}", file=sys.stderr)
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        print(f"mr: stopped waiting; request {request_id} keeps running: {again}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print_result(status["result"])
    return 0


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C (SIGINT) as a KeyboardInterrupt in this greenlet, which gevent's hub would
    otherwise also report on stderr with a timestamp."""
    handler = gevent.signal_handler(signal.SIGINT, gevent.getcurrent().throw, KeyboardInterrupt)
    try:
        yield
    finally:
        handler.cancel()


def print_result(result: dict[str, Any]) -> None:
    """The result's pairs as JSON lines (as ``mr local`` prints them), or the URLs of the parts
    the file writer committed."""
    if "pairs" in result:
        for pair in result["pairs"]:
            print(json.dumps(pair))
    else:
        for part in result["output"]["parts"]:
            print(part)


def print_failure(error: dict[str, Any]) -> None:
    """What failed, where, its traceback and what the handler printed, on stderr."""
    lines = [f"mr: request {error.get('request_id')} failed: {error.get('type')}: "
             f"{error.get('message')}"]
    where = [f"handler {error['handler']}"] if error.get("handler") else []
    where += [f"invocation {error['failed_invocation_id']}"] if error.get(
        "failed_invocation_id") else []
    lines.append(f"kind: {error.get('kind')}" + (f" ({', '.join(where)})" if where else ""))
    if error.get("traceback"):
        lines.append(error["traceback"].rstrip("\n"))
    for stream in ("stdout", "stderr"):
        if error.get(stream):
            lines += [f"{stream} of the handler:", error[stream].rstrip("\n")]
    print("\n".join(lines), file=sys.stderr)
