"""``mr``: parses the command line and runs one subcommand.

Each subcommand module has ``register(subparsers)``, which adds its parser and sets ``run`` to a
function of the parsed arguments returning an exit status. A user error is a one-line message
and exit status 2, never a traceback.
"""
from __future__ import annotations

# Every mr process is a gevent process: the standard library is patched before anything else
# imports it, so that sockets, locks and sleeps cooperate instead of blocking the event loop.
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import sys  # noqa: E402

from mr.cli import (cluster, data_command, demo, etcd_command, handler_command,  # noqa: E402
                    handlers_command, jobs, local, notifications_command, pipeline_command,
                    processes, runs, servers, settings_command, steps, submit, token_command,
                    workflows)
from mr.cli.errors import UserError  # noqa: E402
from mr.settings import SettingsError  # noqa: E402

COMMANDS = (settings_command, servers, workflows, jobs, steps, handler_command, handlers_command,
            submit, runs, local, processes, cluster, demo, etcd_command, data_command,
            pipeline_command, token_command, notifications_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mr", description="mr, a distributed MapReduce service")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.run(arguments)
    except (UserError, SettingsError) as error:
        print(f"mr: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
