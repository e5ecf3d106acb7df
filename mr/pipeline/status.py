"""``mr pipeline status``: a pipeline's steps as its records under the staging URL tell them —
state, why it ran or was skipped, timings, the request each ran as — as a table or a graphviz
graph whose nodes link to their requests."""
from __future__ import annotations

import dataclasses
import os
import socket
import time

import graphviz

from mr.pipeline import datasets
from mr.pipeline.spec import PipelineSpec

#: Fill colours of the graph's nodes, by state.
COLOURS = {"done": "palegreen", "skipped": "lightgrey", "running": "lightskyblue",
           "waiting": "white", "pending": "white", "failed": "salmon", "blocked": "khaki",
           "cancelled": "khaki", "interrupted": "orange"}
#: States that only a live runner can be in.
LIVE_STATES = ("waiting", "running")


@dataclasses.dataclass
class StepStatus:
    name: str
    job: str
    deps: list[str]
    state: str
    reason: str = ""
    request_url: str | None = None
    created_at: float | None = None
    finished_at: float | None = None
    error: str | None = None

    @property
    def duration(self) -> str:
        if self.created_at is None:
            return ""
        end = self.finished_at if self.finished_at is not None else time.time()
        return f"{end - self.created_at:.2f} s"

    @property
    def started(self) -> str:
        if self.created_at is None:
            return ""
        return time.strftime("%H:%M:%S", time.localtime(self.created_at))


def read(spec: PipelineSpec) -> tuple[dict, list[StepStatus]]:
    """The last run's record (``{}`` before any) and every step's status, in the file's order.
    A step whose runner is gone while it waited or ran is ``interrupted``."""
    run = datasets.read_json(f"{spec.staging}/pipeline.json") or {}
    runner_gone = not _runner_alive(run)
    statuses = []
    for step in spec.steps.values():
        record = datasets.read_json(spec.record_url(step.name)) or {}
        state = record.get("state", "pending")
        if state in LIVE_STATES and runner_gone:
            state = "interrupted"
        statuses.append(StepStatus(
            step.name, f"{step.workflow}/{step.job}", step.deps, state, record.get("reason", ""),
            record.get("request_url"), record.get("created_at"), record.get("finished_at"),
            record.get("error")))
    return run, statuses


def _runner_alive(run: dict) -> bool:
    """Whether the process that ran the pipeline last still runs (when it ran on this host;
    a runner elsewhere is taken to be alive)."""
    if not run.get("pid"):
        return False
    if run.get("host") != socket.gethostname():
        return True
    try:
        os.kill(run["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def as_text(spec: PipelineSpec, run: dict, statuses: list[StepStatus]) -> str:
    header = f"pipeline {spec.name} ({spec.path}), staging {spec.staging}"
    if run:
        header += f"\nlast run: {run['mode']} against {run['url']}, started " \
                  f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(run['started_at']))}"
    rows = [("STEP", "STATE", "DEPS", "STARTED", "DURATION", "REQUEST")]
    rows += [(status.name, status.state, ",".join(status.deps) or "-", status.started or "-",
              status.duration or "-", status.request_url or "-") for status in statuses]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
             for row in rows]
    notes = [f"  {status.name}: {status.error or status.reason}" for status in statuses
             if status.error or status.reason]
    return "\n".join([header, *lines, *(["why:", *notes] if notes else [])])


def as_graph(spec: PipelineSpec, statuses: list[StepStatus]) -> graphviz.Digraph:
    """The steps as nodes (name, job, state, duration; linked to their request), the
    dependencies as edges from a step to those that wait for it."""
    graph = graphviz.Digraph(spec.name, graph_attr={"label": f"pipeline {spec.name}",
                                                    "labelloc": "t", "fontname": "Helvetica"},
                             node_attr={"shape": "box", "style": "rounded,filled",
                                        "fontname": "Helvetica"})
    for status in statuses:
        label = "\n".join(filter(None, [status.name, status.job,
                                        f"{status.state} {status.duration}".strip()]))
        attributes = {"fillcolor": COLOURS.get(status.state, "white"),
                      "tooltip": status.error or status.reason or status.state}
        if status.request_url:
            attributes["URL"] = status.request_url
        graph.node(status.name, label, **attributes)
    for status in statuses:
        for dep in status.deps:
            graph.edge(dep, status.name)
    return graph
