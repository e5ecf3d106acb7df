"""A worker process's loop: consume invocation messages, remove finished requests when due.

A worker consumes, for every workflow it serves and every capability it offers, the map and
reduce topics on the shared channel, so each message goes to one worker. Handler code runs in
the engine's executor pool, never here.
"""
from __future__ import annotations

import logging

import gevent

from mr.engine.engine import Engine
from mr.kv.base import KVError
from mr.models.names import normalize_capability
from mr.queue.base import Consumer

log = logging.getLogger(__name__)

CLEANUP_INTERVAL_S = 1.0


class Worker:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.settings = engine.settings
        self._consumers: list[Consumer] = []
        self._cleaner: gevent.Greenlet | None = None

    def start(self) -> "Worker":
        capabilities = sorted({normalize_capability(c) for c in self.settings.system_capabilities})
        for workflow in self.settings.workflow_names:
            for capability in capabilities:
                for topic in self.engine.topics(workflow, capability):
                    self._consumers.append(self.engine.queue.consume(
                        topic, self.settings.channel, self.engine.handle,
                        max_in_flight=self.settings.nsq_max_in_flight))
        if self.settings.do_cleanup_requests:
            self._cleaner = gevent.spawn(self._clean_forever)
        log.info("worker consuming %d topics", len(self._consumers))
        return self

    def _clean_forever(self) -> None:
        while True:
            try:
                while self.engine.remove_due() > 0:
                    gevent.sleep(0)
            except KVError as error:
                log.warning("removing finished requests failed, will retry: %s", error)
            gevent.sleep(CLEANUP_INTERVAL_S)

    def stop(self, timeout: float | None = 10.0) -> None:
        for consumer in self._consumers:
            consumer.stop(timeout=timeout)
        self._consumers.clear()
        if self._cleaner is not None:
            self._cleaner.kill()
