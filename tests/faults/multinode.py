"""mr deployed on several machines, played by network namespaces of this one.

Three etcd members, nsqlookupd, two nsqd, the gunicorn front end and the ``mr worker`` processes
each run on a host of their own: a namespace with its own address on a private bridge
(``mr.devservers.HostNetwork``); nothing listens on loopback. They are configured as a
deployment is: ``MR_ETCD_ENDPOINTS`` names the etcd members (the leader first), ``MR_NSQD_HOSTS``
the nsqd servers to publish to, ``MR_NSQLOOKUPD_HTTP_ADDRESSES`` where consumers find nsqd
servers, and the bulk data goes to one directory that every host sees (this machine's
filesystem stands for NFS).

Under load, the etcd leader (every client's first endpoint) and then one nsqd are SIGKILLed;
every request must still end with its exact result. Then both start again, and blocking
requests must be answered exactly too.

Needs root: ``python -m tests.faults.multinode [--requests N] [--children N] ...``; prints the
figures, and exits with 1 if any request was lost or wrong. Every host is removed at the end,
whatever happened; a run killed before that leaves hosts that the next run removes.
"""
from gevent import monkey

if not monkey.is_module_patched("socket"):  # scripts/test and tests.faults patched already
    monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Iterator  # noqa: E402

from mr import devservers  # noqa: E402
from mr.auth.tokens import TokenStore  # noqa: E402
from mr.cli.cluster import _mr_process  # noqa: E402
from mr.handlers.load import load_workflow, read_definition  # noqa: E402
from mr.kv.etcd import EtcdKV  # noqa: E402
from mr.models import EntityStore  # noqa: E402
from mr.settings import Settings  # noqa: E402
from tests.faults.client import Client, Front, front_of, pairs_of  # noqa: E402
from tests.faults.harness import BASE_ENV, WORKFLOW, WORKFLOW_DIR  # noqa: E402
from tests.faults.load import Shape, Tracked, at_fractions, run_load, sleep_until  # noqa: E402
from tests.faults.report import Report, log_summary  # noqa: E402
from tests.faults.server_kills import SWEEPER_ENV  # noqa: E402

NAME = "several-hosts"
ETCD_HOSTS = ("etcd-1", "etcd-2", "etcd-3")
NSQD_HOSTS = ("nsqd-1", "nsqd-2")
HTTP_PORT = 8080
#: Settings of every mr process here: those of the fault suite's server kills.
MR_ENV = {**BASE_ENV, **SWEEPER_ENV}


@dataclasses.dataclass
class MultiNodeCluster:
    network: devservers.HostNetwork
    #: By host name, in the order they started.
    servers: dict[str, devservers.ServerProcess]
    #: The settings every mr process of the cluster runs with.
    env: dict[str, str]
    #: The front end.
    url: str

    @property
    def etcd_endpoints(self) -> list[str]:
        return self.env["MR_ETCD_ENDPOINTS"].split(",")

    def etcd_host(self, endpoint: str) -> str:
        return next(host for host in ETCD_HOSTS
                    if self.servers[host].addresses["client"] == f"http://{endpoint}")

    def etcd_leader_host(self) -> str:
        leader = devservers.etcd_leader([self.servers[host] for host in ETCD_HOSTS])
        return next(host for host in ETCD_HOSTS if self.servers[host] is leader)


@contextlib.contextmanager
def multinode_cluster(data_dir: Path, workers: int = 2,
                      extra_env: dict[str, str] | None = None) -> Iterator[MultiNodeCluster]:
    """Everything started, each server on a host of its own; on the way out, whatever happened,
    every process is stopped and every host removed."""
    devservers.HostNetwork.remove_orphans()
    cluster = MultiNodeCluster(devservers.HostNetwork(), {}, {}, "")
    try:
        _start(cluster, Path(data_dir), workers, extra_env or {})
        yield cluster
    finally:
        _tear_down(cluster)


