"""The names a handler finds in its globals (JobX's set), built in the child for each invocation."""
from __future__ import annotations

import functools
import logging
import subprocess
import sys
from typing import Any

from mr import codec
from mr.executor.reporting import increment_counter, set_status
from mr.fs import SharedFilesystem
from mr.handlers.scope import MrConfigureToMap, MrConfigureToReturn
from mr.models.names import check_name
from mr.notify.notices import TO_ALL, TO_EMAIL, TO_HTTP, NoticeHandler


class SessionAccess:
    """``S_GET``/``S_SET``/``S_LIST`` over the invocation's copy of its session."""

    def __init__(self, handler_name: str, values: dict[str, Any], writable: bool):
        self.handler_name = handler_name
        self.values = dict(values)
        self.writable = writable

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        if not self.writable:
            raise PermissionError(f"handler {self.handler_name!r} cannot set session key "
                                  f"{key!r}: a reducer's session is read-only (only its mapper "
                                  f"and combiner write it)")
        check_name(key, "session key")
        # Stored as the engine will store it, so an unencodable value fails at this call.
        self.values[key] = codec.decode(codec.encode(value))

    def list(self) -> dict[str, Any]:
        return dict(self.values)


def handler_globals(handler_name: str, session: SessionAccess,
                    fs: SharedFilesystem | None) -> dict[str, Any]:
    """mr's names for a Python handler; ``fs`` is its workflow's shared filesystem, if any."""
    return {
        "MrConfigureToMap": MrConfigureToMap,
        "MrConfigureToReturn": MrConfigureToReturn,
        "S_GET": session.get,
        "S_SET": session.set,
        "S_LIST": session.list,
        **_loggers(handler_name),
        "PRINT": print,
        "RUN": run_command,
        "FS": fs,
        "SEP": PATH_SEPARATOR,
        "JOIN": join_path,
        "increment_counter": increment_counter,
        "set_status": set_status,
        "__name__": f"handler({handler_name})",
    }


#: What separates the parts of an ``FS`` path, whatever the store behind it.
PATH_SEPARATOR = "/"


def join_path(*parts: str) -> str:
    """JobX's ``JOIN``: the parts of an ``FS`` path joined with ``SEP``."""
    return PATH_SEPARATOR.join(parts)


def run_command(command: str | list[str], input_data: str | bytes | None = None,
                success_code: int = 0, env: dict[str, str] | None = None) -> int:
    """JobX's ``RUN``: a string runs through the shell, a list is an argv. The command's output
    goes to the invocation's captured stdout and stderr. Returns the exit code; ValueError when it
    is not ``success_code``."""
    if isinstance(input_data, str):
        input_data = input_data.encode()
    stdin = {"stdin": subprocess.DEVNULL} if input_data is None else {"input": input_data}
    code = subprocess.run(command, shell=isinstance(command, str), env=env, check=False,
                          **stdin).returncode
    if code != success_code:
        raise ValueError(f"command {command!r} exited with status {code}, "
                         f"expected {success_code}")
    return code


@functools.cache
def _loggers(handler_name: str) -> dict[str, logging.Logger]:
    """``LOG``, ``NOTIFY``, ``EMAIL`` and ``HTTP`` of a handler, looked up once per name in a
    child (logging keeps every logger for the process's life anyway)."""
    return {"LOG": _stderr_logger(f"mr.handler.{handler_name}"),
            "NOTIFY": _stderr_logger(f"mr.notify.{handler_name}", TO_ALL),
            "EMAIL": _stderr_logger(f"mr.notify.email.{handler_name}", TO_EMAIL),
            "HTTP": _stderr_logger(f"mr.notify.http.{handler_name}", TO_HTTP)}


def _stderr_logger(name: str, notice_channel: str | None = None) -> logging.Logger:
    """A logger writing to stderr (so captured with the invocation), configured once per name;
    with ``notice_channel``, its messages also go to the request's channels of that kind."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        if notice_channel is not None:
            logger.addHandler(NoticeHandler(notice_channel))
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    return logger
