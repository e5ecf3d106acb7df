"""The benchmark jobs on Dask: a future per map task and one per reduce, submitted by a client
of a LocalCluster that lives as long as this process's measurements (started and closed here).
``pure=False``: every call runs its tasks, none is answered from an earlier call's result held
under the same key."""
from __future__ import annotations

from importlib.metadata import version

from dask.distributed import Client, LocalCluster

from peer_jobs import pairs

WORKERS = 2


class DaskJobs:
    NAME = "Dask"

    def __init__(self, wait_s: float):
        self._wait_s = wait_s

    def __enter__(self) -> "DaskJobs":
        self._cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=None)
        self._client = Client(self._cluster)
        return self

    def __exit__(self, *exc_info) -> None:
        self._client.close()
        self._cluster.close()

    def trivial(self, arguments: list) -> list:
        mapped = self._client.submit(pairs.echo, arguments, pure=False)
        return self._client.submit(pairs.add, [mapped], pure=False).result(self._wait_s)

    def fan_out(self, children: int) -> list:
        mapped = [self._client.submit(pairs.echo, arguments, pure=False)
                  for arguments in pairs.fan_out_arguments(children)]
        return self._client.submit(pairs.add, mapped, pure=False).result(self._wait_s)

    def versions(self) -> dict[str, str]:
        return {"Dask": f"dask {version('dask')}, distributed {version('distributed')}"}


Jobs = DaskJobs