def _start(cluster: MultiNodeCluster, data_dir: Path, workers: int,
           extra_env: dict[str, str]) -> None:
    network = cluster.network
    worker_hosts = [f"worker-{number}" for number in range(1, workers + 1)]
    for host in (*ETCD_HOSTS, "lookupd", *NSQD_HOSTS, "frontend", *worker_hosts):
        network.add_host(host)

    def start(host: str, process: devservers.ServerProcess) -> devservers.ServerProcess:
        server = cluster.servers[host] = devservers.on_host(process, network, host)
        server.tie_to_parent = True
        return server.start()

    members = [start(host, member) for host, member in zip(ETCD_HOSTS, devservers.etcd_cluster(
        data_dir, {host: network.address(host) for host in ETCD_HOSTS}))]
    with EtcdKV(endpoints=devservers.client_endpoints(members), timeout_s=30) as kv:
        kv.current_revision()  # answered once the members have a quorum and a leader
    leader = devservers.etcd_leader(members)
    members.sort(key=lambda member: member is not leader)
    lookupd = start("lookupd", devservers.nsqlookupd(data_dir / "lookupd"))
    settings = Settings.load({**os.environ, **MR_ENV, **extra_env})
    nsqds = [start(host, devservers.nsqd(data_dir / host, **devservers.nsqd_timeouts(settings),
                                         lookupd_tcp_address=lookupd.addresses["tcp"]))
             for host in NSQD_HOSTS]
    shared = data_dir / "shared"
    cluster.env = {
        **MR_ENV, **extra_env, "MR_KV_BACKEND": "etcd",
        "MR_ETCD_ENDPOINTS": ",".join(devservers.client_endpoints(members)),
        "MR_QUEUE_BACKEND": "nsq", "MR_NSQD_HOSTS": ",".join(n.addresses["tcp"] for n in nsqds),
        "MR_NSQLOOKUPD_HTTP_ADDRESSES": lookupd.addresses["http"],
        "MR_DATA_STORE_URL": str(shared / "data"), "MR_FS_ROOT_URL": str(shared / "fs"),
        "MR_WORKFLOW_NAMES": WORKFLOW}
    with EtcdKV(endpoints=cluster.etcd_endpoints) as kv:
        store = EntityStore(kv, settings.kv_prefix)
        load_workflow(store, read_definition(WORKFLOW_DIR))
        cluster.env["MR_TOKEN"] = TokenStore(kv, store.keys).admin_token()
    for host in worker_hosts:
        start(host, _mr_process(host, ["mr.cli.main", "worker"], data_dir / host, cluster.env))
    address = network.address("frontend")
    cluster.url = f"http://{address}:{HTTP_PORT}"
    start("frontend", _mr_process(
        "frontend", ["mr.web.gunicorn_dev"], data_dir / "frontend",
        {**cluster.env, "MR_HTTP_HOST": address, "MR_HTTP_PORT": str(HTTP_PORT)},
        f"{cluster.url}/health"))


def _tear_down(cluster: MultiNodeCluster) -> None:
    problems = []
    for server in reversed(list(cluster.servers.values())):  # mr processes before servers
        try:
            server.stop()
        except Exception as error:  # the others must still be stopped, and the hosts removed
            problems.append(f"stopping {server.name} (pid {server.pid}): {error!r}")
    try:
        cluster.network.close()
    except devservers.ServerError as error:
        problems.append(str(error))
    if problems:
        raise devservers.ServerError("; ".join(problems))


def children(count: int) -> Shape:
    """Requests of ``count`` leaves, each over a span of numbers of its own."""
    return Shape(f"{count} children", "children", count,
                 lambda start: {"span": [start, start + count]})


