"""The WSGI app gunicorn serves: ``gunicorn -c python:mr.web.gunicorn_prod_conf mr.web.wsgi:app``.

The engine is built when this module is imported, and under gunicorn that happens in each worker,
after the fork and after the gevent worker has patched the standard library (``preload_app`` is
off in our configs), so each worker owns its KV connections, watch greenlets and queue producer.
gunicorn's ``post_fork`` hook would be too early: it runs before the gevent worker patches, so
the engine's sockets and greenlets would belong to an unpatched process. Importing in the
master (``preload_app``, or a worker class without gevent) would share them across forks; the
guard below refuses that.
"""
from __future__ import annotations

from gevent import monkey

from mr.settings import Settings
from mr.web.app import create_server_app

if not monkey.is_module_patched("socket"):
    raise RuntimeError("mr.web.wsgi must be imported by a gunicorn gevent worker (worker_class "
                       "'gevent', preload_app off): the engine needs a gevent-patched process "
                       "of its own")
app = create_server_app(Settings.load())
