"""The Python processor: runs handlers written in the handler file format (mr.handlers.format)."""
from __future__ import annotations

import collections
import contextlib
from typing import Any, Callable, Iterator

from mr.executor.injected import SessionAccess, handler_globals
from mr.executor.protocol import Task
from mr.executor.scope import HandlerInfo, WorkflowScopes
from mr.fs import FsspecFilesystem, SharedFilesystem
from mr.handlers.format import compile_handler, show_in_tracebacks

#: How many compiled handlers a child keeps (a request pins old versions while new ones run).
COMPILED_CACHE_SIZE = 256


class _Compiled:
    """A compiled handler, and the names given to it last time (taken back if not given again,
    so a name a scope factory stops giving does not linger)."""

    def __init__(self, function: Callable):
        self.function = function
        self._given: set[str] = set()

    def give(self, names: dict[str, Any]) -> None:
        namespace = self.function.__globals__
        for name in self._given - names.keys():
            namespace.pop(name, None)
        namespace.update(names)
        self._given = set(names)


class CompiledHandlers:
    """Compiled handlers by (name, version), least recently used dropped first.

    Compiling once per version (JobX compiled per invocation) also means a handler's module-level
    globals live on between invocations of that version in this child, as a module's would.
    """

    def __init__(self, size: int = COMPILED_CACHE_SIZE):
        self.size = size
        self._handlers: collections.OrderedDict[tuple[str, str], _Compiled] = (
            collections.OrderedDict())

    def get(self, task: Task) -> _Compiled:
        key = (task.handler_name, task.handler_version)
        if key in self._handlers:
            self._handlers.move_to_end(key)
            show_in_tracebacks(task.handler_name, task.source_code)
        else:
            self._handlers[key] = _Compiled(compile_handler(task.source_code, task.handler_type,
                                                            task.handler_name))
            if len(self._handlers) > self.size:
                self._handlers.popitem(last=False)
        return self._handlers[key]


class PythonProcessor:
    """Gives a handler mr's names, its workflow's ``FS`` and the scope factory's names (which
    win), then calls it."""

    def __init__(self, scopes: WorkflowScopes, fs_root_url: str | None):
        self._compiled = CompiledHandlers()
        self._scopes = scopes
        self._fs_root_url = fs_root_url
        self._filesystems: dict[str, SharedFilesystem] = {}

    @contextlib.contextmanager
    def run(self, task: Task, session: SessionAccess) -> Iterator[Any]:
        """The handler's result: its generator, or what it returned."""
        compiled = self._compiled.get(task)
        info = HandlerInfo(workflow=task.workflow, name=task.handler_name,
                           handler_type=task.handler_type, version=task.handler_version,
                           required_capability=task.required_capability)
        compiled.give({**handler_globals(task.handler_name, session, self._fs(task.workflow)),
                       **self._scopes.scope(info)})
        yield compiled.function(task.inputs)

    def _fs(self, workflow: str) -> SharedFilesystem | None:
        if not self._fs_root_url:
            return None
        if workflow not in self._filesystems:
            self._filesystems[workflow] = FsspecFilesystem(self._fs_root_url, workflow)
        return self._filesystems[workflow]
