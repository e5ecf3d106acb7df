"""gunicorn's production config for mr as a file: ``gunicorn -c config/gunicorn_prod.py
mr.web.wsgi:app``, behind deploy/nginx/mr.conf. The settings live in
mr/web/gunicorn_prod_conf.py; override them below (e.g. ``workers = 8``)."""
from mr.web.gunicorn_prod_conf import *  # noqa: F401,F403
