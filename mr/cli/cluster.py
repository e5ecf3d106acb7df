"""``mr cluster``: a whole distributed mr on this machine, for development and tests.

``start`` runs etcd, nsqlookupd and nsqd, loads workflow definitions into etcd, then starts N
``mr worker`` processes and the gunicorn front end, each in the background with its log and pid
file in the data directory; the bulk data goes to a directory there, shared by all of them.
``stop`` stops exactly the processes recorded there, front end and workers first. ``start``
writes the cluster's connection settings to the settings file every mr command reads, and
``stop`` removes them (``mr.cli.cluster_settings``).

``start_cluster`` can also put nginx in front, with the shipped site (deploy/nginx/mr.conf), as
a production deployment has it; the fault suite (tests/faults) drives its load through it.
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from mr import devservers
from mr.auth.tokens import TokenStore, auth_required
from mr.cli import cluster_settings
from mr.cli.errors import UserError
from mr.handlers.load import (WorkflowDefinition, WorkflowDefinitionError, load_workflow,
                              read_definition)
from mr.kv import create_kv
from mr.kv.etcd import EtcdKV
from mr.models import EntityStore
from mr.settings import Settings


def register(subparsers) -> None:
    parser = subparsers.add_parser("cluster", help="run a local distributed mr: servers, "
                                                   "workers and the gunicorn front end")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    start = verbs.add_parser("start", help="start everything in the background")
    start.add_argument("definitions", nargs="*", type=Path, metavar="DIR",
                       help="workflow definition directories to load")
    start.add_argument("--data-dir", type=Path, default=Path(".cluster"),
                       help="where logs, pid files and data go (default: .cluster)")
    start.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    start.add_argument("--port", type=int, default=0,
                       help="front end port (default: a free one)")
    start.add_argument("--secure", action="store_true",
                       help="etcd and nsqd over TLS with client certificates made for the "
                            "cluster, etcd's authentication on (needs the cryptography package)")
    start.set_defaults(run=run_start)
    stop = verbs.add_parser("stop", help="stop what start started")
    stop.add_argument("--data-dir", type=Path, default=Path(".cluster"))
    stop.set_defaults(run=run_stop)


#: The nginx site of a deployment, used as shipped but for where it listens and proxies to.
NGINX_SITE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "mr.conf"
#: The main config around the site: in the foreground, every file in the cluster's directory.
NGINX_MAIN = """\
daemon off;
{user}
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/client_body_temp;
    proxy_temp_path {directory}/proxy_temp;
    fastcgi_temp_path {directory}/fastcgi_temp;
    uwsgi_temp_path {directory}/uwsgi_temp;
    scgi_temp_path {directory}/scgi_temp;
    include {directory}/mr.conf;
}}
"""


@dataclasses.dataclass
class LocalCluster:
    """What ``start_cluster`` started: the processes, the front end's URL (and nginx's, when
    it runs), and the settings (environment variables) that point mr at this cluster."""
    processes: list[devservers.ServerProcess]
    url: str
    env: dict[str, str]
    nginx_url: str = ""

    def process(self, name: str) -> devservers.ServerProcess:
        return next(process for process in self.processes if process.name == name)

    def restart(self, name: str, sig: int = signal.SIGKILL,
                down_s: float = 0.0) -> devservers.ServerProcess:
        """Stop one process with ``sig`` (by its pid), leave it down for ``down_s``, and start
        it again as it was: the same command line, so the same ports and data directory."""
        process = self.process(name)
        process.stop(sig)
        time.sleep(down_s)
        return process.start()

    def stop(self) -> None:
        for process in reversed(self.processes):  # front end and workers before the servers
            process.stop()


def start_cluster(data_dir: Path, definitions: list[WorkflowDefinition], workers: int,
                  port: int = 0, extra_env: dict[str, str] | None = None,
                  tie_to_parent: bool = False, nginx: bool = False,
                  secure: bool = False) -> LocalCluster:
    """Start everything; with ``nginx``, the front end also listens on a unix socket behind a
    private nginx on a free loopback port (``LocalCluster.nginx_url``); with ``secure``, etcd
    and nsqd accept clients over TLS with certificates made for the cluster (in
    ``data_dir/pki``), and etcd's authentication is on (``secure_servers``)."""
    settings = Settings.load(extra_env and {**os.environ, **extra_env})
    cluster = LocalCluster([], "", {})
    security, etcd_tls, nsqd_tls = secure_servers(data_dir) if secure else ({}, None, None)

    def started(process: devservers.ServerProcess) -> devservers.ServerProcess:
        process.tie_to_parent = tie_to_parent
        cluster.processes.append(process.start())
        return process

    try:
        etcd = started(devservers.etcd(data_dir, tls=etcd_tls))
        nsqd = started(devservers.nsqd(data_dir, tls=nsqd_tls,
                                       **devservers.nsqd_timeouts(settings)))
        host, etcd_port = etcd.addresses["client"].rsplit("/", 1)[-1].split(":")
        http_port = port or devservers.free_port()
        cluster.url = f"http://{devservers.LOOPBACK}:{http_port}"
        cluster.env = {
            **(extra_env or {}),
            "MR_KV_BACKEND": "etcd", "MR_ETCD_HOST": host, "MR_ETCD_PORT": etcd_port,
            "MR_QUEUE_BACKEND": "nsq", "MR_NSQD_HOSTS": nsqd.addresses["tcp"],
            "MR_NSQD_HTTP_ADDRESSES": nsqd.addresses["http"],
            "MR_DATA_STORE_URL": str(data_dir / "data"),
            # Every process of the cluster signs and checks invocation messages with it.
            "MR_MESSAGE_SECRET": settings.message_secret or secrets.token_hex(32),
            "MR_HTTP_HOST": devservers.LOOPBACK, "MR_HTTP_PORT": str(http_port),
            **security}
        if settings.workflow_names:  # a filter: the workflows loaded here pass it
            cluster.env["MR_WORKFLOW_NAMES"] = ",".join(dict.fromkeys(
                [*(definition.name for definition in definitions), *settings.workflow_names]))
        if secure:
            enable_etcd_authentication(Settings.load(cluster.env))
        with create_kv(Settings.load(cluster.env)) as kv:
            store = EntityStore(kv, settings.kv_prefix)
            for definition in definitions:
                load_workflow(store, definition)
            if auth_required(Settings.load(cluster.env)):
                cluster.env["MR_TOKEN"] = TokenStore(kv, store.keys).admin_token()
        for number in range(1, workers + 1):
            started(_worker_process(f"worker-{number}", data_dir, cluster.env))
        socket_path = data_dir / "frontend.sock"
        binds = (["--bind", f"unix:{socket_path}", "--bind", f"{devservers.LOOPBACK}:{http_port}"]
                 if nginx else [])
        started(_mr_process("frontend", ["mr.web.gunicorn_dev", *binds], data_dir, cluster.env,
                            f"{cluster.url}/health"))
        if nginx:
            proxy = started(nginx_process(data_dir, socket_path))
            cluster.nginx_url = f"http://{proxy.addresses['http']}"
    except BaseException:
        cluster.stop()
        raise
    return cluster


