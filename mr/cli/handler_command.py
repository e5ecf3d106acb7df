"""``mr handler``: one handler at a time (``mr handlers sync`` stores a directory of them).

``create`` takes either a handler file (``--file``: description and metadata from its docstring,
as ``mr handlers sync`` reads it), or, as JobX's ``mr_kv_handler_create``, the metadata as
arguments and the bare source on stdin. Either way the source must compile before it is stored.
"""
from __future__ import annotations

import sys
from pathlib import Path

from mr.cli.entities import (add_delete, add_get, add_json_option, add_list, create_and_show,
                             first_line)
from mr.cli.errors import UserError
from mr.cli.handler_files import read_handler_file
from mr.handlers import HandlerFormatError, compile_handler
from mr.models import Handler
from mr.models.handler import SOURCE_TYPES
from mr.models.names import GENERAL_CAPABILITY

#: What --file supplies, so that it may not also be given on the command line.
FROM_FILE = ("description", "source_type", "handler_type", "arguments", "capability")


def register(subparsers) -> None:
    parser = subparsers.add_parser("handler", help="create, show, list and delete handlers")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = verbs.add_parser(
        "create", help="create a handler from a handler file, or from arguments and stdin",
        usage="%(prog)s WORKFLOW NAME --file HANDLER_FILE\n"
              "       %(prog)s WORKFLOW NAME DESCRIPTION SOURCE_TYPE HANDLER_TYPE "
              "-a NAME TYPE [-r CAPABILITY] < SOURCE")
    create.add_argument("workflow", metavar="WORKFLOW")
    create.add_argument("name", metavar="NAME")
    create.add_argument("description", nargs="?", metavar="DESCRIPTION")
    create.add_argument("source_type", nargs="?", metavar="SOURCE_TYPE",
                        help=f"one of {', '.join(SOURCE_TYPES)}")
    create.add_argument("handler_type", nargs="?", metavar="HANDLER_TYPE",
                        help="mapper, combiner or reducer")
    create.add_argument("-a", "--argument", dest="arguments", nargs=2, action="append",
                        metavar=("NAME", "TYPE"),
                        help="an argument (mapper: arguments list; others: results list)")
    create.add_argument("-r", "--required-capability", dest="capability",
                        help=f"the workers that may run it (default: {GENERAL_CAPABILITY})")
    create.add_argument("--file", type=Path, metavar="HANDLER_FILE",
                        help="a handler file; its docstring gives everything but the name")
    add_json_option(create)
    create.set_defaults(run=run_create)
    add_get(verbs, Handler)
    add_list(verbs, Handler, lambda handler: "\t".join(
        [handler["name"], handler["handler_type"], handler["required_capability"],
         handler["version"][:12], first_line(handler["description"])]), omit=("source_code",))
    add_delete(verbs, Handler)


def run_create(arguments) -> int:
    given = [option for option in FROM_FILE if getattr(arguments, option) is not None]
    if arguments.file is not None:
        if given:
            raise UserError(f"--file gives the handler's {', '.join(given)}; do not give them "
                            f"too")
        return create_and_show(
            lambda: read_handler_file(arguments.file, arguments.workflow, arguments.name),
            arguments.json)
    missing = [option for option in FROM_FILE[:3] if getattr(arguments, option) is None]
    if missing:
        raise UserError(f"give --file HANDLER_FILE, or {', '.join(m.upper() for m in missing)} "
                        f"with the source on stdin")
    if sys.stdin.isatty():
        raise UserError("pipe the handler's source on stdin, or give --file HANDLER_FILE")
    return create_and_show(lambda: _compiled(Handler(
        workflow=arguments.workflow, name=arguments.name, description=arguments.description,
        source_type=arguments.source_type, handler_type=arguments.handler_type,
        argument_spec=[list(pair) for pair in arguments.arguments or []],
        required_capability=arguments.capability, source_code=sys.stdin.read())),
        arguments.json)


def _compiled(handler: Handler) -> Handler:
    """``handler``, once its Python source compiled (nothing of it runs)."""
    if handler.source_type == "python":
        try:
            compile_handler(handler.source_code, handler.handler_type, handler.name)
        except HandlerFormatError as error:
            raise UserError(str(error)) from None
    return handler
