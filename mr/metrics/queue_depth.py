"""How many messages wait on a worker's topics, read when scraped: from the embedded queue
itself, or from the ``/stats`` of every nsqd (MR_NSQD_HTTP_ADDRESSES).

A topic's depth is what waits for the worker's channel, ready or deferred (requeued with a
delay), plus what the topic holds before any channel exists, summed over the nsqd servers.
Messages in flight are running invocations (``mr_invocations_in_flight``), not depth. nsqd is
asked with a short timeout and its answer kept for a few seconds, so that frequent scrapes, or
scrapes of a worker whose nsqd is down, cost little; while an nsqd does not answer, no depth
is reported rather than one too low.
"""
from __future__ import annotations

import json
import logging
import time
import urllib.request
from typing import Protocol, Sequence

from mr.queue.base import Queue
from mr.queue.memory import MemoryQueue
from mr.settings import Settings

log = logging.getLogger(__name__)

#: How long one nsqd may take to answer ``/stats``.
NSQD_STATS_TIMEOUT_S = 1.0
#: How long an answer (or a failure) of nsqd stands for the scrapes that follow.
NSQD_STATS_CACHE_S = 5.0


class QueueDepth(Protocol):
    def read(self, channel: str, topics: Sequence[str]) -> dict[str, int]:
        """The depth of each of ``topics`` on ``channel``."""


def queue_depth(queue: Queue, settings: Settings) -> QueueDepth | None:
    """How to read the depth of ``queue``'s topics; None when it cannot be (nsq with no HTTP
    address of its servers)."""
    if isinstance(queue, MemoryQueue):
        return EmbeddedQueueDepth(queue)
    if settings.nsqd_http_addresses:
        return NsqdQueueDepth(settings.nsqd_http_addresses)
    return None


class EmbeddedQueueDepth:
    def __init__(self, queue: MemoryQueue):
        self.queue = queue

    def read(self, channel: str, topics: Sequence[str]) -> dict[str, int]:
        return {topic: self.queue.depth(topic, channel) for topic in topics}


class NsqdQueueDepth:
    def __init__(self, addresses: Sequence[str]):
        self.addresses = list(addresses)
        self._stats: list[dict | None] = []
        self._read_at = float("-inf")

    def read(self, channel: str, topics: Sequence[str]) -> dict[str, int]:
        if time.monotonic() - self._read_at >= NSQD_STATS_CACHE_S:
            self._stats = [_nsqd_stats(address) for address in self.addresses]
            self._read_at = time.monotonic()
        if any(stats is None for stats in self._stats):
            return {}
        depths = dict.fromkeys(topics, 0)
        for stats in self._stats:
            for topic in stats.get("topics") or ():
                if topic["topic_name"] in depths:
                    depths[topic["topic_name"]] += topic["depth"] + sum(
                        held["depth"] + held["deferred_count"]
                        for held in topic.get("channels") or () if held["channel_name"] == channel)
        return depths


def _nsqd_stats(address: str) -> dict | None:
    url = f"http://{address}/stats?format=json&include_clients=false&include_mem=false"
    try:
        with urllib.request.urlopen(url, timeout=NSQD_STATS_TIMEOUT_S) as answer:
            return json.load(answer)
    except (OSError, ValueError) as error:
        log.warning("cannot read the queue depth from nsqd %s (MR_NSQD_HTTP_ADDRESSES): %s",
                    address, error)
        return None
