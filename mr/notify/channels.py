"""Where a request's notifications go: the ``notify`` field of a job or of a request, checked.

``notify`` is a list of channels, each a webhook ``{"http": URL}`` or an address
``{"email": ADDRESS}``, with the final states it is told about, ``"when"`` (default: all of them;
not ``on``, which YAML reads as ``true``).
"""
from __future__ import annotations

import re
from typing import Any

from mr.results.http_post import check_result_url
from mr.settings import Settings

#: The final states of a request that a channel may be told about.
EVENTS = ("done", "failed", "cancelled")
#: Channels one job or request may name: each costs a KV entry and a delivery per notification.
MAX_CHANNELS = 10
#: Longest address SMTP carries (RFC 5321's path limit, less its angle brackets).
MAX_ADDRESS_LENGTH = 254
#: ``local@domain``: no spaces, no characters that would make it a list or a display name.
_ADDRESS = re.compile(r'[^@\s<>()\[\],;:\\"]+@[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\Z')
CHANNEL_KINDS = ("http", "email")


def check_notify(spec: Any, what: str = "notify") -> list[dict]:
    """The channels of ``spec`` with their defaults filled in, or ValueError naming what is
    wrong."""
    if not isinstance(spec, list):
        raise ValueError(f'{what} must be a list of channels such as [{{"http": "https://..."}}, '
                         f'{{"email": "ops@example.com"}}], got {type(spec).__name__}')
    if len(spec) > MAX_CHANNELS:
        raise ValueError(f"{what} names {len(spec)} channels; at most {MAX_CHANNELS} are allowed")
    return [check_channel(channel, f"{what}[{index}]") for index, channel in enumerate(spec)]


def check_channel(channel: Any, what: str) -> dict:
    if not isinstance(channel, dict) or len([kind for kind in CHANNEL_KINDS
                                             if kind in channel]) != 1:
        raise ValueError(f'{what} must be an object with one of "http" (a webhook URL) or '
                         f'"email" (an address), and optionally "when"')
    unknown = sorted(map(repr, set(channel) - {*CHANNEL_KINDS, "when"}))
    if unknown:
        raise ValueError(f"{what} has unknown fields {', '.join(unknown)}; allowed: http or "
                         f"email, and when")
    if "http" in channel:
        target = {"http": _webhook(channel["http"], f"{what}.http")}
    else:
        target = {"email": check_address(channel["email"], f"{what}.email")}
    return {**target, "when": _events(channel.get("when", list(EVENTS)), f"{what}.when")}


def check_address(address: Any, what: str) -> str:
    if (not isinstance(address, str) or len(address) > MAX_ADDRESS_LENGTH
            or not _ADDRESS.match(address)):
        raise ValueError(f"{what} must be one email address such as ops@example.com, got "
                         f"{address!r:.300}")
    return address


def _webhook(url: Any, what: str) -> str:
    try:
        return check_result_url(url)
    except ValueError:
        raise ValueError(f"{what} must be an http:// or https:// URL with a host, got "
                         f"{url!r:.300}") from None


def _events(events: Any, what: str) -> list[str]:
    if (not isinstance(events, list) or not events
            or any(event not in EVENTS for event in events)):
        raise ValueError(f"{what} must be a non-empty list of the states {', '.join(EVENTS)}, "
                         f"got {events!r:.300}")
    return [event for event in EVENTS if event in events]


def channels_for(requested: list | None, job_channels: list | None,
                 settings: Settings) -> list[dict] | None:
    """A new request's channels: its own when it names them (an empty list: none), else its
    job's; ValueError when one is an email and no SMTP server is configured."""
    channels = job_channels if requested is None else check_notify(requested)
    if any("email" in channel for channel in channels or ()) and not settings.smtp_host:
        raise ValueError("notify: email notifications need an SMTP server, and MR_SMTP_HOST is "
                         "not set on this front end")
    return channels or None


def kind_of(channel: dict) -> str:
    """``http`` or ``email``."""
    return "http" if "http" in channel else "email"
