"""Pipelines of mr jobs: one job's output directory is the next one's input.

Two forms share one runner of jobs (:class:`Pipeline`): a Python program whose jobs run in
parallel as far as their data allows (Hadoopy Flow's model), and a ``pipeline.yaml`` of named
steps with dependencies, temporary directories, checkpoints and resume (Cascalog-checkpoint's),
run by ``mr pipeline run``. ``docs/pipelines.rst`` describes both.

A consumer of mr's HTTP API: nothing of the engine, the front end or the worker imports it.
"""
from mr.pipeline.flow import JobRun, JobRunFailed, Pipeline, PipelineError

__all__ = ["JobRun", "JobRunFailed", "Pipeline", "PipelineError"]
