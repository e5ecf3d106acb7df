"""``GET /job/<workflow>/<job>/definition``: what a request to the job would run, as defined now.

A client that keeps results between runs (a pipeline's checkpoints) needs to know whether the
job changed since: the handler versions a request would be pinned to say exactly that. A job
that reads its input by reference runs its step's handlers and no other (its mapper cannot
branch), so those are the handlers listed.
"""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from mr.models import Handler, Job, Step
from mr.web.context import current_engine

blueprint = Blueprint("job_definition", __name__)


@blueprint.get("/job/<workflow>/<job_name>/definition")
def describe(workflow: str, job_name: str) -> Response:
    engine = current_engine()
    engine.check_served(workflow)
    job = engine.store.get(Job, workflow, job_name)
    step = engine.store.get(Step, workflow, job.initial_step_name)
    handler_names = [name for name in (step.map_handler_name, step.combine_handler_name,
                                       step.reduce_handler_name, step.partitioner) if name]
    return jsonify({
        "workflow": workflow, "job": job_name, "description": job.description,
        "step": {"name": step.name, "mapper": step.map_handler_name,
                 "combiner": step.combine_handler_name, "reducer": step.reduce_handler_name,
                 "partitioner": step.partitioner, "partitions": step.partitions,
                 "sort_values": step.sort_values},
        "input": job.input, "output": job.output,
        "handler_versions": {name: engine.store.get(Handler, workflow, name).version
                             for name in handler_names}})
