"""``/metrics``: the front end's view serves it, and a worker serves it on a port of its own.

Under gunicorn (prometheus_client's multiprocess mode, ``mr.metrics.multiprocess``) each scrape
sums what every worker of the front end wrote to the shared directory, so whichever worker
answers, the numbers are the front end's. Anywhere else (``mr run``, ``mr worker``) it is this
process's own registry, with the scrape-time gauges and the process's CPU and memory.
"""
from __future__ import annotations

import logging
import os

from gevent.pywsgi import WSGIServer
from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from mr.metrics import sampled  # noqa: F401 (registers the scrape-time gauges)
from mr.metrics.multiprocess import DIRECTORY_VARIABLE
from mr.settings import SettingsError

log = logging.getLogger(__name__)


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The metrics in the format the ``Accept`` header asks for (Prometheus text by default,
    or OpenMetrics), and its content type."""
    encode, content_type = choose_encoder(accept or "")
    return encode(_registry()), content_type


def _registry() -> CollectorRegistry:
    if DIRECTORY_VARIABLE not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


def serve(host: str, port: int) -> WSGIServer:
    """Serve ``/metrics`` on ``host:port`` (0: a free port, as logged) from this process."""
    server = WSGIServer((host, port), make_wsgi_app(_registry()), log=None)
    try:
        server.start()
    except OSError as error:
        raise SettingsError(f"MR_WORKER_METRICS_PORT: cannot serve metrics on {host}:{port}: "
                            f"{os.strerror(error.errno) if error.errno else error}") from None
    log.info("serving metrics at http://%s:%d/metrics", host, server.server_port)
    return server
