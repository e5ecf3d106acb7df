"""JobX's script names, each a thin entry point onto the ``mr`` subcommand that does its work.

The scripts keep JobX's positional arguments (``mr_kv_job_create WORKFLOW JOB DESCRIPTION
INITIAL_STEP``), since those are the subcommands' own; ``--help`` shows the subcommand's help.
setup.py installs one console script per entry of :data:`SCRIPTS`, each ``mr.cli.jobx:<name>``.
This module imports nothing of mr at import time, so that setup.py can read the table.
"""
from __future__ import annotations

import functools
import sys

#: Script name -> the ``mr`` arguments it stands for; the script's own arguments follow them.
SCRIPTS = {
    **{f"mr_kv_{noun}_{verb}": [noun, verb]
       for noun in ("workflow", "job", "step", "handler")
       for verb in ("create", "get", "list", "delete")},
    "mr_kv_step_set_handler": ["step", "set-handler"],
    "mr_kv_step_update_handlers": ["step", "update-handlers"],
    "mr_kv_handler_store": ["handlers", "sync"],
    "mr_kv_request_get": ["request", "get"],
    "mr_kv_request_cleanup": ["request", "cleanup"],
    "mr_kv_invocation_get": ["invocation", "get"],
    "mr_get_request_sessions": ["session", "list"],
    "mr_get_invocation_flat_list": ["request", "tree"],
    "mr_get_invocation_graph": ["request", "trace", "--format", "dot", "-o", "-"],
    "mr_draw_invocation_graph": ["request", "trace", "--format", "png"],
    "mr_http_notification_listen": ["notifications", "listen"],
}


def run_script(name: str) -> int:
    from mr.cli.main import main  # here, not at the top: it patches the standard library
    return main([*SCRIPTS[name], *sys.argv[1:]])


def __getattr__(name: str):
    """``mr.cli.jobx.<script name>``: the entry point of that script."""
    if name in SCRIPTS:
        return functools.partial(run_script, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
