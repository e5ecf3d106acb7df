"""Where a request's input comes from and where its result goes, as clients and jobs name them.

An input by reference, ``{"url": ..., "format": "text|jsonl|mr"}``, names files (a file, a
directory, a glob; any fsspec URL) that the engine cuts into splits; the data never passes
through the front end. An output names a result writer: ``{"url": ..., "format":
"jsonl|tsv|mr"}`` the file writer, ``{"http": "https://..."}`` the HTTP writer; none, the result
comes back inline.
"""
from __future__ import annotations

from typing import Any

from mr.datasets.formats import FORMATS, OUTPUT_FORMATS
from mr.results.http_post import check_result_url


def check_input(spec: Any, what: str = "input") -> dict:
    """``spec`` with its defaults filled in, or ValueError naming what is wrong."""
    url = _url(spec, what, ("url", "format"))
    return {"url": url, "format": _format(spec, what, FORMATS, "text")}


def check_output(spec: Any, what: str = "output") -> dict:
    """A file writer's ``{"url", "format"}`` or an HTTP writer's ``{"http"}``, checked."""
    if isinstance(spec, dict) and "http" in spec:
        _only(spec, what, ("http",))
        try:
            return {"http": check_result_url(spec["http"])}
        except ValueError as error:
            raise ValueError(f"{what}.http: {error}") from None
    url = _url(spec, what, ("url", "format"))
    return {"url": url, "format": _format(spec, what, OUTPUT_FORMATS, "jsonl")}


def _url(spec: Any, what: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(spec, dict):
        raise ValueError(f"{what} must be an object such as {{\"url\": ...}}, "
                         f"got {type(spec).__name__}")
    _only(spec, what, allowed)
    url = spec.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{what}.url must be a non-empty string (a path or an fsspec URL)")
    return url


def _only(spec: dict, what: str, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ValueError(f"{what} has unknown fields {', '.join(map(repr, unknown))}; "
                         f"allowed: {', '.join(allowed)}")


def _format(spec: dict, what: str, allowed: tuple[str, ...], default: str) -> str:
    value = spec.get("format", default)
    if value not in allowed:
        raise ValueError(f"{what}.format must be one of {', '.join(allowed)}, got {value!r}")
    return value
