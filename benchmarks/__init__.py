"""Benchmark programs of mr (see docs/benchmarks.rst); ``python -m benchmarks`` runs them all.

Every benchmark process is a gevent process, as every mr process is: the standard library is
patched before anything else imports it, so that the HTTP clients, the in-process engines and
the servers' clients all cooperate in one event loop.
"""
from gevent import monkey

monkey.patch_all()
