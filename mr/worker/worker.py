"""A worker process's loop: consume invocation messages, and take its turn as the sweeper.

A worker consumes, for every workflow it serves (including those created while it runs) and
every capability it offers, the map and reduce topics on the shared channel, so each message
goes to one worker. Handler code runs in the engine's executor pool, never here. Every worker
runs the sweeper loop, but only the one holding the sweeper lease sweeps (re-drives lost work,
fails requests past their deadline, removes finished requests). With MR_WORKER_METRICS_PORT, it
serves its metrics there (docs/operations.rst).
"""
from __future__ import annotations

import logging

import gevent
from gevent.pywsgi import WSGIServer

from mr.engine.engine import Engine
from mr.metrics import exposition, sampled
from mr.models.names import normalize_capability
from mr.queue.base import Consumer

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.settings = engine.settings
        self._consumers: dict[str, list[Consumer]] = {}  # by workflow
        self._capabilities = sorted({normalize_capability(capability)
                                     for capability in self.settings.system_capabilities})
        self._in_flight = self.settings.nsq_max_in_flight or self.engine.concurrency
        #: Where it serves its metrics (MR_WORKER_METRICS_PORT); None when it does not.
        self.metrics_server: WSGIServer | None = None

    def start(self) -> "Worker":
        """Consume the topics of every served workflow, and of those served later."""
        if self.settings.worker_metrics_port >= 0:
            self.metrics_server = exposition.serve(self.settings.http_host,
                                                    self.settings.worker_metrics_port)
        sampled.track_worker(self)
        served = self.engine.served
        served.on_added.append(self._consume)
        served.on_removed.append(self._stop_consuming)
        for workflow in served.names:
            self._consume(workflow)
        self.engine.sweeper.start()
        log.info("worker consuming the topics of %d workflows, %d messages in flight each",
                 len(self._consumers), self._in_flight)
        return self

    def _consume(self, workflow: str) -> None:
        """Subscribe to the workflow's topics, one round trip each: the worker may be stopped,
        or the workflow deleted, meanwhile, and a consumer made after that is stopped at once
        rather than left taking messages for a worker that is gone."""
        if workflow in self._consumers:
            return
        consumers: list[Consumer] = []
        self._consumers[workflow] = consumers
        try:
            for topic in self._topics_of(workflow):
                consumer = self.engine.queue.consume(topic, self.settings.channel,
                                                     self.engine.handle,
                                                     max_in_flight=self._in_flight)
                if self._consumers.get(workflow) is not consumers:
                    consumer.stop(timeout=0)
                    return
                consumers.append(consumer)
        except BaseException:  # never left half subscribed: what was made is stopped
            if self._consumers.get(workflow) is consumers:
                self._stop_consuming(workflow)
            raise

    def _topics_of(self, workflow: str) -> list[str]:
        return [topic for capability in self._capabilities
                for topic in self.engine.topics(workflow, capability)]

    def topics(self) -> list[str]:
        """The topics this worker consumes now."""
        return [topic for workflow in list(self._consumers) for topic in self._topics_of(workflow)]

    def _stop_consuming(self, workflow: str, timeout: float | None = 10.0) -> None:
        """A deleted workflow's messages are no longer taken; those running finish, in the
        background (the workflow watch that calls this goes on at once)."""
        for consumer in self._consumers.pop(workflow, []):
            gevent.spawn(consumer.stop, timeout=timeout)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop taking messages and wait up to ``timeout`` for running invocations: all
        consumers at once, so a worker whose servers are gone does not wait once per topic."""
        served = self.engine.served
        for listeners, listener in ((served.on_added, self._consume),
                                    (served.on_removed, self._stop_consuming)):
            if listener in listeners:
                listeners.remove(listener)
        # Forgotten first: a subscription under way sees it and stops what it makes.
        stopping = [consumer for consumers in self._consumers.values() for consumer in consumers]
        self._consumers.clear()
        gevent.joinall([gevent.spawn(consumer.stop, timeout=timeout) for consumer in stopping])
        self.engine.sweeper.stop()
        sampled.forget_worker(self)
        if self.metrics_server is not None:
            self.metrics_server.stop()
