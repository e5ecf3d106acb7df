"""gunicorn's development config for mr as a file: ``gunicorn -c config/gunicorn_dev.py
mr.web.wsgi:app`` (what ``mr_start_gunicorn_dev`` runs). The settings live in
mr/web/gunicorn_dev_conf.py, where the installed command finds them; override them below."""
from mr.web.gunicorn_dev_conf import *  # noqa: F401,F403
