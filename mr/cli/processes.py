"""``mr worker`` and ``mr run``: the long-running processes of mr.

``mr worker`` consumes invocations for the workflows in MR_WORKFLOW_NAMES from the configured
servers. ``mr run`` is embedded mode: front end, worker and in-process backends in one process,
with workflows loaded from definition directories at start (its KV starts empty every time).
Both stop gracefully on SIGINT or SIGTERM.
"""
from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import gevent
import gevent.event
from gevent.pywsgi import WSGIHandler, WSGIServer

from mr.auth.tokens import TokenStore, auth_required
from mr.cli.errors import UserError
from mr.handlers.load import WorkflowDefinitionError, load_workflow, read_definition
from mr.service import Service
from mr.settings import Settings


def register(subparsers) -> None:
    worker = subparsers.add_parser(
        "worker", help="run a worker: consume invocations and run handlers (distributed mode)")
    worker.set_defaults(run=run_worker)
    embedded = subparsers.add_parser(
        "run", help="run everything in one process with no servers (embedded mode)")
    embedded.add_argument("definitions", nargs="*", type=Path, metavar="DIR",
                          help="workflow definition directories to load at start")
    embedded.add_argument("--port", type=int, help="HTTP port (default: MR_HTTP_PORT; 0: any)")
    embedded.set_defaults(run=run_embedded)


class NoDelayHandler(WSGIHandler):
    """gevent's WSGI handler writes a response's headers and body separately; without
    TCP_NODELAY the body then waits for the client's delayed ACK (40 ms on Linux)."""

    def __init__(self, sock, address, server, *args, **kwargs):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().__init__(sock, address, server, *args, **kwargs)


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _wait_for_signal() -> None:
    stopping = gevent.event.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signal_number, stopping.set)
    stopping.wait()


def run_worker(arguments) -> int:
    settings = Settings.load()
    _configure_logging(settings)
    service = Service.shared(settings, worker=True)
    print(f"worker serving {', '.join(service.engine.served.names) or 'no workflow yet'} "
          f"(and every workflow created while it runs"
          f"{', of MR_WORKFLOW_NAMES' if settings.workflow_names else ''})", flush=True)
    try:
        _wait_for_signal()
    finally:
        service.stop()
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """The front end's socket, bound before anything starts: a port in use is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=socket.SOMAXCONN)
    except OSError as error:
        hint = ("; another process listens there (another mr run?): choose another port with "
                "--port or MR_HTTP_PORT" if error.errno == errno.EADDRINUSE else "")
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise UserError(f"cannot listen on {host}:{port}: {reason}{hint}") from None


def run_embedded(arguments) -> int:
    from mr.web.app import create_app

    settings = Settings.load()
    _configure_logging(settings)
    try:
        definitions = [read_definition(path) for path in arguments.definitions]
    except WorkflowDefinitionError as error:
        raise UserError(str(error)) from None
    names = [definition.name for definition in definitions]
    if settings.workflow_names:  # a filter: the workflows given here pass it
        settings = settings.with_overrides(
            workflow_names=tuple(dict.fromkeys([*settings.workflow_names, *names])))
    port = settings.http_port if arguments.port is None else arguments.port
    listener = _listen(settings.http_host, port)
    service = Service.embedded(settings.with_overrides(http_port=port))
    try:
        for definition in definitions:
            load_workflow(service.engine.store, definition)
        server = WSGIServer(listener, create_app(service.engine), log=None,
                            handler_class=NoDelayHandler)
        server.start()
        print(f"mr is listening on http://{settings.http_host}:{server.server_port} "
              f"(workflows: {', '.join(names) or 'none yet'})", flush=True)
        if service.engine.settings.kv_backend == "memory" and auth_required(settings):
            # Its tokens live in its own memory, which no mr token command can reach.
            token = TokenStore(service.engine.kv, service.engine.keys).admin_token()
            print(f"admin token (every workflow): {token}", flush=True)
        _wait_for_signal()
        server.stop(timeout=5)
    finally:
        service.stop()
    return 0
