"""One mr process, assembled from the settings: its backends, its engine, and its roles.

The roles are the worker (consumes invocations, runs handlers in its executor pool) and the HTTP
front end. A distributed installation runs them in separate processes (gunicorn for the front
end, ``mr worker`` for workers); embedded mode runs both in one process on the in-process
backends, which only that process can see.
"""
from __future__ import annotations

import logging

from mr.data import create_data_store
from mr.engine.engine import Engine
from mr.executor import ExecutorPool
from mr.kv import create_kv
from mr.metrics.kv import TimedKV
from mr.queue import create_queue
from mr.settings import Settings, SettingsError
from mr.worker.worker import Worker

log = logging.getLogger(__name__)

EMBEDDED_BACKENDS = {"kv_backend": "memory", "queue_backend": "memory",
                     "data_store_url": "memory"}


class Service:
    def __init__(self, settings: Settings, *, worker: bool, serve: bool = True,
                 front_end: bool = True):
        """``serve``: follow the workflows and their requests, as front ends and workers do
        (a command that only reads or removes records does not); ``front_end``: this process
        takes requests (not a distributed installation's worker)."""
        self.settings = settings
        self.kv = TimedKV(create_kv(settings))  # timed for mr_kv_operation_duration_seconds
        self.queue = create_queue(settings)
        self.data = create_data_store(settings)
        self.executor = ExecutorPool.from_settings(settings) if worker else None
        self.engine = Engine(settings, self.kv, self.queue, self.data, self.executor,
                             front_end=front_end)
        if serve:
            self.engine.serve()
        self.worker = Worker(self.engine).start() if worker and settings.consume else None

    @classmethod
    def shared(cls, settings: Settings, *, worker: bool) -> "Service":
        """A process of a distributed installation (a worker, or a front end under gunicorn):
        refused on the embedded backends, which no other process can see — a worker on a
        private data store would answer every request with data nobody else can read."""
        embedded = [variable for variable, value in (
            ("MR_KV_BACKEND", settings.kv_backend), ("MR_QUEUE_BACKEND", settings.queue_backend),
            ("MR_DATA_STORE_URL", settings.data_store_url)) if value == "memory"]
        if embedded:
            role = "a worker" if worker else "a front end under gunicorn"
            raise SettingsError(
                f"{', '.join(embedded)} name the embedded (in-process) backends, which no other "
                f"process can share: {role} needs MR_KV_BACKEND=etcd, MR_QUEUE_BACKEND=nsq and a "
                f"MR_DATA_STORE_URL that every worker and the front end see")
        if not settings.message_secret:
            log.warning("MR_MESSAGE_SECRET is empty: invocation messages are neither signed nor "
                        "checked, so whoever can reach nsqd can make the workers run anything "
                        "(docs/deploy.rst, signed messages)")
        return cls(settings, worker=worker, front_end=not worker)

    @classmethod
    def embedded(cls, settings: Settings) -> "Service":
        """Front end, worker and backends in this one process (the executor uses every core)."""
        return cls(settings.with_overrides(**EMBEDDED_BACKENDS), worker=True)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.engine.stop()
        self.queue.close()
        if self.executor is not None:
            self.executor.close()
        self.kv.close()
        self.data.close()
