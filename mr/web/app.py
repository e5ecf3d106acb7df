"""The Flask app factory: one app per engine, so that servers and tests each build their own."""
from __future__ import annotations

from flask import Flask, Response

from mr.engine.engine import Engine
from mr.service import Service
from mr.settings import Settings
from mr.web import auth, errors, health, job_definition, jobs, metrics, openapi, request_status
from mr.web import trace, ui
from mr.web.context import ENGINE_EXTENSION, fulfilled_by

FULFILLED_BY_HEADER = "X-FULFILLED-BY"


def create_app(engine: Engine) -> Flask:
    app = Flask(__name__, static_folder=None)  # no static folder: the UI serves its own files
    # OPTIONS is answered as any other method a route does not have (a JSON 405 with Allow),
    # not with Flask's empty automatic answer.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    # Werkzeug answers 413 when a body over this is read (or announced by Content-Length).
    app.config["MAX_CONTENT_LENGTH"] = engine.settings.max_request_bytes
    app.extensions[ENGINE_EXTENSION] = engine
    errors.install(app)
    auth.install(app, engine)
    for blueprint in (jobs.blueprint, request_status.blueprint, health.blueprint,
                      job_definition.blueprint, openapi.blueprint, metrics.blueprint,
                      trace.blueprint, ui.blueprint):
        app.register_blueprint(blueprint)
    app.after_request(_name_the_answering_process)
    return app


def create_server_app(settings: Settings) -> Flask:
    """The app over the backends shared with the workers, as gunicorn serves it. It runs no
    handlers, so its engine has no executor."""
    return create_app(Service.shared(settings, worker=False).engine)


def _name_the_answering_process(response: Response) -> Response:
    response.headers[FULFILLED_BY_HEADER] = fulfilled_by()
    return response