def secure_servers(data_dir: Path) -> tuple[dict[str, str], devservers.EtcdTls,
                                            devservers.NsqdTls]:
    """The settings of a cluster's processes to reach TLS servers with a client certificate and
    etcd as its root user, and the servers' TLS options, certificates made on the spot."""
    try:
        from mr.devcerts import make_pki  # needs cryptography, which only this needs
    except ImportError as error:
        raise UserError(f"--secure makes certificates with the cryptography package, which is "
                        f"not installed ({error}): pip install cryptography") from None
    pki = make_pki(data_dir / "pki")
    files = {"ca": str(pki / "ca.pem"), "cert": str(pki / "client.pem"),
             "key": str(pki / "client-key.pem")}
    settings = {"MR_ETCD_IS_SSL": "1", "MR_ETCD_CA_FILE": files["ca"],
                "MR_ETCD_CERT_FILE": files["cert"], "MR_ETCD_KEY_FILE": files["key"],
                "MR_ETCD_USER": "root", "MR_ETCD_PASSWORD": secrets.token_urlsafe(24),
                "MR_NSQD_TLS": "1", "MR_NSQD_CA_FILE": files["ca"],
                "MR_NSQD_CERT_FILE": files["cert"], "MR_NSQD_KEY_FILE": files["key"]}
    server = (str(pki / "server.pem"), str(pki / "server-key.pem"), files["ca"])
    return settings, devservers.EtcdTls(*server), devservers.NsqdTls(*server)


def enable_etcd_authentication(settings: Settings) -> None:
    """Create etcd's root user with the settings' password and turn authentication on."""
    with EtcdKV(settings.etcd_host, settings.etcd_port, ssl=True, ca_file=settings.etcd_ca_file,
                cert_file=settings.etcd_cert_file, key_file=settings.etcd_key_file) as kv:
        kv.enable_authentication(settings.etcd_user, settings.etcd_password)


def _worker_process(name: str, data_dir: Path, env: dict) -> devservers.ServerProcess:
    """A worker serving its metrics on a port of its own, which also tells when it is up."""
    port = devservers.free_port()
    metrics_url = f"http://{devservers.LOOPBACK}:{port}/metrics"
    worker = _mr_process(name, ["mr.cli.main", "worker"], data_dir,
                         {**env, "MR_WORKER_METRICS_PORT": str(port)}, metrics_url)
    worker.addresses["metrics"] = metrics_url
    return worker


