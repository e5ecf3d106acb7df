"""``Pipeline``: jobs run in parallel as far as the data they read allows (Hadoopy Flow's model).

A program calls ``p.run(workflow, job, input=..., output=...)`` for each job, in the order a
sequential script would run them, and each call returns at once. The pipeline records every
output a job will write; a job starts as soon as none of what it reads is such a pending output,
so independent jobs run side by side with no graph written by hand. ``p.read(url)`` waits for
the output it names, and ``p.wait()`` for every job, raising the first failure.

Jobs run through mr's HTTP API (:class:`mr.client.Client`), against a cluster's front end or,
given no URL, a private ``mr run`` started for the pipeline's lifetime.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any, Callable

from mr.client import Cancelled, Client, ClientError, JobFailed
from mr.pipeline import datasets
from mr.pipeline.embedded import EmbeddedServer

#: The states of a job run; the last five are final.
STATES = ("waiting", "running", "done", "skipped", "failed", "blocked", "cancelled")
FINAL_STATES = STATES[2:]
SUCCEEDED_STATES = ("done", "skipped")
#: The states ``wait`` raises for (a blocked run only follows from one of them).
FAILED_STATES = ("failed", "cancelled")


class PipelineError(Exception):
    """A pipeline that cannot run as written, or a job of it that failed."""


class JobRunFailed(PipelineError):
    """A job of the pipeline failed: ``run`` says which, with its request."""

    def __init__(self, run: "JobRun", cause: Exception):
        self.run = run
        self.cause = cause
        request = f" (request {run.request_id})" if run.request_id else ""
        super().__init__(f"{run.label}{request} failed: {cause}")


@dataclasses.dataclass(eq=False)
class JobRun:
    """One job of a pipeline: what it reads and writes, what it waits for, how it went.
    ``created_at``/``finished_at`` are the request's own (the server's clock)."""
    name: str
    workflow: str
    job: str
    input: dict[str, str]
    output: dict[str, str]
    deps: list["JobRun"] = dataclasses.field(repr=False)
    state: str = "waiting"
    request_id: str | None = None
    request_url: str | None = None
    created_at: float | None = None
    finished_at: float | None = None
    error: Exception | None = None
    #: Why it is skipped, or why it runs: for people reading the pipeline's status.
    reason: str = ""
    finished_event: threading.Event = dataclasses.field(default_factory=threading.Event,
                                                        repr=False)

    @property
    def label(self) -> str:
        return f"job {self.name!r} ({self.workflow}/{self.job})"

    @property
    def succeeded(self) -> bool:
        return self.state in SUCCEEDED_STATES

    def wait(self) -> "JobRun":
        self.finished_event.wait()
        return self


class Pipeline:
    """Jobs over mr at ``url``; given none, a private ``mr run`` of the ``workflows``
    definition directories. ``use_existing``: a job whose output is committed already is
    skipped (Hadoopy Flow's ``USE_EXISTING``): fix a failed job, remove its output, run the
    program again, and only the missing work runs.

    ``on_change(run)`` is called whenever a job changes state; ``before_start(run)``, in the
    job's own thread, just before its request is submitted."""

    def __init__(self, url: str | None = None, *, workflows: list[str | Path] = (),
                 token: str | None = None, use_existing: bool = False,
                 on_change: Callable[[JobRun], None] | None = None,
                 before_start: Callable[[JobRun], None] | None = None):
        self._server = None if url else EmbeddedServer(list(workflows)).start()
        self.client = Client(url or self._server.url, token)
        self.use_existing = use_existing
        self.runs: list[JobRun] = []
        self._on_change = on_change
        self._before_start = before_start
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._failure_raised = False

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        """The end of the flow: wait for it (raising its failure, unless ``wait`` raised it
        already), then close. After an exception, close at once."""
        try:
            if exc_type is None:
                if self._failure_raised:
                    self._join()
                else:
                    self.wait()
        finally:
            self.close()

    def run(self, workflow: str, job: str, *, input: str | dict, output: str | dict,
            name: str | None = None, after: list[JobRun] = (), skip: str = "") -> JobRun:
        """Start ``job`` as soon as what it reads is written; its run, at once. ``input`` and
        ``output`` are URLs, or ``{"url", "format"}`` (text input, jsonl output by default).
        ``after``: runs it waits for besides those whose output it reads. ``skip``: a reason
        not to run it at all (its output stands as it is)."""
        input_spec = _spec(input, "text")
        output_spec = _spec(output, "jsonl")
        with self._lock:
            for earlier in self.runs:
                if earlier.output["url"] == output_spec["url"]:
                    raise PipelineError(f"{earlier.label} writes {output_spec['url']} already")
            writers = [earlier for earlier in self.runs
                       if datasets.overlaps(input_spec["url"], earlier.output["url"])]
            run = JobRun(name or f"{job}-{len(self.runs) + 1}", workflow, job, input_spec,
                         output_spec, list(dict.fromkeys([*after, *writers])))
            if not skip and self.use_existing and datasets.committed(output_spec["url"]):
                skip = "its output exists"
            self.runs.append(run)
        if skip:
            run.reason = skip
            self._finish(run, "skipped")
            return run
        thread = threading.Thread(target=self._drive, args=(run,), daemon=True,
                                  name=f"pipeline {run.name}")
        self._threads.append(thread)
        thread.start()
        return run

    def read(self, url: str, format: str | None = None) -> list[list]:
        """The pairs at ``url``, once the job writing it (if any) has: a read of a pending
        output waits for it. ``format``: the file writer's, by default that of the job that
        writes it, else jsonl."""
        url = datasets.absolute(url)
        with self._lock:
            writers = [run for run in self.runs if datasets.overlaps(url, run.output["url"])]
        for writer in writers:
            if not writer.wait().succeeded:
                raise JobRunFailed(writer, writer.error) from writer.error
        fmt = format or (writers[-1].output["format"] if writers else "jsonl")
        return list(datasets.read(url, fmt))

    def wait(self) -> list[JobRun]:
        """Wait for every job; its runs, or JobRunFailed naming the first job that failed (in
        the order they finished) and its request. Jobs that did not depend on a failed one run
        to their end; those that did are ``blocked``."""
        self._join()
        failures = sorted((run for run in self.runs if run.state in FAILED_STATES),
                          key=lambda run: run.finished_at or 0)
        if failures:
            self._failure_raised = True
            raise JobRunFailed(failures[0], failures[0].error) from failures[0].error
        return self.runs

    def _join(self) -> None:
        for thread in list(self._threads):
            thread.join()

    def close(self) -> None:
        """Stop the private ``mr run``, if there is one (jobs still running there stop)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    # A job's own thread

    def _drive(self, run: JobRun) -> None:
        for dep in run.deps:
            dep.wait()
        failed = [dep.name for dep in run.deps if not dep.succeeded]
        if failed:
            run.error = PipelineError(f"not run: it depends on {', '.join(failed)}, which did "
                                      f"not succeed")
            self._finish(run, "blocked")
            return
        try:
            if self._before_start is not None:
                self._before_start(run)
            run.request_id = self.client.submit(run.workflow, run.job, input=run.input,
                                                output=run.output, wait=False)
            run.request_url = self.client.request_url(run.workflow, run.request_id)
            self._change(run, "running")
            status = self.client.wait(run.workflow, run.request_id)
            run.created_at, run.finished_at = status["created_at"], status["finished_at"]
            self._finish(run, "done")
        except (JobFailed, Cancelled) as error:
            self._times_of_failed(run)
            run.error = error
            self._finish(run, "cancelled" if isinstance(error, Cancelled) else "failed")
        except Exception as error:  # noqa: BLE001 - the thread's end: every failure is the job's
            run.error = error
            run.finished_at = run.finished_at or time.time()
            self._finish(run, "failed")

    def _times_of_failed(self, run: JobRun) -> None:
        """The request's own times: it ran, then failed or was cancelled."""
        try:
            status = self.client.status(run.workflow, run.request_id)
            run.created_at, run.finished_at = status["created_at"], status["finished_at"]
        except ClientError:
            run.finished_at = time.time()

    def _change(self, run: JobRun, state: str) -> None:
        run.state = state
        if self._on_change is not None:
            self._on_change(run)

    def _finish(self, run: JobRun, state: str) -> None:
        try:
            self._change(run, state)
        finally:
            run.finished_event.set()


def _spec(value: str | dict[str, Any], default_format: str) -> dict[str, str]:
    spec = {"url": value} if isinstance(value, str) else dict(value)
    spec.setdefault("format", default_format)
    spec["url"] = datasets.absolute(spec["url"])
    return spec

