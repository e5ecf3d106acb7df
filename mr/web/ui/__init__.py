"""The web UI at ``/ui`` (``docs/ui.rst``): pages rendered on the server, over the same engine
and the same tokens as the HTTP API, for people with a browser."""
from mr.web.ui import definitions, login, request_pages, submit  # noqa: F401 — their views
from mr.web.ui.pages import blueprint

__all__ = ["blueprint"]
