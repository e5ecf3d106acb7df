"""What a scrape reads at the time rather than what is counted as it happens: the executor
children of this process and how many are busy, and the depth of the queue topics its workers
consume.

Pools and workers register themselves here when they start and leave when they stop; a scrape
sums the pools (a process has one, but nothing breaks if it has more) and reports each topic
once however many of its workers consume it.
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Iterator

from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from mr.metrics.queue_depth import QueueDepth, queue_depth

if TYPE_CHECKING:
    from mr.executor.pool import ExecutorPool
    from mr.worker.worker import Worker

_pools: "weakref.WeakSet[ExecutorPool]" = weakref.WeakSet()
_workers: "weakref.WeakKeyDictionary[Worker, QueueDepth | None]" = weakref.WeakKeyDictionary()


def track_pool(pool: ExecutorPool) -> None:
    _pools.add(pool)


def forget_pool(pool: ExecutorPool) -> None:
    _pools.discard(pool)


def track_worker(worker: Worker) -> None:
    _workers[worker] = queue_depth(worker.engine.queue, worker.settings)


def forget_worker(worker: Worker) -> None:
    _workers.pop(worker, None)


class SampledCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        pools = list(_pools)
        children, busy, depth = self.describe()
        children.add_metric([], sum(pool.size for pool in pools))
        busy.add_metric([], sum(pool.busy for pool in pools))
        for topic, messages in sorted(_depths().items()):
            depth.add_metric([topic], messages)
        return iter((children, busy, depth))

    def describe(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily("mr_executor_children",
                              "Executor child processes of this worker's pool."),
            GaugeMetricFamily("mr_executor_busy_children",
                              "Executor children running an invocation when scraped."),
            GaugeMetricFamily("mr_queue_depth",
                              "Messages waiting (ready or deferred) on this worker's channel of "
                              "each topic it consumes, when scraped.", labels=["topic"])]


def _depths() -> dict[str, int]:
    depths: dict[str, int] = {}
    for worker, depth in list(_workers.items()):
        if depth is not None:
            depths.update(depth.read(worker.settings.channel, worker.topics()))
    return depths


REGISTRY.register(SampledCollector())
