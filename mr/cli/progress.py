"""The progress of a followed request on stderr (``--progress``), from its status documents.

It shows what the status document holds and nothing more: the state, the time since the request
was accepted and, when the front end reports them (``"progress": {"done": n, "known": m}``), the
invocations done out of those known so far, as a bar. On a terminal the line is rewritten in
place; elsewhere (a log, a pipe) a line is written each time the state or the counts change.
"""
from __future__ import annotations

import time
from typing import Any, TextIO

BAR_WIDTH = 20


def describe(status: dict[str, Any], now: float) -> str:
    """``request 3f0c... running 12.3 s [#####...............] 5/20 invocations``."""
    finished_at = status.get("finished_at")
    elapsed = max(0.0, (finished_at or now) - status["created_at"])
    text = f"request {status['request_id']} {status['state']} {elapsed:.1f} s"
    counts = _counts(status)
    if counts:
        done, known = counts
        filled = BAR_WIDTH * done // known if known else 0
        text += f" [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{known} invocations"
    return text


def _counts(status: dict[str, Any]) -> tuple[int, int] | None:
    progress = status.get("progress")
    if not isinstance(progress, dict):
        return None
    done, known = progress.get("done"), progress.get("known")
    if isinstance(done, int) and isinstance(known, int):
        return done, known
    return None


class ProgressLine:
    def __init__(self, stream: TextIO):
        self.stream = stream
        self.in_place = stream.isatty()
        self._width = 0
        self._shown: tuple | None = None

    def show(self, status: dict[str, Any]) -> None:
        text = describe(status, time.time())
        if self.in_place:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            change = (status["state"], _counts(status))
            if change == self._shown:
                return
            self._shown = change
            self.stream.write(text + "\n")
        self.stream.flush()

    def __enter__(self) -> "ProgressLine":
        return self

    def __exit__(self, *exc_info) -> None:
        """Ends the line rewritten in place, so that what follows starts on its own."""
        if self.in_place and self._width:
            self.stream.write("\n")
            self.stream.flush()
