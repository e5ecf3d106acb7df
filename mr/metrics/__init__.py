"""Prometheus metrics of mr's processes (docs/operations.rst).

- ``instruments``: the metrics, and the few calls the engine, the worker and the executor pool
  make to move them (a counter increment each, never I/O);
- ``kv``: every KV call timed, by a wrapper around the process's KV;
- ``sampled``: what is read only when scraped (executor children, queue depth);
- ``exposition``: ``/metrics`` itself, for the front end's view and a worker's own port;
- ``multiprocess``: the directory where gunicorn's workers keep theirs.

This module imports nothing: gunicorn's master imports ``mr.metrics.multiprocess`` before it
names that directory, and prometheus_client chooses, when first imported, whether a process
keeps its values in memory or in that directory.
"""