def _mr_process(name: str, module_arguments: list[str], data_dir: Path, env: dict,
                health_url: str | None = None) -> devservers.ServerProcess:
    return devservers.ServerProcess(name, [sys.executable, "-m", *module_arguments], data_dir,
                                    {}, health_url, env=env)


class NginxProcess(devservers.ServerProcess):
    """nginx renames its master process ("nginx: master process ..."), so the command-line check
    that guards a signal sent by pid would never recognize it. This one is signalled through the
    handle of the process it started, which cannot stand for a recycled pid until it is reaped;
    that is also why ``mr cluster`` itself does not start nginx (its stop goes by pid file)."""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = devservers.STOP_TIMEOUT_S) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._forget()


def nginx_process(data_dir: Path, socket_path: Path) -> NginxProcess:
    """nginx with the shipped site on a free loopback port, proxying to ``socket_path``; its
    config, logs and temporary files in ``data_dir/nginx``."""
    binary = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin")
    if binary is None:
        raise devservers.ServerError("nginx is not installed; run scripts/install-servers")
    directory = data_dir / "nginx"
    directory.mkdir(parents=True, exist_ok=True)
    address = f"{devservers.LOOPBACK}:{devservers.free_port()}"
    site = NGINX_SITE.read_text()
    for shipped, here in (("listen 80;", f"listen {address};"),
                          ("unix:/run/mr/gunicorn.sock", f"unix:{socket_path}")):
        if site.count(shipped) != 1:
            raise devservers.ServerError(f"{NGINX_SITE} should contain {shipped!r} once")
        site = site.replace(shipped, here)
    (directory / "mr.conf").write_text(site)
    # As root, nginx's worker would drop to "nobody", who cannot reach the cluster's directory.
    user = "user root;" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(NGINX_MAIN.format(directory=directory, user=user))
    argv = [binary, "-p", str(directory), "-c", str(directory / "nginx.conf"),
            "-e", str(directory / "error.log")]
    return NginxProcess("nginx", argv, data_dir, {"http": address}, f"http://{address}/health")


def run_start(arguments) -> int:
    """Start the cluster, then write its settings where every mr command reads them (or, with
    ``MR_CONFIG_FILE`` set empty, print them to export)."""
    data_dir: Path = arguments.data_dir.resolve()
    if devservers.running_from(data_dir):
        raise UserError(f"a cluster is already running from {data_dir}; "
                        f"stop it with: mr cluster stop --data-dir {data_dir}")
    settings_file = cluster_settings.target()
    if settings_file is not None:
        cluster_settings.check_writable(settings_file)
    try:
        definitions = [read_definition(path) for path in arguments.definitions]
        cluster = start_cluster(data_dir, definitions, arguments.workers, arguments.port,
                                secure=arguments.secure)
    except (WorkflowDefinitionError, devservers.ServerError) as error:
        raise UserError(str(error)) from None
    for process in cluster.processes:
        print(process.describe())
    served = cluster.env.get("MR_WORKFLOW_NAMES", "every workflow in its etcd")
    print(f"\nmr is serving {served} at {cluster.url}")
    if "MR_TOKEN" in cluster.env:
        print(f"admin token (every workflow; mr commands send it): {cluster.env['MR_TOKEN']}")
    connections = {**cluster.env, "MR_KV_PREFIX": Settings.load().kv_prefix,
                   "MR_URL": cluster.url}
    if settings_file is None:
        print("Settings for mr commands against this cluster:")
        print("export " + " ".join(f"{name}={connections[name]}"
                                   for name in cluster_settings.CONNECTIONS
                                   if name in connections))
        return 0
    try:
        cluster_settings.write(settings_file, data_dir, connections)
    except OSError as error:
        raise UserError(f"the cluster runs, but its settings could not be written to "
                        f"{settings_file}: {error.strerror}") from None
    print(f"mr commands find this cluster through {settings_file}, which mr cluster stop "
          f"removes")
    return 0


def run_stop(arguments) -> int:
    data_dir = arguments.data_dir.resolve()
    running = devservers.running_from(data_dir)
    if not running:
        raise UserError(f"no cluster is running from {data_dir}")
    # The front end and the workers first, so that none of them sees its servers vanish.
    servers = {"etcd", "nsqd", "nsqlookupd"}
    stopped = (devservers.stop_from_pid_files(data_dir, exclude=servers)
               + devservers.stop_from_pid_files(data_dir))
    print("stopped " + ", ".join(stopped))
    settings_file = cluster_settings.target()
    if cluster_settings.remove(settings_file, data_dir):
        print(f"removed its settings, {settings_file}")
    return 0
