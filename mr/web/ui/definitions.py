"""The definitions, browsed: ``/ui`` (the workflows), a workflow (its jobs, steps and
handlers) and a handler (its source, numbered, and its version)."""
from __future__ import annotations

from flask import Response, g, request

from mr.models import Handler, Job, Step, Workflow
from mr.models.step import HANDLER_SLOTS
from mr.web.context import current_engine
from mr.web.errors import ApiError
from mr.web.ui.pages import blueprint, render


@blueprint.get("")
def workflows() -> Response:
    """The workflows the token is for, with how many jobs each has and whether it is served
    here (MR_WORKFLOW_NAMES may leave some out)."""
    engine = current_engine()
    token = g.get("token")
    rows = [(workflow, engine.kv.range(engine.store.collection(Job, workflow.name), prefix=True,
                                       count_only=True).count,
             engine.served.serves(workflow.name))
            for workflow in engine.store.list(Workflow)
            if token is None or token.covers(workflow.name)]
    return render("workflows.html", rows=rows)


@blueprint.get("/workflow/<workflow>")
def workflow(workflow: str) -> Response:
    engine = current_engine()
    engine.check_served(workflow)
    store = engine.store
    return render("workflow.html", workflow=store.get(Workflow, workflow),
                  jobs=store.list(Job, workflow), steps=store.list(Step, workflow),
                  handlers=store.list(Handler, workflow))


@blueprint.get("/workflow/<workflow>/handler")
def handler(workflow: str) -> Response:
    name = request.args.get("name")
    if not name:
        raise ApiError(400, "InvalidParameter", "query parameter 'name' names the handler to "
                                                "show")
    engine = current_engine()
    engine.check_served(workflow)
    record = engine.store.get(Handler, workflow, name)
    return render("handler.html", handler=record, lines=record.source_code.splitlines(),
                  used_by=[(step.name, HANDLER_SLOTS.get(reference.field, reference.field))
                           for step, reference in engine.store.referrers(Handler, workflow,
                                                                         name)])
