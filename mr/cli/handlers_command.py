"""``mr handlers sync WORKFLOW DIR``: store a directory of handler files into a workflow.

JobX's ``mr_kv_handler_store WORKFLOW PATH [-s] [-f]`` is the same command (mr.cli.jobx).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from mr.cli.entities import open_store
from mr.cli.errors import UserError
from mr.handlers.sync import HandlerSyncError, sync_handlers


def register(subparsers) -> None:
    parser = subparsers.add_parser("handlers", help="store handler files into a workflow")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    sync = verbs.add_parser(
        "sync", help="create new, update changed and delete removed handlers of a workflow "
                     "from a directory of handler files (all or nothing)")
    sync.add_argument("workflow")
    sync.add_argument("directory", type=Path)
    sync.add_argument("-s", "--simulate", "--simulate_only", action="store_true",
                      help="show what would change, change nothing")
    sync.add_argument("-f", "--force", "--force_update", action="store_true",
                      help="update every handler, changed or not")
    sync.add_argument("--json", action="store_true", help="print the report as JSON")
    sync.set_defaults(run=run_sync)


def run_sync(arguments) -> int:
    if not arguments.directory.is_dir():
        raise UserError(f"{arguments.directory} is not a directory")
    try:
        with open_store() as store:
            report = sync_handlers(store, arguments.workflow, arguments.directory,
                                   force=arguments.force, simulate=arguments.simulate)
    except HandlerSyncError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        raise UserError(f"{len(error.problems)} invalid handler file(s); nothing was "
                        f"changed") from None
    if arguments.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
        return 0
    for action in ("created", "updated", "deleted", "unchanged"):
        for name in getattr(report, action):
            print(f"{action:10} {name}")
    for name, users in report.kept.items():
        print(f"{'kept':10} {name}: no file, but used by {', '.join(users)}")
    if arguments.simulate:
        print("simulated: nothing was changed")
    return 0
