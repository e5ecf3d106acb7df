"""The benchmark jobs run on mr's peers, Celery and Dask, and their timing.

This package runs in the peers' venv (``scripts/benchmark --peers`` makes it), imported as the
top-level package ``peer_jobs`` with ``benchmarks/peers`` on ``PYTHONPATH``: the ``benchmarks``
package itself needs mr's venv (it patches the standard library with gevent, which would change
how Celery and Dask run). So nothing here imports mr or the benchmarks package; mr's side
(``benchmarks.peers.compare``) passes the workload in and reads the timings back as JSON.
"""
