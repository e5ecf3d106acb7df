"""Local etcd, nsqd and nsqlookupd processes for development, the dev cluster and the tests.

Each server runs in its own data directory, bound to 127.0.0.1, with a pid file there that names
exactly the process that was started; stopping goes by that pid (checked against the process's
command line, so a recycled pid is never signalled), never by process name. The binaries come from
``scripts/install-servers``: etcd from Debian's etcd-server, nsqd and nsqlookupd built into
``$MR_TOOLS_DIR/bin`` (default ``~/.cache/mr/bin``).
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
import time
import urllib.request
from pathlib import Path

from mr.kv.etcd import MAX_TXN_OPS

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
    """The server binary: on PATH, else where scripts/install-servers puts it."""
    found = shutil.which(name) or shutil.which(name, path=str(tools_dir() / "bin"))
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


def etcd(data_dir: Path, client_port: int = 0, peer_port: int = 0,
         tie_to_parent: bool = False, max_txn_ops: int = MAX_TXN_OPS) -> ServerProcess:
    """An etcd member of a one-node cluster (v3 API only; etcd 3.4 has v2 off by default)."""
    client_port = client_port or free_port()
    peer_port = peer_port or free_port()
    client = f"http://{LOOPBACK}:{client_port}"
    peer = f"http://{LOOPBACK}:{peer_port}"
    argv = [find_binary("etcd"), "--name", "mr", "--data-dir", str(Path(data_dir) / "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"mr={peer}", "--log-level", "warn", "--logger", "zap",
            "--max-txn-ops", str(max_txn_ops)]
    return ServerProcess("etcd", argv, Path(data_dir), {"client": client, "peer": peer},
                         f"{client}/health", tie_to_parent=tie_to_parent)


def nsqd(data_dir: Path, tcp_port: int = 0, http_port: int = 0, msg_timeout_s: float = 60.0,
         lookupd_tcp_address: str | None = None, tie_to_parent: bool = False) -> ServerProcess:
    tcp_port = tcp_port or free_port()
    http_port = http_port or free_port()
    argv = [find_binary("nsqd"), f"--data-path={Path(data_dir) / 'nsqd'}",
            f"--tcp-address={LOOPBACK}:{tcp_port}", f"--http-address={LOOPBACK}:{http_port}",
            f"--broadcast-address={LOOPBACK}", f"--msg-timeout={int(msg_timeout_s * 1000)}ms",
            "--log-level=warn"]
    if lookupd_tcp_address:
        argv.append(f"--lookupd-tcp-address={lookupd_tcp_address}")
    (Path(data_dir) / "nsqd").mkdir(parents=True, exist_ok=True)
    return ServerProcess("nsqd", argv, Path(data_dir),
                         {"tcp": f"{LOOPBACK}:{tcp_port}", "http": f"{LOOPBACK}:{http_port}"},
                         f"http://{LOOPBACK}:{http_port}/ping", tie_to_parent=tie_to_parent)


def nsqlookupd(data_dir: Path, tcp_port: int = 0, http_port: int = 0,
               tie_to_parent: bool = False) -> ServerProcess:
    tcp_port = tcp_port or free_port()
    http_port = http_port or free_port()
    argv = [find_binary("nsqlookupd"), f"--tcp-address={LOOPBACK}:{tcp_port}",
            f"--http-address={LOOPBACK}:{http_port}", f"--broadcast-address={LOOPBACK}",
            "--log-level=warn"]
    return ServerProcess("nsqlookupd", argv, Path(data_dir),
                         {"tcp": f"{LOOPBACK}:{tcp_port}", "http": f"{LOOPBACK}:{http_port}"},
                         f"http://{LOOPBACK}:{http_port}/ping", tie_to_parent=tie_to_parent)
