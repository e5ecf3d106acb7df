"""``mr servers``: start and stop local etcd, nsqd and nsqlookupd for development.

``start`` runs the servers in the background with their data, logs and pid files in one
directory and prints their addresses and the settings that point mr at them; ``stop`` stops
exactly the processes whose pid files are in that directory.
"""
from __future__ import annotations

from pathlib import Path

from mr import devservers
from mr.cli.errors import UserError
from mr.settings import Settings

#: The servers' usual ports, so that the printed settings match mr's defaults.
DEFAULT_PORTS = {"etcd": (2379, 2380), "nsqlookupd": (4160, 4161), "nsqd": (4150, 4151)}


def register(subparsers) -> None:
    parser = subparsers.add_parser("servers", help="start or stop local etcd and nsqd servers")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    start = verbs.add_parser("start", help="start etcd, nsqlookupd and nsqd in the background")
    start.add_argument("--data-dir", type=Path, required=True,
                       help="directory for the servers' data, logs and pid files")
    start.add_argument("--free-ports", action="store_true",
                       help="use free ports instead of the usual ones (2379, 4150, 4160, ...)")
    start.set_defaults(run=run_start)
    stop = verbs.add_parser("stop", help="stop the servers started with --data-dir")
    stop.add_argument("--data-dir", type=Path, required=True)
    stop.set_defaults(run=run_stop)


def run_start(arguments) -> int:
    data_dir: Path = arguments.data_dir.resolve()
    if devservers.running_from(data_dir):
        raise UserError(f"servers are already running from {data_dir}; "
                        f"stop them first with: mr servers stop --data-dir {data_dir}")

    def ports(name):
        return (0, 0) if arguments.free_ports else DEFAULT_PORTS[name]

    settings = Settings.load()
    started = []
    try:
        started.append(devservers.etcd(data_dir, *ports("etcd")).start())
        lookupd = devservers.nsqlookupd(data_dir, *ports("nsqlookupd")).start()
        started.append(lookupd)
        started.append(devservers.nsqd(
            data_dir, *ports("nsqd"), **devservers.nsqd_timeouts(settings),
            lookupd_tcp_address=lookupd.addresses["tcp"]).start())
    except devservers.ServerError as error:
        for server in started:
            server.stop()
        raise UserError(str(error)) from None
    etcd, _, nsqd = started
    for server in started:
        print(server.describe())
    host, port = etcd.addresses["client"].rsplit("/", 1)[-1].split(":")
    print("\nSettings for mr:")
    print("export MR_KV_BACKEND=etcd MR_QUEUE_BACKEND=nsq")
    print(f"export MR_ETCD_HOST={host} MR_ETCD_PORT={port}")
    print(f"export MR_NSQD_HOSTS={nsqd.addresses['tcp']}")
    print(f"export MR_NSQLOOKUPD_HTTP_ADDRESSES={lookupd.addresses['http']}")
    return 0


def run_stop(arguments) -> int:
    stopped = devservers.stop_from_pid_files(arguments.data_dir.resolve())
    if not stopped:
        raise UserError(f"no servers were started from {arguments.data_dir}")
    print("stopped " + ", ".join(stopped))
    return 0
