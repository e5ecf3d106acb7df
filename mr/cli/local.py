"""``mr local map|combine|reduce HANDLER_FILE``: run one handler file over line-delimited JSON
pairs, without any server, in the executor a worker uses, so that it behaves as in production.
``mr info HANDLER_FILE``: the file's metadata and the version the KV would store it as.

Each line is one ``[key, value]`` pair. With ``sort`` between them, the verbs are a step, run
the way Hadoop streaming runs one::

    mr local map count_map.py < docs.jsonl | LC_ALL=C sort | mr local reduce count_reduce.py

Each run is one invocation over all of its input, with a session of its own (``--session``
gives its starting content; a non-empty session is printed on stderr at the end).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable, TextIO

from mr import codec
from mr.cli.entities import to_json
from mr.cli.errors import UserError
from mr.cli.handler_files import read_handler_file
from mr.executor import ExecutorPool, Outcome, Task
from mr.handlers import MrConfigureToMap, MrConfigureToReturn
from mr.models import Handler
from mr.settings import Settings

#: verb, the handler type it runs, what it does.
VERBS = (
    ("map", "mapper", "run a mapper over the pairs on stdin: its pairs on stdout, its first "
                      "yield (MrConfigureToMap or MrConfigureToReturn) on stderr"),
    ("combine", "combiner", "run a combiner over a mapper's pairs: one [key, value] line per "
                            "value it keeps"),
    ("reduce", "reducer", "run a reducer over sorted pairs, grouping consecutive equal keys"),
)
VERB_OF = {handler_type: verb for verb, handler_type, _ in VERBS}
#: A handler belongs to a workflow; a local run has none, and the version does not depend on it.
LOCAL_WORKFLOW = "local"
INFO_FIELDS = ("name", "description", "argument_spec", "source_type", "handler_type",
               "required_capability", "version")


def register(subparsers) -> None:
    local = subparsers.add_parser(
        "local", help="run a handler file over JSON-lines pairs, without servers")
    verbs = local.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, handler_type, description in VERBS:
        parser = verbs.add_parser(verb, help=description, description=description)
        parser.add_argument("handler_file", type=Path, metavar="HANDLER_FILE")
        parser.add_argument("--session", type=_json_object, default={}, metavar="JSON",
                            help="the session the handler starts with, a JSON object "
                                 "(default: empty)")
        parser.set_defaults(run=run_local, handler_type=handler_type)
    info = subparsers.add_parser(
        "info", help="print a handler file's metadata and version as JSON")
    info.add_argument("handler_file", type=Path, metavar="HANDLER_FILE")
    info.set_defaults(run=run_info)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def run_info(arguments) -> int:
    record = read_handler_file(arguments.handler_file, LOCAL_WORKFLOW).to_dict()
    print(to_json({field: record[field] for field in INFO_FIELDS}))
    return 0


def run_local(arguments) -> int:
    handler = read_handler_file(arguments.handler_file, LOCAL_WORKFLOW)
    if handler.handler_type != arguments.handler_type:
        raise UserError(f"{arguments.handler_file} is a {handler.handler_type}; run it with "
                        f"mr local {VERB_OF[handler.handler_type]}")
    pairs = read_pairs(sys.stdin)
    inputs = (group_consecutive(pairs) if handler.handler_type == "reducer"
              else [pair for _, pair in pairs])
    outcome = _run(handler, inputs, arguments.session)
    sys.stderr.write(outcome.stdout + outcome.stderr)
    if not outcome.ok:
        error = outcome.error
        sys.stderr.write(error["traceback"] or f"{error['type']}: {error['message']}\n")
        return 1
    if outcome.directive is not None:
        print(f"# {_directive(outcome.directive)!r}", file=sys.stderr)
    lines = [_json_line(pair, handler) for pair in _output_pairs(handler, outcome.pairs)]
    sys.stdout.writelines(lines)
    if outcome.session:
        print(f"# session: {to_json(outcome.session, indent=None)}", file=sys.stderr)
    return 0


def _run(handler: Handler, inputs: list, session: dict) -> Outcome:
    """One invocation, in a pool of one child made as a worker makes its pool (same timeout,
    scope factory and ``FS``): the executor of production, not a look-alike."""
    task = Task(workflow=handler.workflow, handler_name=handler.name,
                handler_version=handler.version, source_type=handler.source_type,
                source_code=handler.source_code, handler_type=handler.handler_type,
                inputs=inputs, required_capability=handler.required_capability, session=session)
    settings = Settings.load()
    with ExecutorPool.from_settings(settings, size=1) as pool:
        try:
            return pool.run(task)
        except codec.CodecError as error:
            raise UserError(f"the input cannot be passed to the handler: {error}") from None


def read_pairs(lines: TextIO) -> list[tuple[int, list]]:
    """The ``[key, value]`` pair of each non-blank line, with its line number."""
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            pair = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"<stdin>:{number}: not JSON: {error.msg}") from None
        if not (isinstance(pair, list) and len(pair) == 2):
            raise UserError(f"<stdin>:{number}: expected a [key, value] pair, got "
                            f"{line.strip():.80}")
        pairs.append((number, pair))
    return pairs


def group_consecutive(pairs: Iterable[tuple[int, list]]) -> list[list]:
    """A reducer's ``results``: ``[key, [value, ...]]`` per run of equal keys (equal as JSON,
    object keys in any order), as Hadoop streaming groups. A key that comes back after another
    one means the input was not sorted, which would silently split its group: an error."""
    groups: list[list] = []
    seen: set[str] = set()
    current = None
    for number, (key, value) in pairs:
        identity = json.dumps(key, sort_keys=True)
        if identity != current:
            if identity in seen:
                raise UserError(f"<stdin>:{number}: key {identity:.80} comes again after other "
                                f"keys: the input is not sorted (pipe it through LC_ALL=C sort)")
            seen.add(identity)
            current = identity
            groups.append([key, []])
        groups[-1][1].append(value)
    return groups


def _directive(directive: dict) -> MrConfigureToMap | MrConfigureToReturn:
    if directive["kind"] == "map":
        return MrConfigureToMap(directive["step"])
    return MrConfigureToReturn()


def _output_pairs(handler: Handler, pairs: list) -> Iterable[list]:
    """A combiner's ``[key, [values]]`` come out as one pair per value, like a mapper's, so
    that ``map | combine | sort | reduce`` regroups them as a worker does."""
    if handler.handler_type != "combiner":
        return pairs
    return ([key, value] for key, values in pairs for value in values)


def _json_line(pair: list, handler: Handler) -> str:
    try:
        return json.dumps(pair) + "\n"
    except (TypeError, ValueError) as error:
        raise UserError(f"{handler.handler_type} {handler.name!r} produced {pair!r:.80}, which "
                        f"JSON cannot hold: {error}") from None
