"""The queue over real nsqd servers, through gnsq (a gevent-native NSQ client).

gnsq calls a message handler inside the connection's read loop, so a slow handler would stall
heartbeats; every message is therefore taken over asynchronously and handled in a greenlet of a
pool bounded by max-in-flight. Retry limits and backoff are the engine's business, so gnsq's own
(give up after 5 tries; pause the whole connection after a requeue) are switched off.
"""
from __future__ import annotations

import logging
import ssl
import time
from typing import Sequence

import gevent
import gevent.event
import gevent.pool
import gnsq
from gnsq.errors import NSQException
from gnsq.states import RUNNING

from mr.queue.base import Consumer, Message, MessageHandler, Queue, QueueError, run_handler

log = logging.getLogger(__name__)

#: Longest wait between reconnection attempts to an nsqd that went away.
RECONNECT_MAX_INTERVAL_S = 2.0
#: How often consumers ask nsqlookupd which nsqd servers have their topic: how long messages
#: published to an nsqd that consumers do not know yet (gnsq's default: 60 s) may wait.
LOOKUPD_POLL_INTERVAL_S = 5.0
#: An nsqd that has not acknowledged a publish within this is presumed hung: its connection is
#: dropped and the publish tried again on the next nsqd, though the first may yet arrive (at
#: least once).
PUBLISH_ANSWER_TIMEOUT_S = 5.0


class _NsqMessage(Message):
    def __init__(self, message: gnsq.Message):
        self._message = message
        self.id = message.id.decode() if isinstance(message.id, bytes) else message.id
        self.body = message.body
        self.attempts = message.attempts

    def _send(self, action: str, *args) -> None:
        try:
            getattr(self._message, action)(*args)
        except NSQException as error:
            # The connection is gone; nsqd delivers the message again after its timeout.
            log.warning("message %s: %s failed (%s); it will be delivered again",
                        self.id, action, error)

    def finish(self) -> None:
        self._send("finish")

    def requeue(self, delay_s: float = 0.0) -> None:
        self._send("requeue", int(delay_s * 1000), False)

    def touch(self) -> None:
        self._send("touch")

    @property
    def has_responded(self) -> bool:
        return self._message.has_responded()


