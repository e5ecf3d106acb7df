"""gunicorn in production: behind nginx (deploy/nginx/mr.conf) on a unix socket.

Override anything on the command line or in ``GUNICORN_CMD_ARGS`` (e.g. ``--workers 8``).
"""
import os

from mr.web.gunicorn_base_conf import *  # noqa: F401,F403

# deploy/nginx/mr.conf proxies to this path; /run/mr must exist and be writable by gunicorn's
# user (systemd: RuntimeDirectory=mr).
bind = "unix:/run/mr/gunicorn.sock"
workers = 2 * (os.cpu_count() or 1) + 1
loglevel = "info"
accesslog = None  # nginx keeps the access log
