"""A worker process's loop: consume invocation messages, and take its turn as the sweeper.

A worker consumes, for every workflow it serves and every capability it offers, the map and
reduce topics on the shared channel, so each message goes to one worker. Handler code runs in
the engine's executor pool, never here. Every worker runs the sweeper loop, but only the one
holding the sweeper lease sweeps (re-drives lost work, fails requests past their deadline,
removes finished requests).
"""
from __future__ import annotations

import logging

import gevent

from mr.engine.engine import Engine
from mr.models.names import normalize_capability
from mr.queue.base import Consumer

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.settings = engine.settings
        self._consumers: list[Consumer] = []

    def start(self) -> "Worker":
        capabilities = sorted({normalize_capability(c) for c in self.settings.system_capabilities})
        in_flight = self.settings.nsq_max_in_flight or self.engine.concurrency
        for workflow in self.settings.workflow_names:
            for capability in capabilities:
                for topic in self.engine.topics(workflow, capability):
                    self._consumers.append(self.engine.queue.consume(
                        topic, self.settings.channel, self.engine.handle,
                        max_in_flight=in_flight))
        self.engine.sweeper.start()
        log.info("worker consuming %d topics, %d messages in flight each", len(self._consumers),
                 in_flight)
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop taking messages and wait up to ``timeout`` for running invocations: all
        consumers at once, so a worker whose servers are gone does not wait once per topic."""
        gevent.joinall([gevent.spawn(consumer.stop, timeout=timeout)
                        for consumer in self._consumers])
        self._consumers.clear()
        self.engine.sweeper.stop()
