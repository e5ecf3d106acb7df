"""Sending one queued notification to its channel: a JSON POST to a webhook, or an email."""
from __future__ import annotations

import datetime
import json

from mr.notify.smtp import EmailDeliveryError, send_email
from mr.results.http_post import ResultDeliveryError, post_result
from mr.settings import Settings

#: Sends of one notification before it is given up, and the backoff between them (doubled each
#: time, jittered), for webhooks and emails alike.
ATTEMPTS = 5
BACKOFF_S = 1.0
#: How long one POST, or one SMTP conversation, may take.
TIMEOUT_S = 30.0
#: What a failed delivery raises, whatever the channel.
DELIVERY_ERRORS = (ResultDeliveryError, EmailDeliveryError)


def deliver(settings: Settings, channel: dict, notification: dict) -> None:
    """Send ``notification`` to ``channel``, retried; one of DELIVERY_ERRORS when it cannot."""
    if "http" in channel:
        body = json.dumps(notification, ensure_ascii=False, allow_nan=False).encode()
        post_result(channel["http"], body, {
            "X-Mr-Notification-Id": notification["id"],
            "X-Mr-Request-Id": notification["request_id"],
            "X-Mr-Workflow": notification["workflow"], "X-Mr-Job": notification["job"]},
            attempts=ATTEMPTS, backoff_s=BACKOFF_S, timeout_s=TIMEOUT_S)
    else:
        send_email(settings, channel["email"], subject(notification), text(notification),
                   attempts=ATTEMPTS, backoff_s=BACKOFF_S, timeout_s=TIMEOUT_S)


def subject(notification: dict) -> str:
    request = (f"request {notification['request_id']} of {notification['workflow']}/"
               f"{notification['job']}")
    if notification["event"] == "finished":
        return f"[mr] {notification['state']}: {request}"
    first_line = notification["message"].split("\n", 1)[0][:80]
    return f"[mr] {notification['level']} from {notification['handler']} ({request}): {first_line}"


def text(notification: dict) -> str:
    """The email's body: what happened, for people, then the notification as JSON."""
    if notification["event"] == "finished":
        lines = [f"Request {notification['request_id']} of job {notification['job']} (workflow "
                 f"{notification['workflow']}) is {notification['state']}.", "",
                 f"Started:  {_time(notification['created_at'])}",
                 f"Finished: {_time(notification['finished_at'])} "
                 f"({notification['duration_s']:g} s)"]
        error = notification["error"]
        if error is not None:
            lines += ["", f"Error: {error['type']}: {error['message']}",
                      f"Handler: {error['handler'] or '-'}, invocation "
                      f"{error['failed_invocation_id'] or '-'}"]
    else:
        lines = [f"Handler {notification['handler']} (invocation "
                 f"{notification['invocation_id']}) of request {notification['request_id']}, "
                 f"job {notification['job']}, workflow {notification['workflow']}, said at "
                 f"{_time(notification['logged_at'])}:", "", notification["message"]]
    lines += ["", f"Status: {notification['status_url']}", "",
              json.dumps(notification, indent=2, ensure_ascii=False)]
    return "\n".join(lines) + "\n"


def _time(epoch_s: float) -> str:
    return datetime.datetime.fromtimestamp(epoch_s, datetime.timezone.utc).isoformat(
        timespec="milliseconds")
