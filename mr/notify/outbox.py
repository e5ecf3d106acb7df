"""Notifications waiting to be sent: one KV entry per notification and channel, under
``P/notify/<workflow>/<request id>/<name>/<channel number>``.

A request's final notification is written by the transaction that finishes it, and a handler's
messages right after the invocation that logged them ran, so no crash forgets one; the notifier
(:mod:`mr.notify.notifier`) deletes each entry once it is sent or given up. An entry holds
everything its delivery needs, so the request may be removed before it is sent.
"""
from __future__ import annotations

from typing import Any

from mr import codec
from mr.executor.protocol import bounded_error
from mr.kv.base import Put
from mr.models import Request
from mr.models.base import new_id
from mr.models.keys import Keys
from mr.notify.channels import kind_of
from mr.notify.notices import TO_ALL
from mr.settings import Settings

#: How much text of a failure a notification carries; the status URL has the rest.
ERROR_LIMIT_BYTES = 8 << 10
#: The fields of a request's error that a notification carries.
ERROR_FIELDS = ("type", "message", "kind", "handler")


class Outbox:
    """Builds the KV writes that queue a request's notifications."""

    def __init__(self, keys: Keys, settings: Settings):
        self.prefix = keys.notifications()
        self.front_end_url = (settings.url or
                              f"http://{settings.http_host}:{settings.http_port}").rstrip("/")

    def finished(self, request: Request) -> list[Put]:
        """The writes that queue the notification of a request that just reached its final
        state, to each channel that asked for that state."""
        channels = [(number, channel) for number, channel in enumerate(request.notify or ())
                    if request.state in channel["when"]]
        if not channels:
            return []
        error = None
        if request.error is not None:
            error = bounded_error({field: request.error.get(field) for field in ERROR_FIELDS},
                                  ERROR_LIMIT_BYTES)
            error["failed_invocation_id"] = request.failed_invocation_id
        return self._writes(request, "finished", channels, {
            "event": "finished", "state": request.state, "error": error,
            "created_at": request.created_at, "finished_at": request.finished_at,
            "duration_s": round(request.finished_at - request.created_at, 3)})

    def message(self, request: Request, invocation_id: str, handler: str,
                notice: dict) -> list[Put]:
        """The writes that queue one of a handler's messages to the request's channels of the
        kind its logger sends to."""
        channels = [(number, channel) for number, channel in enumerate(request.notify or ())
                    if notice["channel"] in (TO_ALL, kind_of(channel))]
        if not channels:
            return []
        return self._writes(request, f"message-{new_id()}", channels, {
            "event": "message", "invocation_id": invocation_id, "handler": handler,
            "level": notice["level"], "message": notice["message"],
            "logged_at": notice["logged_at"]})

    def _writes(self, request: Request, name: str, channels: list[tuple[int, dict]],
                details: dict[str, Any]) -> list[Put]:
        notification_id = f"{request.workflow}/{request.request_id}/{name}"
        notification = {
            "id": notification_id, "workflow": request.workflow, "job": request.job_name,
            "request_id": request.request_id, **details,
            "status_url": f"{self.front_end_url}/request/{request.workflow}/{request.request_id}"}
        return [Put(f"{self.prefix}{notification_id}/{number}",
                    codec.encode({"channel": channel, "notification": notification}))
                for number, channel in channels]
