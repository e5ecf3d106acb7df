"""``mr request get|tree|trace`` and ``mr invocation logs``: a request's invocations as they ran
(``docs/tracing.rst``), read from the KV and, for their output, the data store.

JobX's tracing scripts are thin entry points onto these (``mr.cli.jobx``):
``mr_get_invocation_flat_list`` prints the tree, ``mr_get_invocation_graph`` the graph's DOT
source, and ``mr_draw_invocation_graph`` draws it as ``request-<id>.png``.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import sys
import time
from pathlib import Path
from typing import Iterator

from mr import codec
from mr.cli.entities import (add_json_option, open_store, shared_kv_settings, show, to_json,
                             user_errors)
from mr.cli.errors import UserError
from mr.engine.engine import Engine
from mr.engine.trace import counted
from mr.engine.trace_graph import (DEFAULT_COLLAPSE_OVER, FORMATS, GraphvizMissing,
                                   collapse_option, draw)
from mr.engine.trace_tree import (DONE, FAILED, RUNNING, Collapsed, Node, RequestTrace,
                                  elapsed, read_trace, shown_children)
from mr.models import Request
from mr.models.base import valid_hex_id
from mr.service import Service

#: ANSI colours of the tree on a terminal: the failed path, and the states worth a glance.
RED, GREEN, YELLOW, RESET = "\033[31m", "\033[32m", "\033[33m", "\033[0m"
STATE_COLOURS = {DONE: GREEN, RUNNING: YELLOW, FAILED: RED}
FAILED_MARK = "✗ "


def add_request_verbs(verbs) -> None:
    """``get`` (the record, with the counters so far), ``tree`` and ``trace``."""
    get = verbs.add_parser("get", help="show one request, with its counters")
    _add_request_positionals(get)
    add_json_option(get)
    get.set_defaults(run=run_get)
    tree = verbs.add_parser(
        "tree", help="print a request's invocations as a tree: states, durations, attempts, "
                     "hosts, counters; the failed path marked")
    _add_request_positionals(tree)
    _add_collapse_option(tree)
    add_json_option(tree)
    tree.set_defaults(run=run_tree)
    trace = verbs.add_parser("trace", help="draw a request's invocation tree with graphviz")
    _add_request_positionals(trace)
    trace.add_argument("--format", choices=FORMATS, default="svg",
                       help="DOT source, or an SVG or PNG drawing (default: svg)")
    trace.add_argument("-o", "--output", metavar="FILE",
                       help="where to write it (default: request-<id>.<format> in the current "
                            "directory; '-': stdout)")
    _add_collapse_option(trace)
    trace.set_defaults(run=run_trace)


def add_invocation_verbs(verbs) -> None:
    logs = verbs.add_parser(
        "logs", help="print what an invocation's handlers wrote to stdout and stderr")
    _add_request_positionals(logs)
    logs.add_argument("invocation_id", metavar="INVOCATION_ID")
    logs.set_defaults(run=run_logs)


def _add_request_positionals(parser) -> None:
    parser.add_argument("workflow", metavar="WORKFLOW")
    parser.add_argument("request_id", metavar="REQUEST_ID")


def _add_collapse_option(parser) -> None:
    parser.add_argument("--collapse", type=_collapse, default=DEFAULT_COLLAPSE_OVER,
                        metavar="N", help="show runs of more than N sibling leaves as one line "
                                          "with their states and durations (default: "
                                          "%(default)s; 0: never)")


def _collapse(text: str) -> int:
    try:
        return collapse_option(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@contextlib.contextmanager
def _engine() -> Iterator[Engine]:
    """An engine over the configured backends that serves nothing: for reading."""
    service = Service(shared_kv_settings(), worker=False, serve=False)
    try:
        with user_errors():
            yield service.engine
    finally:
        service.stop()


def run_get(arguments) -> int:
    """The record; a request not done yet shows the counters its invocations committed."""
    with open_store() as store:
        request = store.get(Request, arguments.workflow, arguments.request_id)
        record = request.to_dict()
        if request.state != DONE:
            record["counters"] = counted(store.kv, store.keys, request) or None
    show(record, arguments.json)
    return 0


def run_tree(arguments) -> int:
    with _engine() as engine:
        trace = read_trace(engine, arguments.workflow, arguments.request_id)
    if arguments.json:
        print(to_json(trace.to_dict()))
        return 0
    colour = sys.stdout.isatty()
    for line in tree_lines(trace, arguments.collapse, colour):
        print(line)
    return 0


def tree_lines(trace: RequestTrace, collapse_over: int, colour: bool = False) -> Iterator[str]:
    """The request, its counters, then a line per invocation, two spaces deeper per level."""
    request, now = trace.request, time.time()
    took = elapsed((request.finished_at or now) - request.created_at)
    yield (f"request {request.request_id} ({request.workflow}/{request.job_name}): "
           f"{request.state}, {took}")
    if trace.counters:
        yield f"counters: {_counters(trace.counters)}"
    stack: list[tuple[Node | Collapsed, int]] = [(trace.root, 0)]
    while stack:
        item, depth = stack.pop()
        indent = "  " * depth
        if isinstance(item, Collapsed):
            yield f"{indent}- {_collapsed(item)}"
            continue
        yield indent + _node_line(item, now, colour)
        stack.extend((child, depth + 1)
                     for child in reversed(shown_children(item, collapse_over)))


def _node_line(node: Node, now: float, colour: bool) -> str:
    name = f"{node.invocation_id}" + (f" partition {node.partition}"
                                      if node.partition is not None else "")
    state = node.state
    if colour and not node.on_failed_path and state in STATE_COLOURS:
        state = f"{STATE_COLOURS[state]}{state}{RESET}"
    duration = node.duration_s(now)
    parts = [f"{name} {node.step} ({node.kind}) {state}"
             + (f" {elapsed(duration)}" if duration is not None else "")]
    if node.attempts > 1:
        parts.append(f"{node.attempts} attempts")
    run = node.last_run
    if run is not None and run.host:
        parts.append(f"on {run.host}:{run.pid}")
    if node.status:
        parts.append(f"status: {node.status}")
    if node.counters:
        parts.append(_counters(node.counters))
    if node.error:
        parts.append(f"{node.error.get('type')}: {node.error.get('message')}")
    line = " · ".join(parts)
    if not node.on_failed_path:
        return "- " + line
    return f"{RED}{FAILED_MARK}{line}{RESET}" if colour else FAILED_MARK + line


def _collapsed(collapsed: Collapsed) -> str:
    states = ", ".join(f"{state} {count:,}" for state, count in sorted(collapsed.states.items()))
    text = f"[{len(collapsed.nodes):,} leaves of step {collapsed.step}: {states}"
    durations = collapsed.durations()
    if durations:
        text += "; " + ", ".join(f"{name} {elapsed(seconds)}"
                                 for name, seconds in durations.items())
    return text + "]"


def _counters(counters: dict) -> str:
    return ", ".join(f"{group}.{name}={n}" for group, names in sorted(counters.items())
                     for name, n in sorted(names.items()))


def run_trace(arguments) -> int:
    with _engine() as engine:
        trace = read_trace(engine, arguments.workflow, arguments.request_id)
    try:
        drawing = draw(trace, arguments.format, arguments.collapse)
    except GraphvizMissing as error:
        raise UserError(str(error)) from None
    if arguments.output == "-":
        sys.stdout.buffer.write(drawing)
        sys.stdout.flush()
        return 0
    path = Path(arguments.output or f"request-{trace.request.request_id}.{arguments.format}")
    try:
        path.write_bytes(drawing)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror}") from None
    print(f"wrote {path}")
    return 0


def run_logs(arguments) -> int:
    try:
        valid_hex_id(arguments.invocation_id, "invocation id")
    except ValueError as error:
        raise UserError(str(error)) from None
    with _engine() as engine:
        trace = read_trace(engine, arguments.workflow, arguments.request_id)
        nodes = trace.find(arguments.invocation_id)
        if not nodes:
            raise UserError(f"request {arguments.request_id!r} of workflow "
                            f"{arguments.workflow!r} has no invocation "
                            f"{arguments.invocation_id!r}")
        logs = [(node, run, _read_log(engine, run.log)) for node in nodes for run in node.runs
                if run.log]
    if not logs:
        print(f"invocation {arguments.invocation_id} left no output "
              f"({', '.join(sorted({node.state for node in nodes}))})")
    for node, run, entries in logs:
        where = (f" partition {node.partition}" if node.partition is not None else "")
        started = datetime.datetime.fromtimestamp(run.started_at).isoformat(
            sep=" ", timespec="milliseconds")
        print(f"== {run.phase}{where} on {run.host}:{run.pid}, attempt {run.attempts}, "
              f"started {started} ==")
        for label, text in entries:
            print(f"--- {label} ---")
            print(text, end="" if text.endswith("\n") else "\n")
    return 0


def _read_log(engine: Engine, path: str) -> list:
    if path not in engine.data.list_tree(path.rsplit("/", 1)[0]):
        raise UserError(f"the output at {path} is not in the data store MR_DATA_STORE_URL "
                        f"names ({engine.settings.data_store_url}): it must name the store the "
                        f"workers use")
    return codec.decode(engine.data.get(path))
