"""``mr pipeline run FILE [--resume | --use-existing]`` and ``mr pipeline status FILE``: the
steps of a ``pipeline.yaml`` run as jobs, with checkpoints under its staging URL
(``docs/pipelines.rst``).

Without ``--url``, ``url:`` in the file or ``MR_URL`` (which ``mr cluster start`` writes) a
pipeline runs against a private ``mr run`` of the file's ``workflows``, started for the run and
stopped after it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import graphviz

from mr.cli.errors import UserError
from mr.devservers import ServerError
from mr.pipeline import JobRunFailed, PipelineError
from mr.pipeline import spec as pipeline_spec
from mr.pipeline import status as pipeline_status
from mr.pipeline.runner import PipelineRun
from mr.settings import Settings

STATUS_FORMATS = ("text", "dot", "svg")


def register(subparsers) -> None:
    parser = subparsers.add_parser("pipeline", help="run a pipeline of jobs from a "
                                                    "pipeline.yaml, and show its progress")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    run = verbs.add_parser("run", help="run the steps of a pipeline file")
    run.add_argument("file", type=Path, metavar="FILE")
    modes = run.add_mutually_exclusive_group()
    modes.add_argument("--resume", dest="mode", action="store_const", const="resume",
                       help="skip the steps whose checkpoint still matches; run the others "
                            "again")
    modes.add_argument("--use-existing", dest="mode", action="store_const",
                       const="use_existing", help="skip every step whose output exists")
    run.add_argument("--url", help="a running mr to use (default: the file's url, else "
                                   "MR_URL, else a private mr run of its workflows)")
    run.add_argument("--token", help="bearer token sent to that mr (default: MR_TOKEN)")
    run.set_defaults(run=run_pipeline, mode="fresh")
    status = verbs.add_parser("status", help="the steps of a pipeline's last run: states, "
                                             "timings, requests")
    status.add_argument("file", type=Path, metavar="FILE")
    status.add_argument("--format", choices=STATUS_FORMATS, default="text",
                        help="text (default), or the graph as graphviz dot or SVG")
    status.set_defaults(run=show_status)


def _load(path: Path) -> pipeline_spec.PipelineSpec:
    try:
        return pipeline_spec.load(path)
    except PipelineError as error:
        raise UserError(str(error)) from None


def run_pipeline(arguments) -> int:
    spec = _load(arguments.file)
    settings = Settings.load()
    runner = PipelineRun(spec, mode=arguments.mode,
                         url=arguments.url or spec.url or settings.url or None,
                         token=arguments.token or settings.token or None,
                         report=lambda line: print(line, flush=True))
    try:
        runs = runner.run()
    except JobRunFailed as failure:
        print(f"mr: pipeline {spec.name} failed: {failure}", file=sys.stderr)
        return 1
    except (PipelineError, ServerError) as error:
        raise UserError(str(error)) from None
    ran = sum(run.state == "done" for run in runs)
    print(f"pipeline {spec.name}: {ran} steps ran, {len(runs) - ran} skipped")
    return 0


def show_status(arguments) -> int:
    spec = _load(arguments.file)
    run, statuses = pipeline_status.read(spec)
    if arguments.format == "text":
        print(pipeline_status.as_text(spec, run, statuses))
        return 0
    graph = pipeline_status.as_graph(spec, statuses)
    if arguments.format == "dot":
        print(graph.source)
        return 0
    try:
        sys.stdout.buffer.write(graph.pipe(format="svg"))
    except graphviz.ExecutableNotFound:
        raise UserError("drawing SVG needs graphviz's dot: run scripts/install-servers") from None
    return 0
