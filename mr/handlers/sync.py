"""Handler sync: make a workflow's handlers in the KV match a directory of handler files.

Every file is parsed and checked first, and every problem reported as ``file:line: reason``; a
directory with any invalid file changes nothing. Otherwise one transaction creates the new
handlers, updates the changed ones (all of them with ``force``), and deletes the handlers that
have no file — unless a step still uses them: those are kept and reported with their users.
Running requests keep the versions they were accepted with; the next request uses the new ones.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from mr.handlers.load import scan_handlers
from mr.models import EntityStore, Handler, Workflow


class HandlerSyncError(ValueError):
    """Invalid handler files: nothing was changed. ``problems`` lists each as file:line: reason."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} invalid handler file(s); nothing was changed:\n"
                         + "\n".join(problems))
        self.problems = problems


@dataclasses.dataclass
class SyncReport:
    created: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)
    #: Handlers without a file that steps still use: handler name -> the users.
    kept: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    applied: bool = False


def sync_handlers(store: EntityStore, workflow: str, directory: Path, *, force: bool = False,
                  simulate: bool = False) -> SyncReport:
    store.get(Workflow, workflow)  # NotFoundError names it
    wanted, problems = scan_handlers(workflow, Path(directory))
    if problems:
        raise HandlerSyncError(problems)
    current = {handler.name: handler for handler in store.list(Handler, workflow)}
    report = SyncReport()
    creates, updates, deletes = [], [], []
    for handler in wanted:
        stored = current.pop(handler.name, None)
        if stored is None:
            creates.append(handler)
            report.created.append(handler.name)
        elif force or stored != handler:
            updates.append(handler.with_revision(stored.mod_revision))
            report.updated.append(handler.name)
        else:
            report.unchanged.append(handler.name)
    for name, stored in current.items():
        users = store.referrers(Handler, workflow, name)
        if users:
            report.kept[name] = [f"{user.label} (as {reference.field})"
                                 for user, reference in users]
        else:
            deletes.append(stored)
            report.deleted.append(name)
    if not simulate and (creates or updates or deletes):
        store.write_all(creates, updates, deletes)
        report.applied = True
    return report
