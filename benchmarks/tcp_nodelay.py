"""Why P1 embedded takes 40 ms: the same app under gevent's WSGIServer as ``mr run`` serves it,
with and without TCP_NODELAY on the accepted sockets, each in a process of its own.

gevent's pywsgi sends a response's headers and its body in two writes; with Nagle's algorithm
on, the second waits for the client to acknowledge the first, and a client on a keep-alive
connection delays that acknowledgement (40 ms on Linux).

Usage: ``python -m benchmarks.tcp_nodelay``.
"""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from pathlib import Path

from benchmarks.common import DEFINITION, WORKFLOW, HttpClient, percentile, timed_calls
from benchmarks.http_latency import CONCURRENT_CLIENTS, TRIVIAL_ARGUMENTS
from mr import devservers

REQUESTS = 200
TIME_LIMIT_S = 30.0


def serve(port: int, no_delay: bool) -> None:
    """``mr run``'s server (Service.embedded, the Flask app, gevent's WSGIServer), optionally
    with TCP_NODELAY set on every accepted connection."""
    from gevent.pywsgi import WSGIHandler, WSGIServer

    from mr.handlers.load import load_workflow, read_definition
    from mr.service import Service
    from mr.settings import Settings
    from mr.web.app import create_app

    class NoDelayHandler(WSGIHandler):
        def __init__(self, sock, *args, **kwargs):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().__init__(sock, *args, **kwargs)

    service = Service.embedded(Settings.load({}).with_overrides(workflow_names=(WORKFLOW,)))
    load_workflow(service.engine.store, read_definition(DEFINITION))
    WSGIServer((devservers.LOOPBACK, port), create_app(service.engine), log=None,
               handler_class=NoDelayHandler if no_delay else WSGIHandler).serve_forever()


def measure(no_delay: bool) -> str:
    port = devservers.free_port()
    url = f"http://{devservers.LOOPBACK}:{port}"
    argv = [sys.executable, "-m", "benchmarks.tcp_nodelay", "--serve", str(port)]
    with tempfile.TemporaryDirectory(prefix="mr-benchmark-nodelay-") as directory:
        server = devservers.ServerProcess(
            "server", argv + (["--no-delay"] if no_delay else []), Path(directory),
            {"http": url}, f"{url}/health", tie_to_parent=True,
            env={"PYTHONPATH": str(DEFINITION.parent.parent)}).start()
        try:
            with HttpClient(url, connections=CONCURRENT_CLIENTS) as client:
                health = timed_calls(lambda: client.get("/health"), REQUESTS, 1, TIME_LIMIT_S)
                trivial = [timed_calls(lambda: client.post_job("trivial", TRIVIAL_ARGUMENTS),
                                       REQUESTS, clients, TIME_LIMIT_S)
                           for clients in (1, CONCURRENT_CLIENTS)]
        finally:
            server.stop()
    return (f"TCP_NODELAY {'on ' if no_delay else 'off'}: p50 of {REQUESTS} requests: "
            f"GET /health {_p50_ms(health)}, trivial job {_p50_ms(trivial[0])}, "
            f"trivial job from {CONCURRENT_CLIENTS} clients {_p50_ms(trivial[1])}")


def _p50_ms(latencies: list[float]) -> str:
    return f"{percentile(latencies, 50) * 1000:.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tcp_nodelay",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--no-delay", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.serve:
        serve(arguments.serve, arguments.no_delay)
        return 0
    for no_delay in (False, True):
        print(measure(no_delay))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
