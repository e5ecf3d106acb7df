"""``mr pipeline run``: a pipeline file's steps run as jobs, with checkpoints and resume.

Under the staging URL each step has a record, ``steps/<name>.json``, rewritten whole at every
change of state: the state, the request (id and link), its times, and once the step is done its
**checkpoint**: the step's definition, the versions of its job's handlers and the fingerprints
of the files it read. A step is complete when its output is committed (``_SUCCESS``) and its
checkpoint still matches all three.

Three ways to run:

- fresh (the default): the staging URL's records and temporary directories are removed and
  every step runs; an output outside the staging URL that is committed already is refused;
- ``resume``: complete steps whose dependencies are all skipped are skipped; every other step
  runs again, its temporary directories and output destroyed first;
- ``use_existing``: a step whose output is committed is skipped, checkpoint or not (Hadoopy
  Flow's ``USE_EXISTING``); the others run as with ``resume``.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable

from mr.client import ApiError, Client, ClientError
from mr.datasets import SUCCESS_MARKER
from mr.pipeline import datasets
from mr.pipeline.flow import JobRun, Pipeline, PipelineError
from mr.pipeline.spec import PipelineSpec, StepSpec

MODES = ("fresh", "resume", "use_existing")
#: Why a step without a checkpoint runs again, by the state its last run left it in.
UNFINISHED = {"failed": "its last run failed", "blocked": "its last run was blocked",
              "cancelled": "its last run was cancelled",
              "running": "its last run did not finish", "waiting": "its last run did not finish"}
#: What the file writer puts in an output directory: all that re-running a step removes.
WRITER_NAMES = ("part-*", SUCCESS_MARKER, "_temporary")


class PipelineRun:
    """One run of a pipeline file; ``report(line)`` hears of every step's progress."""

    def __init__(self, spec: PipelineSpec, *, mode: str = "fresh", url: str | None = None,
                 token: str | None = None, report: Callable[[str], None] = lambda line: None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.spec = spec
        self.mode = mode
        self.url = url or spec.url
        self.token = token
        self.report = report
        self.previous = {name: datasets.read_json(spec.record_url(name)) or {}
                         for name in spec.steps}
        #: Per step, what its checkpoint will record of the run about to start.
        self._observed: dict[str, dict[str, Any]] = {}

    def run(self) -> list[JobRun]:
        """Run every step that needs to; the runs, or JobRunFailed naming the first step that
        failed. Every check (jobs exist, outputs may be written) is made before any step runs."""
        if self.mode == "fresh":
            self._refuse_committed_outputs()
        with Pipeline(self.url, workflows=self.spec.workflows, token=self.token,
                      on_change=self._record, before_start=self._prepare) as pipeline:
            definitions = self._job_definitions(pipeline.client)
            if self.mode == "fresh":
                for directory in ("steps", "tmp"):
                    datasets.remove(f"{self.spec.staging}/{directory}")
                # a fresh run trusts nothing of the last one, but stops what it left running
                self.previous = {name: {"orphan_request_id": _orphan(record)}
                                 for name, record in self.previous.items()}
            skips = self._plan(definitions)
            datasets.write_json(f"{self.spec.staging}/pipeline.json", {
                "pipeline": self.spec.name, "file": str(self.spec.path), "mode": self.mode,
                "url": pipeline.client.url, "started_at": time.time(),
                "host": socket.gethostname(), "pid": os.getpid()})
            for name in self.spec.steps.keys() - skips.keys():
                self._write(name, {"state": "waiting",
                                   "reason": self._observed[name].get("reason", ""),
                                   "orphan_request_id": _orphan(self.previous[name])})
            runs: dict[str, JobRun] = {}
            for step in self.spec.ordered():
                runs[step.name] = pipeline.run(
                    step.workflow, step.job, input=step.input, output=step.output,
                    name=step.name, after=[runs[dep] for dep in step.deps],
                    skip=skips.get(step.name, ""))
            return pipeline.wait()

    def _refuse_committed_outputs(self) -> None:
        for step in self.spec.steps.values():
            url = step.output["url"]
            if not datasets.overlaps(url, self.spec.staging) and datasets.committed(url):
                raise PipelineError(
                    f"step {step.name!r}: output {url} holds a committed result already; run "
                    f"with --resume or --use-existing, or remove it")

    def _job_definitions(self, client: Client) -> dict[str, dict]:
        """Each step's job as the server defines it now; a missing job stops everything."""
        definitions = {}
        for step in self.spec.steps.values():
            try:
                definitions[step.name] = client.job(step.workflow, step.job)
            except ApiError as error:
                raise PipelineError(f"step {step.name!r}: {error.details.get('message', error)}"
                                    ) from None
            self._observed[step.name] = {"handler_versions":
                                         definitions[step.name]["handler_versions"]}
        return definitions

    def _plan(self, definitions: dict[str, dict]) -> dict[str, str]:
        """Step name -> why it is skipped, for the steps that are."""
        skips: dict[str, str] = {}
        for step in self.spec.ordered():
            if self.mode == "use_existing":
                if datasets.committed(step.output["url"]):
                    skips[step.name] = "its output exists"
                continue
            if self.mode == "resume":
                stale = self._stale(step, definitions[step.name], skips)
                if stale:
                    self._observed[step.name]["reason"] = stale
                else:
                    skips[step.name] = "its checkpoint matches"
        return skips

    def _stale(self, step: StepSpec, definition: dict, skips: dict[str, str]) -> str:
        """Why the step must run again; empty when it is complete and its checkpoint holds."""
        rerun = [dep for dep in step.deps if dep not in skips]
        if rerun:
            return f"{', '.join(rerun)} runs again"
        previous = self.previous[step.name]
        checkpoint = previous.get("checkpoint")
        if checkpoint is None:
            return UNFINISHED.get(previous.get("state"), "it has no checkpoint")
        if not datasets.committed(step.output["url"]):
            return "its output is not committed"
        if checkpoint["definition"] != step.definition():
            return "its definition changed"
        changed = sorted(name for name in {*checkpoint["handler_versions"],
                                           *definition["handler_versions"]}
                         if checkpoint["handler_versions"].get(name)
                         != definition["handler_versions"].get(name))
        if changed:
            return f"handler {', '.join(changed)} changed"
        try:
            inputs = datasets.fingerprint(step.input["url"])
        except datasets.DatasetError:
            return "its input is gone"
        if checkpoint["inputs"] != inputs:
            return "its input changed"
        return ""

    # Called by the pipeline, from the steps' threads

    def _prepare(self, run: JobRun) -> None:
        """Just before a step's request: stop what a killed run of it left running, give it
        empty temporary directories and remove its old output; note what it reads."""
        step = self.spec.steps[run.name]
        orphan = _orphan(self.previous[run.name])
        if orphan and self.url:
            self._cancel_orphan(step, orphan)
        for url in step.tmp_dirs.values():
            datasets.recreate(url)
        for name in WRITER_NAMES:
            datasets.remove(f"{step.output['url']}/{name}")
        observed = self._observed[run.name]
        observed["inputs"] = datasets.fingerprint(step.input["url"])
        run.reason = observed.get("reason", "")

    def _cancel_orphan(self, step: StepSpec, request_id: str) -> None:
        try:
            Client(self.url, self.token).cancel(step.workflow, request_id)
        except ClientError:
            pass  # finished and removed, or the server is another one now

    def _record(self, run: JobRun) -> None:
        """Write the step's record whole: what it is doing, and once done its checkpoint."""
        step = self.spec.steps[run.name]
        record = {"state": run.state, "reason": run.reason, "request_id": run.request_id,
                  "request_url": run.request_url, "created_at": run.created_at,
                  "finished_at": run.finished_at,
                  "error": None if run.error is None else str(run.error)}
        if run.state == "skipped":
            previous = self.previous[run.name]
            record.update({key: previous.get(key) for key in
                           ("request_id", "request_url", "created_at", "finished_at",
                            "checkpoint")})
        elif run.state == "done":
            record["checkpoint"] = {"definition": step.definition(), **self._observed[run.name]}
            record["checkpoint"].pop("reason", None)
        self._write(run.name, record)
        self.report(_progress(run))

    def _write(self, name: str, record: dict[str, Any]) -> None:
        step = self.spec.steps[name]
        datasets.write_json(self.spec.record_url(name), {
            "step": name, "job": f"{step.workflow}/{step.job}", "deps": step.deps, **record})


def _orphan(record: dict) -> str | None:
    """The request a killed runner left running for this step, if any."""
    if record.get("state") == "running":
        return record.get("request_id")
    return record.get("orphan_request_id")


def _progress(run: JobRun) -> str:
    line = f"step {run.name}: {run.state}"
    if run.state == "running":
        line += f" (request {run.request_id}{'; ' if run.reason else ''}{run.reason})"
    if run.state == "skipped":
        line += f" ({run.reason})"
    if run.state == "done" and run.created_at is not None:
        line += f" in {run.finished_at - run.created_at:.2f} s"
    if run.error is not None:
        line += f": {run.error}"
    return line
