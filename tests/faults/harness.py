"""The cluster a scenario runs against: ``mr cluster``'s etcd, nsqd, workers and gunicorn front
end (and nginx, for the soak), loaded with the suite's workflow, stopped by pid afterwards."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from mr.cli.cluster import LocalCluster, start_cluster
from mr.handlers.load import read_definition

WORKFLOW_DIR = Path(__file__).parent / "workflow"
WORKFLOW = "faults"

#: Settings every scenario's cluster shares: work held by a killed worker comes back after a
#: few seconds, not nsqd's default minute; two executor children per worker.
BASE_ENV = {"MR_MESSAGE_TIMEOUT_S": "3", "MR_EXECUTOR_PROCESSES": "2"}


@contextlib.contextmanager
def running_cluster(data_dir: Path, workers: int, env: dict[str, str] | None = None,
                    nginx: bool = False) -> Iterator[LocalCluster]:
    """A cluster tied to this process (it dies with it), whose logs stay in ``data_dir``."""
    cluster = start_cluster(data_dir, [read_definition(WORKFLOW_DIR)], workers,
                            extra_env={**BASE_ENV, **(env or {})}, tie_to_parent=True,
                            nginx=nginx)
    try:
        yield cluster
    finally:
        cluster.stop()


def worker_names(cluster: LocalCluster) -> list[str]:
    return [process.name for process in cluster.processes if process.name.startswith("worker-")]
