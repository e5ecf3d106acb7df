"""Handlers' notification messages (``NOTIFY``, ``EMAIL``, ``HTTP``), collected in the executor
child for the invocation that logs them, and sent back with its result.

The loggers keep writing to the invocation's stderr; a :class:`NoticeHandler` beside that also
keeps each message of level INFO or above while an invocation runs (:func:`collecting`). The
worker then queues them for the request's channels of the logger's kind.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

#: The channels each logger's messages go to: every channel, the email ones, the webhooks.
TO_ALL, TO_EMAIL, TO_HTTP = "all", "email", "http"
#: Messages of one invocation that are sent; later ones are only logged.
MAX_NOTICES = 50
#: The most of one message (with its traceback) that is sent.
MAX_MESSAGE_CHARS = 4000

_collected: list[dict] | None = None


class NoticeHandler(logging.Handler):
    """Keeps the messages of the invocation running now, for channels of one kind."""

    def __init__(self, channel: str):
        super().__init__(logging.INFO)
        self.channel = channel
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if _collected is None or len(_collected) >= MAX_NOTICES:
            return
        _collected.append({"channel": self.channel, "level": record.levelname,
                           "message": self.format(record)[:MAX_MESSAGE_CHARS],
                           "logged_at": record.created})


@contextlib.contextmanager
def collecting() -> Iterator[list[dict]]:
    """The messages logged while the block runs (one invocation at a time per child)."""
    global _collected
    _collected = notices = []
    try:
        yield notices
    finally:
        _collected = None
