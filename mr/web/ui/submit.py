"""A job's page (``/ui/job/<workflow>/<job>``): what it runs, and the form that submits a
request to it, which then shows the request's page."""
from __future__ import annotations

from flask import Response, redirect, request, url_for

from mr.models import ValidationError
from mr.web import auth, job_definition
from mr.web.context import current_engine, requester_ip
from mr.web.ui.forms import FormError, SubmitForm
from mr.web.ui.pages import blueprint, render
from mr.web.ui.session_keys import check_csrf


@blueprint.get("/job/<workflow>/<job_name>")
def job(workflow: str, job_name: str) -> Response:
    return _job_page(workflow, job_name, SubmitForm())


@blueprint.post("/job/<workflow>/<job_name>")
def submit(workflow: str, job_name: str) -> Response:
    """A request that does not block: its page follows it."""
    check_csrf()
    form = SubmitForm.read(request.form)
    engine = current_engine()
    try:
        accepted = engine.submit(workflow, job_name, form.arguments(), blocking=False,
                                 context={"requester_ip": requester_ip(),
                                          **auth.owner_context()},
                                 deadline_s=form.deadline_s())
    except (FormError, ValidationError) as error:
        return _job_page(workflow, job_name, form, str(error), 400)
    return redirect(url_for("ui.request", workflow=workflow, request_id=accepted.request_id),
                    303)


def _job_page(workflow: str, job_name: str, form: SubmitForm, failure: str | None = None,
              status: int = 200) -> Response:
    """The job as ``GET /job/<workflow>/<job>/definition`` describes it, and the form."""
    definition = job_definition.describe(workflow, job_name).get_json()
    return render("job.html", status, workflow=workflow, definition=definition, form=form,
                  failure=failure)
