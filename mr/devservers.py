"""Local etcd, nsqd, nsqlookupd and S3 (moto) processes for development, the dev cluster and
the tests.

Each server runs in its own data directory, bound to 127.0.0.1, with a pid file there that names
exactly the process that was started; stopping goes by that pid (checked against the process's
command line, so a recycled pid is never signalled), never by process name. The binaries come from
``scripts/install-servers``: etcd, nsqd and nsqlookupd built into ``$MR_TOOLS_DIR/bin`` (default
``~/.cache/mr/bin``), preferred to any on the PATH; moto's S3 server from the test extra.
"""
from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mr.kv.etcd import MAX_TXN_OPS
from mr.settings import Settings

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
#: A process without a health URL counts as started once it has stayed up this long.
STAY_UP_S = 1.0
LOOPBACK = "127.0.0.1"


class ServerError(RuntimeError):
    """A server could not be found, started or stopped; the message says which and why."""


def tools_dir() -> Path:
    return Path(os.environ.get("MR_TOOLS_DIR", Path.home() / ".cache" / "mr"))


def find_binary(name: str) -> str:
    """The server binary: the one scripts/install-servers built, else the one on PATH."""
    found = shutil.which(name, path=str(tools_dir() / "bin")) or shutil.which(name)
    if not found:
        raise ServerError(f"{name} is not installed; run scripts/install-servers")
    return found


def binary_version(name: str) -> str:
    output = subprocess.run([find_binary(name), "--version"], capture_output=True, text=True,
                            check=False).stdout
    return output.splitlines()[0].strip() if output else "unknown"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the process that started us dies (Linux prctl)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


#: A Go server started here (etcd, nsqd, nsqlookupd) runs its goroutines on one thread for each
#: this many cores (GOMAXPROCS, at least one), unless the environment sets GOMAXPROCS.
CORES_PER_GO_THREAD = 4


