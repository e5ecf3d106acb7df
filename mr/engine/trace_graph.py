"""A request's trace drawn with graphviz: a box per invocation, coloured by its state.

The request sits on top, with its job, state, duration and counters; below it the root
invocation and its tree. The failed path is red and bold. Runs of more than ``collapse_over``
sibling leaves are one box (``mr.engine.trace_tree.shown_children``), so a request with 10,000
children draws as fast as one with a dozen.
"""
from __future__ import annotations

import re
import time

import graphviz

from mr.engine.trace_tree import (CANCELLED, DONE, FAILED, QUEUED, RUNNING, Collapsed, Node,
                                  RequestTrace, elapsed, shown_children)

#: Sibling leaves in a run longer than this are drawn as one box, unless told otherwise.
DEFAULT_COLLAPSE_OVER = 10
FORMATS = ("dot", "svg", "png")
FILL = {DONE: "#c8e6c9", RUNNING: "#fff59d", QUEUED: "#eeeeee", FAILED: "#ef9a9a",
        CANCELLED: "#f5f5f5"}
COLLAPSED_FILL = "#bbdefb"
FAILED_LINE = "#c62828"
#: Counters shown on the request's box; the tree and the status document have them all.
SHOWN_COUNTERS = 8


def collapse_option(text: str) -> int:
    """A ``collapse`` option as given: a number of leaves, >= 0; ValueError otherwise."""
    if not re.fullmatch(r"[0-9]+", text):
        raise ValueError(f"expected a number of leaves >= 0, got {text!r}")
    return int(text)


class GraphvizMissing(Exception):
    """graphviz's ``dot`` program, which lays out and renders the drawing, is not installed."""


def draw(trace: RequestTrace, fmt: str, collapse_over: int = DEFAULT_COLLAPSE_OVER) -> bytes:
    """The drawing in ``fmt`` (one of FORMATS): DOT source, SVG or PNG."""
    graph = digraph(trace, collapse_over)
    if fmt == "dot":
        return graph.source.encode()
    try:
        return graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise GraphvizMissing("graphviz's dot program is not installed (Debian: apt-get "
                              "install graphviz), so the trace cannot be drawn as "
                              f"{fmt}; --format dot writes its source") from None


def digraph(trace: RequestTrace, collapse_over: int) -> graphviz.Digraph:
    request, now = trace.request, time.time()
    graph = graphviz.Digraph(f"request-{request.request_id}", graph_attr={
        "rankdir": "TB", "tooltip": f"request {request.request_id}"}, node_attr={
        "shape": "box", "style": "rounded,filled", "fontname": "Helvetica", "fontsize": "10"},
        edge_attr={"arrowsize": "0.6"})
    duration = (request.finished_at or now) - request.created_at
    lines = [f"request {request.request_id[:12]}", f"{request.workflow} / {request.job_name}",
             f"{request.state} · {elapsed(duration)}",
             *(f"{group}.{name} = {n}" for group, names in sorted(trace.counters.items())
               for name, n in sorted(names.items()))][:3 + SHOWN_COUNTERS]
    graph.node("request", "\n".join(lines), shape="note",
               fillcolor=FILL.get(request.state, FILL[RUNNING]))
    graph.edge("request", _name(trace.root), **_line(trace.root))
    stack = [trace.root]
    while stack:
        node = stack.pop()
        graph.node(_name(node), _label(node, now), fillcolor=FILL[node.state],
                   **({"color": FAILED_LINE, "penwidth": "2"} if node.on_failed_path else {}),
                   tooltip=node.label)
        for child in shown_children(node, collapse_over):
            if isinstance(child, Collapsed):
                graph.node(f"c{child.first_id}", _collapsed_label(child),
                           fillcolor=COLLAPSED_FILL, peripheries="2")
                graph.edge(_name(node), f"c{child.first_id}")
            else:
                graph.edge(_name(node), _name(child), **_line(child))
                stack.append(child)
    return graph


def _name(node: Node) -> str:
    return f"i{node.invocation_id}" + (f"p{node.partition}" if node.partition is not None
                                       else "")


def _line(node: Node) -> dict[str, str]:
    return {"color": FAILED_LINE, "penwidth": "2"} if node.on_failed_path else {}


def _label(node: Node, now: float) -> str:
    title = (f"{node.step} · partition {node.partition}" if node.partition is not None
             else f"{node.step} · {node.kind}")
    duration = node.duration_s(now)
    lines = [title, " · ".join([node.invocation_id[:12], node.state,
                                *([elapsed(duration)] if duration is not None else [])])]
    run = node.last_run
    if run is not None and run.host:
        lines.append(f"{run.host}:{run.pid}"
                     + (f" · {node.attempts} attempts" if node.attempts > 1 else ""))
    if node.error:
        lines.append(f"{node.error.get('type')}: {node.error.get('message', '')}"[:60])
    elif node.status:
        lines.append(node.status[:60])
    return "\n".join(lines)


def _collapsed_label(collapsed: Collapsed) -> str:
    states = ", ".join(f"{state} {count:,}" for state, count in sorted(collapsed.states.items()))
    lines = [f"{len(collapsed.nodes):,} × {collapsed.step} · leaf", states]
    durations = collapsed.durations()
    if durations:
        lines.append(" · ".join(f"{name} {elapsed(seconds)}"
                                for name, seconds in durations.items()))
    return "\n".join(lines)