def run(data_dir: Path, requests: int, shape: Shape, rate_per_s: float, clients: int,
        workers: int, wait_s: float, blocking_after: int) -> Report:
    """Submit ``requests`` steadily; a quarter of the way through, SIGKILL the etcd member every
    client talks to (the leader), three quarters through, nsqd-1. Once every request has ended,
    start both again and send ``blocking_after`` blocking requests."""
    report = Report(NAME)
    tracked = [Tracked(shape, number * shape.leaves) for number in range(requests)]
    with multinode_cluster(data_dir, workers) as cluster:
        victims = (cluster.etcd_host(cluster.etcd_endpoints[0]), "nsqd-1")
        report.record(hosts=", ".join(f"{host} {address}"
                                      for host, address in cluster.network.hosts.items()),
                      load=f"{requests} requests of {shape.name}, {rate_per_s:g}/s, "
                           f"{workers} workers",
                      etcd_leader_and_first_endpoint=victims[0])
        killed: list[str] = []

        def kill_servers(window_s: float) -> None:
            started = time.monotonic()
            for host, offset in zip(victims, at_fractions(window_s, len(victims))):
                sleep_until(started, offset)
                cluster.servers[host].kill()
                killed.append(f"{host} at {time.monotonic() - started:.1f} s")

        started = time.monotonic()
        counts = run_load(report, front_of(cluster), tracked, rate_per_s=rate_per_s, clients=clients,
                          deadline_s=None, wait_s=wait_s, inject_faults=kill_servers)
        report.record(killed=", ".join(killed), load_s=round(time.monotonic() - started, 1),
                      etcd_leader_after_the_kill=cluster.etcd_leader_host())
        report.expect("every request done with its exact result", counts["exact"] == requests,
                      f"{requests - counts['exact']} not")
        for host in victims:
            cluster.servers[host].start()
        exact = _blocking_requests(front_of(cluster), shape, requests * shape.leaves, blocking_after)
        report.expect(f"then, both restarted, {blocking_after} blocking requests exact",
                      exact == blocking_after, f"{blocking_after - exact} not")
        report.record(**_recoveries(data_dir))
        if not report.ok:
            report.evidence += log_summary(data_dir)
    return report


def _recoveries(data_dir: Path) -> dict[str, int]:
    """What the workers' logs say they did to recover."""
    text = "".join(log.read_text(errors="replace") for log in data_dir.glob("worker-*/*.log"))
    return {"invocation_attempts_retried": len(re.findall(r"\(attempt \d+ of \d+\), retrying",
                                                          text)),
            "invocations_published_again_by_the_sweeper": sum(
                int(count) for count in re.findall(r"published (\d+) unfinished", text))}


def _blocking_requests(front: Front, shape: Shape, first: int, count: int) -> int:
    """How many of ``count`` blocking requests were answered with their exact result."""
    client = Client(front)
    exact = 0
    for start in range(first, first + count * shape.leaves, shape.leaves):
        answer = client.submit(shape.job, shape.arguments(start), blocking=True)
        exact += answer.status == 200 and pairs_of(answer.body) == Tracked(shape, start).expected
    client.close()
    return exact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.multinode",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--children", type=int, default=20, help="leaves of each request")
    parser.add_argument("--rate", type=float, default=10.0, help="requests submitted per second")
    parser.add_argument("--clients", type=int, default=4, help="submitting greenlets")
    parser.add_argument("--workers", type=int, default=2, help="worker hosts")
    parser.add_argument("--wait-s", type=float, default=180.0,
                        help="how long every request has to end after the last submission")
    parser.add_argument("--blocking-after", type=int, default=20,
                        help="blocking requests after the restart")
    parser.add_argument("--data-dir", type=Path,
                        help="logs, pid files and data (default: a new temporary directory)")
    arguments = parser.parse_args(argv)
    data_dir = arguments.data_dir or Path(tempfile.mkdtemp(prefix="mr-multinode-"))
    report = run(data_dir, arguments.requests, children(arguments.children), arguments.rate,
                 arguments.clients, arguments.workers, arguments.wait_s,
                 arguments.blocking_after)
    print(report.render())
    print(f"logs and data: {data_dir}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # tear down as on Ctrl-C
    sys.exit(main())