class _FullReadyConsumer(gnsq.Consumer):
    """gnsq's consumer, without its two ways of shrinking a connection's RDY to 1: a new
    connection keeps RDY 1 until its first message is finished, and a connection idle for a
    while gives its RDY back until the next redistribution (up to 5 s later). mr holds each
    message for the whole invocation, so either would make one long invocation, or a burst of
    children after a pause, wait behind the others one at a time."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, low_ready_idle_timeout=float("inf"), **kwargs)

    def handle_connection_success(self, conn):
        self._connections[conn] = RUNNING
        super().handle_connection_success(conn)


class _Producer(gnsq.Producer):
    """gnsq's producer, which can also drop the connection a publish went out on (it drops a
    connection only once the socket fails, so an nsqd that hangs, or whose host drops off the
    network, would keep its turn among the connections until the socket times out: 60 s), and
    which can connect over TLS."""

    def handle_response(self, conn, response) -> None:
        """gnsq's, but for the OK that ends a TLS upgrade: it arrives while the connection
        is still being identified, before it has a queue of pending publishes."""
        if conn in self._response_queues:
            super().handle_response(conn, response)

    def drop_connection_of(self, answer: gevent.event.AsyncResult) -> None:
        for connection, pending in list(self._response_queues.items()):
            if answer in pending:
                connection.close_stream()  # its listener fails it, and reconnects later


class _NsqConsumer(Consumer):
    def __init__(self, topic, channel, handler, max_in_flight, nsqd_tcp_addresses,
                 lookupd_http_addresses, connection_options):
        self._handler = handler
        self._pool = gevent.pool.Pool(max_in_flight)
        self._consumer = _FullReadyConsumer(
            topic, channel,
            nsqd_tcp_addresses=list(nsqd_tcp_addresses),
            lookupd_http_addresses=list(lookupd_http_addresses),
            lookupd_poll_interval=LOOKUPD_POLL_INTERVAL_S,
            max_in_flight=max_in_flight,
            max_tries=0,
            max_backoff_duration=RECONNECT_MAX_INTERVAL_S,
            backoff_on_requeue=False,
            # nsqd otherwise buffers deliveries to a busy consumer and flushes them every
            # 250 ms: every hop of an invocation tree would wait for that tick.
            output_buffer_size=-1,
            **connection_options,
        )
        self._consumer.on_message.connect(self._take, weak=False)
        self._consumer.start(block=False)

    def _take(self, consumer, message: gnsq.Message) -> None:
        message.enable_async()
        self._pool.spawn(run_handler, self._handler, _NsqMessage(message))

    def stop(self, timeout: float | None = None) -> None:
        self._consumer.close()
        self._pool.join(timeout=timeout)
        self._consumer.join(timeout=timeout)


class NsqQueue(Queue):
    """``tls``: talk to nsqd over TLS (nsqd's ``--tls-*`` options), checking its certificate
    against ``ca_file`` and presenting ``cert_file``/``key_file`` when nsqd asks for one."""

    def __init__(self, nsqd_tcp_addresses: Sequence[str],
                 lookupd_http_addresses: Sequence[str] = (), publish_timeout_s: float = 10.0,
                 *, tls: bool = False, ca_file: str = "", cert_file: str = "",
                 key_file: str = ""):
        if not nsqd_tcp_addresses:
            raise ValueError("at least one nsqd address is needed")
        self._nsqd = list(nsqd_tcp_addresses)
        self._lookupd = list(lookupd_http_addresses)
        self._publish_timeout_s = publish_timeout_s
        #: gnsq's connection options: TLS upgraded to right after the IDENTIFY exchange.
        self._connection_options = {"tls_v1": True, "tls_options": {
            "cert_reqs": ssl.CERT_REQUIRED if ca_file else ssl.CERT_NONE,
            "ca_certs": ca_file or None, "certfile": cert_file or None,
            "keyfile": key_file or None}} if tls else {}
        self._producer: _Producer | None = None
        self._consumers: list[_NsqConsumer] = []

    def _started_producer(self) -> _Producer:
        if self._producer is None:
            self._producer = _Producer(self._nsqd, max_backoff_duration=RECONNECT_MAX_INTERVAL_S,
                                       **self._connection_options)
            self._producer.start()
        return self._producer

    def _send(self, method: str, topic: str, payload, **options) -> None:
        """Publish, retrying until the publish timeout passes.

        gnsq's producer takes its connections in turn, skips closed ones and reconnects them in
        the background; a publish in flight on a connection that closes fails. So a publish
        that failed, or that its nsqd did not acknowledge in time (that connection is then
        dropped), is tried again on the next nsqd that is connected, or on the same one once it
        is back.
        """
        producer = self._started_producer()
        deadline = time.monotonic() + self._publish_timeout_s
        while True:
            remaining = max(deadline - time.monotonic(), 0.01)
            try:
                answer = getattr(producer, method)(topic, payload, timeout=remaining,
                                                   raise_error=False, **options)
                answer.wait(min(remaining, PUBLISH_ANSWER_TIMEOUT_S))
                if answer.ready():
                    answer.get()  # raises what went wrong: an error answer, a lost connection
                    return
                producer.drop_connection_of(answer)
                error: Exception = TimeoutError("the nsqd did not acknowledge the publish")
            except NSQException as failure:
                error = failure
            if time.monotonic() >= deadline:
                raise QueueError(f"cannot publish to {topic!r} on {self._nsqd}: "
                                 f"{error!r}") from None
            gevent.sleep(0.05)

    def publish(self, topic: str, body: bytes, delay_s: float = 0.0) -> None:
        if not isinstance(body, bytes):
            raise TypeError(f"message bodies are bytes, got {type(body).__name__}")
        delay_ms = int(delay_s * 1000)
        self._send("publish", topic, body, **({"defer": delay_ms} if delay_ms > 0 else {}))

    def multi_publish(self, topic: str, bodies: Sequence[bytes]) -> None:
        if bodies:
            self._send("multipublish", topic, list(bodies))

    def consume(self, topic, channel, handler: MessageHandler, *, max_in_flight=1):
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        consumer = _NsqConsumer(topic, channel, handler, max_in_flight, self._nsqd,
                                self._lookupd, self._connection_options)
        self._consumers.append(consumer)
        return consumer

    def close(self) -> None:
        for consumer in self._consumers:
            consumer.stop(timeout=1)
        if self._producer is not None:
            self._producer.close()
            self._producer.join(timeout=1)