def go_scheduler_env() -> dict[str, str]:
    """GOMAXPROCS for a Go server started here: a quarter of this process's cores, at least one.

    These servers share the machine with mr's own processes. By default Go schedules goroutines
    on as many threads as there are cores, and each hand-over of work wakes another thread: on
    a 2-core machine, one thread cut etcd's CPU per request by a fifth and a trivial request's
    latency by 1 ms (docs/benchmarks.rst, "Go servers on one thread"). A GOMAXPROCS already in
    the environment is left as it is.
    """
    if os.environ.get("GOMAXPROCS"):
        return {}
    return {"GOMAXPROCS": str(max(1, len(os.sched_getaffinity(0)) // CORES_PER_GO_THREAD))}


@dataclasses.dataclass
class ServerProcess:
    """One started server: what it is, where it listens, and how to stop exactly it."""
    name: str
    argv: list[str]
    data_dir: Path
    addresses: dict[str, str]
    #: Polled until it answers 200; None: ready once it has stayed up for a moment.
    health_url: str | None
    pid: int = 0
    tie_to_parent: bool = False
    #: Environment variables added to this process's environment.
    env: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def pid_file(self) -> Path:
        return self.data_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    def start(self) -> "ServerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, **self.env},
                preexec_fn=_die_with_parent if self.tie_to_parent else None)
        self.pid = process.pid
        self._process = process
        self.pid_file.write_text(json.dumps({"pid": self.pid, "argv": self.argv,
                                             "addresses": self.addresses}))
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        started = time.monotonic()
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._forget()
                raise ServerError(f"{self.name} exited with {self._process.returncode} at start; "
                                  f"log {self.log_file}:\n{self._log_tail()}")
            if self.health_url is None:
                if time.monotonic() - started >= STAY_UP_S:
                    return
                time.sleep(0.05)
                continue
            try:
                with urllib.request.urlopen(self.health_url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.name} did not become ready in {READY_TIMEOUT_S:.0f} s; "
                          f"log {self.log_file}:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the process this object started (SIGKILL if it does not exit in time)."""
        if not self.pid:
            return
        _signal_and_wait(self.pid, self.argv[0], sig, timeout)
        process = getattr(self, "_process", None)
        if process is not None:
            process.wait(timeout=timeout)
        self._forget()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def _forget(self) -> None:
        self.pid = 0
        self.pid_file.unlink(missing_ok=True)

    def describe(self) -> str:
        lines = [f"{self.name}: pid {self.pid}, data dir {self.data_dir}"]
        lines += [f"  {role}: {address}" for role, address in self.addresses.items()]
        return "\n".join(lines)


def _is_our_process(pid: int, binary: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].decode(errors="replace") == binary


def _signal_and_wait(pid: int, binary: str, sig: int, timeout: float) -> None:
    if not _is_our_process(pid, binary):
        return
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_our_process(pid, binary) or _is_zombie(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def running_from(data_dir: Path) -> dict[Path, dict]:
    """The live servers recorded by pid files in ``data_dir``; stale pid files are removed."""
    running = {}
    for pid_file in sorted(Path(data_dir).glob("*.pid")):
        record = json.loads(pid_file.read_text())
        if _is_our_process(record["pid"], record["argv"][0]) and not _is_zombie(record["pid"]):
            running[pid_file] = record
        else:
            pid_file.unlink(missing_ok=True)
    return running


def stop_from_pid_files(data_dir: Path, exclude: set[str] = frozenset()) -> list[str]:
    """Stop every process whose pid file is in ``data_dir`` (but those named in ``exclude``);
    returns what was stopped."""
    stopped = []
    for pid_file, record in running_from(data_dir).items():
        if pid_file.stem in exclude:
            continue
        _signal_and_wait(record["pid"], record["argv"][0], signal.SIGTERM, STOP_TIMEOUT_S)
        pid_file.unlink(missing_ok=True)
        stopped.append(f"{pid_file.stem} (pid {record['pid']})")
    return stopped


@dataclasses.dataclass(frozen=True)
class EtcdTls:
    """An etcd serving clients over TLS: its certificate and key, and the CA that signed the
    client certificates it requires."""
    cert_file: str
    key_file: str
    client_ca_file: str


def etcd(data_dir: Path, client_port: int = 0, peer_port: int = 0,
         tie_to_parent: bool = False, max_txn_ops: int = MAX_TXN_OPS,
         quota_backend_bytes: int = 0, compaction_retention: str = "5m",
         tls: EtcdTls | None = None) -> ServerProcess:
    """An etcd member of a one-node cluster (v3 API only).

    Its history is compacted every ``compaction_retention`` to the revision of that long ago
    (periodic mode): without it every write stays in the history until the database reaches
    ``quota_backend_bytes`` (0: etcd's default, 2 GiB) and etcd refuses every write. Time, not a
    revision count, is what mr's watches need: one that reconnects resumes from its last revision
    within seconds, and one that fell further behind reloads (CompactedError), so minutes of
    history are plenty whatever the write rate.
    """
    client_port = client_port or free_port()
    peer_port = peer_port or free_port()
    client = f"{'https' if tls else 'http'}://{LOOPBACK}:{client_port}"
    peer = f"http://{LOOPBACK}:{peer_port}"
    argv = [find_binary("etcd"), "--name", "mr", "--data-dir", str(Path(data_dir) / "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"mr={peer}", "--log-level", "warn", "--logger", "zap",
            "--max-txn-ops", str(max_txn_ops),
            "--auto-compaction-mode", "periodic",
            "--auto-compaction-retention", compaction_retention,
            "--quota-backend-bytes", str(quota_backend_bytes)]
    health_url = f"{client}/health"
    if tls is not None:  # its health is then read on a plain listener of its own
        metrics = f"http://{LOOPBACK}:{free_port()}"
        argv += ["--cert-file", tls.cert_file, "--key-file", tls.key_file,
                 "--trusted-ca-file", tls.client_ca_file, "--client-cert-auth",
                 "--listen-metrics-urls", metrics]
        health_url = f"{metrics}/health"
    return ServerProcess("etcd", argv, Path(data_dir), {"client": client, "peer": peer},
                         health_url, tie_to_parent=tie_to_parent, env=go_scheduler_env())


@dataclasses.dataclass(frozen=True)
class NsqdTls:
    """An nsqd that accepts TCP clients over TLS only, with a certificate signed by
    ``client_ca_file`` (its HTTP API, on loopback, stays plain)."""
    cert_file: str
    key_file: str
    client_ca_file: str


def nsqd(data_dir: Path, tcp_port: int = 0, http_port: int = 0, msg_timeout_s: float = 60.0,
         max_msg_timeout_s: float = 15 * 60.0, lookupd_tcp_address: str | None = None,
         tie_to_parent: bool = False, tls: NsqdTls | None = None) -> ServerProcess:
    """An nsqd whose queued messages survive a crash.

    ``--mem-queue-size=0`` sends every message through the topic's and channel's disk queue (by
    default nsqd keeps up to 10000 per channel in memory, which a SIGKILL loses); what is still
    lost is the messages in flight to consumers, which mr's sweeper re-drives.
    ``max_msg_timeout_s`` is how long a consumer may keep a message by touching it: nsqd lets
    it time out after that however often it is touched, so it must exceed mr's longest
    invocation (``nsqd_timeouts``).
    """
    tcp_port = tcp_port or free_port()
    http_port = http_port or free_port()
    argv = [find_binary("nsqd"), f"--data-path={Path(data_dir) / 'nsqd'}",
            f"--tcp-address={LOOPBACK}:{tcp_port}", f"--http-address={LOOPBACK}:{http_port}",
            f"--broadcast-address={LOOPBACK}", f"--msg-timeout={int(msg_timeout_s * 1000)}ms",
            f"--max-msg-timeout={int(max_msg_timeout_s * 1000)}ms", "--mem-queue-size=0",
            "--log-level=warn"]
    if lookupd_tcp_address:
        argv.append(f"--lookupd-tcp-address={lookupd_tcp_address}")
    if tls is not None:  # TCP clients over TLS only; the plain HTTP API stays on loopback
        argv += [f"--tls-cert={tls.cert_file}", f"--tls-key={tls.key_file}",
                 f"--tls-root-ca-file={tls.client_ca_file}",
                 "--tls-client-auth-policy=require-verify", "--tls-required=tcp-https",
                 f"--https-address={LOOPBACK}:{free_port()}"]
    (Path(data_dir) / "nsqd").mkdir(parents=True, exist_ok=True)
    return ServerProcess("nsqd", argv, Path(data_dir),
                         {"tcp": f"{LOOPBACK}:{tcp_port}", "http": f"{LOOPBACK}:{http_port}"},
                         f"http://{LOOPBACK}:{http_port}/ping", tie_to_parent=tie_to_parent,
                         env=go_scheduler_env())


def nsqlookupd(data_dir: Path, tcp_port: int = 0, http_port: int = 0,
               tie_to_parent: bool = False) -> ServerProcess:
    tcp_port = tcp_port or free_port()
    http_port = http_port or free_port()
    argv = [find_binary("nsqlookupd"), f"--tcp-address={LOOPBACK}:{tcp_port}",
            f"--http-address={LOOPBACK}:{http_port}", f"--broadcast-address={LOOPBACK}",
            "--log-level=warn"]
    return ServerProcess("nsqlookupd", argv, Path(data_dir),
                         {"tcp": f"{LOOPBACK}:{tcp_port}", "http": f"{LOOPBACK}:{http_port}"},
                         f"http://{LOOPBACK}:{http_port}/ping", tie_to_parent=tie_to_parent,
                         env=go_scheduler_env())


@dataclasses.dataclass
class S3Server(ServerProcess):
    """moto's standalone server: the S3 API on loopback, with one bucket. It keeps every object
    in memory, so its data goes with the process, and it takes any credentials (botocore needs
    some to sign with)."""
    bucket: str = "mr-data"
    access_key: str = "mr-test"
    secret_key: str = "mr-test-secret"

    @property
    def endpoint_url(self) -> str:
        return self.addresses["s3"]

    @property
    def client_env(self) -> dict[str, str]:
        """The environment that points every botocore-based client (s3fs) at this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL_S3": self.endpoint_url}

    def start(self) -> "S3Server":
        super().start()
        self._create_bucket()
        return self

    def _create_bucket(self) -> None:
        """An unsigned PUT of the bucket's path: moto checks no signature."""
        request = urllib.request.Request(f"{self.endpoint_url}/{self.bucket}", method="PUT")
        try:
            urllib.request.urlopen(request, timeout=READY_TIMEOUT_S).close()
        except OSError as error:
            self.stop()
            raise ServerError(f"cannot create bucket {self.bucket!r} in {self.name}: {error}; "
                              f"log {self.log_file}:\n{self._log_tail()}") from error


def s3_server(data_dir: Path, bucket: str = "mr-data", tie_to_parent: bool = False) -> S3Server:
    """``python -m moto.server`` (from the test extra) on a free port of 127.0.0.1, ready once
    it lists its buckets. Clients use ``client_env``."""
    port = free_port()
    endpoint = f"http://{LOOPBACK}:{port}"
    argv = [sys.executable, "-m", "moto.server", "--host", LOOPBACK, "--port", str(port)]
    return S3Server("moto", argv, Path(data_dir), {"s3": endpoint}, f"{endpoint}/",
                    tie_to_parent=tie_to_parent, bucket=bucket)


def nsqd_timeouts(settings: Settings) -> dict[str, float]:
    """nsqd's message timeouts for an mr with ``settings`` (arguments of :func:`nsqd`).

    ``--msg-timeout`` is MR_MESSAGE_TIMEOUT_S. ``--max-msg-timeout`` is the longest a worker
    keeps one message by touching it: a leaf invocation runs its mapper, combiner and reducer,
    each for up to MR_INVOCATION_TIMEOUT_S; one more message timeout covers the wait for a free
    slot and the reads and commits around them."""
    return {"msg_timeout_s": settings.message_timeout_s,
            "max_msg_timeout_s": 3 * settings.invocation_timeout_s + settings.message_timeout_s}


def etcd_member(name: str, data_dir: Path, client_url: str, peer_url: str, initial_cluster: str,
                tie_to_parent: bool = False) -> ServerProcess:
    """A member of a new etcd cluster of several: ``etcd()``'s server (same limits, compaction
    and logging) under its own name, on the given URLs, knowing its peers
    (``initial_cluster``: ``name=peer_url,...``).

    A member answers clients only once a quorum of its cluster runs, so it counts as started
    when its peer listener answers; the cluster is ready once a client's first request succeeds.
    """
    member = etcd(data_dir, tie_to_parent=tie_to_parent)
    member.argv = _with_options(member.argv, {
        "--name": name, "--listen-client-urls": client_url, "--advertise-client-urls": client_url,
        "--listen-peer-urls": peer_url, "--initial-advertise-peer-urls": peer_url,
        "--initial-cluster": initial_cluster, "--initial-cluster-state": "new",
        "--initial-cluster-token": "mr"})
    member.addresses = {"client": client_url, "peer": peer_url}
    member.health_url = f"{peer_url}/version"
    return member


def etcd_cluster(data_dir: Path, addresses: dict[str, str],
                 tie_to_parent: bool = False) -> list[ServerProcess]:
    """The members of a new etcd cluster: one per name of ``addresses``, on that address (free
    ports), with its data in ``data_dir/<name>``. Start them all; see ``etcd_member``."""
    urls = {name: (f"http://{address}:{free_port()}", f"http://{address}:{free_port()}")
            for name, address in addresses.items()}
    initial_cluster = ",".join(f"{name}={peer}" for name, (_, peer) in urls.items())
    return [etcd_member(name, Path(data_dir) / name, client, peer, initial_cluster,
                        tie_to_parent=tie_to_parent) for name, (client, peer) in urls.items()]


def client_endpoints(members: list[ServerProcess]) -> list[str]:
    """The ``host:port`` client addresses of etcd members (for ``MR_ETCD_ENDPOINTS``)."""
    return [member.addresses["client"].split("://", 1)[1] for member in members]


def etcd_leader(members: list[ServerProcess]) -> ServerProcess:
    """The member that leads the cluster now, as the members that answer say."""
    statuses = []
    for member in members:
        request = urllib.request.Request(member.addresses["client"] + "/v3/maintenance/status",
                                         data=b"{}", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                statuses.append((member, json.load(response)))
        except OSError:
            continue
    if not statuses:
        raise ServerError("no etcd member answers")
    leader_id = statuses[0][1]["leader"]
    return next(member for member, status in statuses
                if status["header"]["member_id"] == leader_id)


def _with_options(argv: list[str], values: dict[str, str]) -> list[str]:
    """``argv`` with each ``--option value`` pair set to ``values``' value (added if absent)."""
    argv = list(argv)
    for option, value in values.items():
        if option in argv:
            argv[argv.index(option) + 1] = value
        else:
            argv += [option, value]
    return argv


# Several machines on this one: network namespaces on a private bridge, so that a cluster runs
# as it is deployed (each server on an address of its own, reached over a network) and a server
# can be cut off or killed while the others carry on.

#: Where ``ip netns add`` puts the namespaces it names.
NETNS_DIR = Path("/var/run/netns")
#: Addresses of host networks come from this private /16, one /24 per network.
HOST_NETWORK_RANGE = "10.231"
_NAME_PREFIX = "mrnet"
_CLONE_NEWNET = 0x40000000


def _ip(*arguments: str) -> str:
    result = subprocess.run(["ip", *arguments], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServerError(f"ip {' '.join(arguments)} failed: {result.stderr.strip()}")
    return result.stdout


class HostNetwork:
    """Network namespaces that stand for separate machines (needs root).

    Each host is a namespace whose one interface is on a bridge of this (the root) namespace,
    with an address of a private /24; the bridge has the first address, so this process reaches
    every host. The /24 is the namespaces' only route and the bridge is attached to nothing
    else, so no traffic leaves the machine. Interface and namespace names carry this process's
    pid: ``remove_orphans`` clears what a run killed before its ``close`` left behind.
    """

    def __init__(self):
        self.bridge = f"{_NAME_PREFIX}{os.getpid()}"
        self.subnet = _free_subnet()
        self.hosts: dict[str, str] = {}
        _ip("link", "add", self.bridge, "type", "bridge")
        try:
            _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        except ServerError:
            self.close()
            raise

    def add_host(self, host: str) -> str:
        """A new host: its namespace, its interface on the bridge; returns its address."""
        address = f"{self.subnet}.{len(self.hosts) + 2}"
        namespace = self.namespace(host)
        _ip("netns", "add", namespace)
        self.hosts[host] = address
        outside = f"{self.bridge}.{len(self.hosts)}"
        _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        _ip("link", "set", outside, "master", self.bridge, "up")
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        return address

    def address(self, host: str) -> str:
        return self.hosts[host]

    def namespace(self, host: str) -> str:
        return f"{self.bridge}-{host}"

    def close(self) -> None:
        """Remove every namespace and the bridge (the interfaces go with them); a namespace
        whose processes still run lives on, nameless and unreachable, until they exit."""
        failures = []
        commands = [("netns", "del", self.namespace(host)) for host in self.hosts]
        for command in [*commands, ("link", "del", self.bridge)]:
            try:
                _ip(*command)
            except ServerError as error:
                failures.append(str(error))
        self.hosts = {}
        if failures:
            raise ServerError("; ".join(failures))

    def __enter__(self) -> "HostNetwork":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @staticmethod
    def remove_orphans() -> list[str]:
        """Remove what host networks whose process is gone left behind: the processes still
        running in their namespaces (SIGKILL, by pid), the namespaces, their interfaces."""
        removed = []
        namespaces = [line.split()[0] for line in _ip("netns", "list").splitlines() if line]
        for namespace in _orphans(namespaces):
            for pid in _ip("netns", "pids", namespace).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _ip("netns", "del", namespace)
            removed.append(namespace)
        links = [line.split(": ")[1].split("@")[0]
                 for line in _ip("-o", "link", "show").splitlines()]
        for link in _orphans(links):  # bridges, and interfaces of namespaces not yet freed
            try:
                _ip("link", "del", link)
            except ServerError as error:
                if "Cannot find device" not in str(error):  # freed meanwhile
                    raise
            removed.append(link)
        return removed


def _orphans(names: list[str]) -> list[str]:
    """Those of ``names`` that a host network whose process is gone made."""
    orphans = []
    for name in names:
        owner = name[len(_NAME_PREFIX):].split("-")[0].split(".")[0]
        if name.startswith(_NAME_PREFIX) and owner.isdigit() and not _is_alive(int(owner)):
            orphans.append(name)
    return orphans


def _is_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _free_subnet() -> str:
    """A /24 of HOST_NETWORK_RANGE that no interface of this machine uses."""
    used = _ip("-o", "-4", "addr", "show")
    for offset in range(250):
        subnet = f"{HOST_NETWORK_RANGE}.{(os.getpid() + offset) % 250 + 1}"
        if f" {subnet}." not in used:
            return subnet
    raise ServerError(f"every /24 of {HOST_NETWORK_RANGE}.0.0/16 is in use")


@dataclasses.dataclass
class NamespacedProcess(ServerProcess):
    """A server started inside a network namespace.

    This process enters the namespace just for the start (the server inherits it, and the
    readiness check runs from inside), then comes back: the server keeps its own pid and command
    line, so everything that stops it by pid works unchanged. ``ip netns exec`` would make the
    recorded command line name ``ip``. Start these one at a time, and not while other greenlets
    open loopback connections: sockets opened meanwhile would be in the namespace too.
    """
    netns: str = ""

    def start(self) -> "NamespacedProcess":
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        with open(NETNS_DIR / self.netns) as namespace, open("/proc/thread-self/ns/net") as home:
            if libc.setns(namespace.fileno(), _CLONE_NEWNET) != 0:
                raise ServerError(f"cannot enter network namespace {self.netns}: "
                                  f"{os.strerror(ctypes.get_errno())}")
            try:
                super().start()
            finally:
                if libc.setns(home.fileno(), _CLONE_NEWNET) != 0:
                    raise ServerError("cannot return to this process's network namespace: "
                                      f"{os.strerror(ctypes.get_errno())}")
        return self


def on_host(process: ServerProcess, network: HostNetwork, host: str) -> NamespacedProcess:
    """``process`` as a server of ``host``: it runs in the host's namespace, and listens on
    (and announces) the host's address wherever it was to use 127.0.0.1."""
    def moved(text: str) -> str:
        return text.replace(LOOPBACK, network.address(host))

    fields = {field.name: getattr(process, field.name) for field in dataclasses.fields(process)}
    fields.update(argv=[moved(argument) for argument in process.argv],
                  addresses={role: moved(address) for role, address in process.addresses.items()},
                  health_url=process.health_url and moved(process.health_url))
    return NamespacedProcess(**fields, netns=network.namespace(host))
