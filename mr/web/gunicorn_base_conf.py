"""What every gunicorn config of mr shares. gunicorn reads a config module's top-level names;
the dev and prod modules star-import these and add their own."""
import math

from mr.metrics import multiprocess
from mr.settings import Settings
from mr.web import gunicorn_errors

mr_settings = Settings.load()

worker_class = "gevent"
# The app must be imported in each worker, after the gevent worker patched it (mr/web/wsgi.py).
preload_app = False
# A gevent worker's heartbeat runs beside its requests, so long blocking waits never trip this:
# it only restarts a worker whose event loop is stuck.
timeout = 30
# On restart or reload, blocking requests in flight get their full wait, plus time to answer.
graceful_timeout = math.ceil(mr_settings.request_wait_timeout_s) + 10
# Each worker serves this many connections at once (greenlets), blocking waits included.
worker_connections = 1000
errorlog = "-"
# gunicorn 25+ opens a control socket at one path per user ($HOME/.gunicorn/gunicorn.ctl), which
# every gunicorn of that user would share; mr does not use it.
control_socket_disable = True
# What gunicorn answers itself (a request line over limit_request_line, 4094 bytes; headers over
# limit_request_fields or limit_request_field_size) is a JSON error too.
gunicorn_errors.install()


def on_starting(server):
    """In the master, before any worker: the directory where the workers keep their metrics
    (MR_METRICS_DIR), so that ``/metrics`` sums them all (mr.metrics.multiprocess)."""
    server.log.info("front end metrics in %s", multiprocess.prepare(mr_settings.metrics_dir))


def child_exit(server, worker):
    multiprocess.forget_process(worker.pid)


def on_exit(server):
    multiprocess.remove_temporary()
