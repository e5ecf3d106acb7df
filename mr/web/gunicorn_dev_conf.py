"""gunicorn for development: one worker on MR_HTTP_HOST:MR_HTTP_PORT, every request logged.

Override anything on the command line (``mr_start_gunicorn_dev -b unix:/tmp/mr.sock``) or in
``GUNICORN_CMD_ARGS``.
"""
from mr.web.gunicorn_base_conf import *  # noqa: F401,F403
from mr.web.gunicorn_base_conf import mr_settings

bind = f"{mr_settings.http_host}:{mr_settings.http_port}"
workers = 1
loglevel = "info"  # each request is in the access log already; debug would log it twice
accesslog = "/dev/stderr"  # gunicorn's "-" means stdout; keep every log line on one stream
