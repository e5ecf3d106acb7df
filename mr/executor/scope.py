"""Scope factories: names a deployment gives some handlers, e.g. clients or secrets.

``MR_WORKFLOW_SCOPE_FACTORY_FQ_CLASS`` names a class (``package.module.Class``). Each executor
child makes one instance per workflow, with the workflow's name, when that workflow's first
handler runs there: its values never cross a process boundary, so they may be anything (database
clients, locks). Before each invocation of a Python handler, ``get_scope(handler)`` gets a
:class:`HandlerInfo` and returns a dict whose entries become the handler's globals, overriding
mr's own names, as in JobX.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
from typing import Any, Iterator


class ScopeFactoryError(Exception):
    """The configured factory could not be loaded or made, failed, or returned a non-dict."""


@dataclasses.dataclass(frozen=True)
class HandlerInfo:
    """The handler about to run, as a scope factory sees it."""
    workflow: str
    name: str
    handler_type: str
    version: str
    required_capability: str


class ScopeFactory:
    """The interface, and a base class to start from: it gives no names."""

    def __init__(self, workflow: str):
        self.workflow = workflow

    def get_scope(self, handler: HandlerInfo) -> dict[str, Any]:
        return {}


class WorkflowScopes:
    """In an executor child: the factory's instance of each workflow, made on first use."""

    def __init__(self, factory_path: str | None):
        self.factory_path = factory_path
        self._factories: dict[str, Any] = {}

    def scope(self, handler: HandlerInfo) -> dict[str, Any]:
        """The factory's names for ``handler`` ({} without a factory); ScopeFactoryError."""
        if not self.factory_path:
            return {}
        factory = self._factories.get(handler.workflow)
        if factory is None:
            with self._blamed(f"making it for workflow {handler.workflow!r}"):
                factory = self._factories[handler.workflow] = self._load()(handler.workflow)
        with self._blamed(f"get_scope for handler {handler.name!r}"):
            scope = factory.get_scope(handler)
        if not (isinstance(scope, dict) and all(isinstance(name, str) for name in scope)):
            raise ScopeFactoryError(f"scope factory {self.factory_path!r}: get_scope for handler "
                                    f"{handler.name!r} returned {scope!r:.200}; it must return a "
                                    f"dict of names (str) to values")
        return scope

    def _load(self) -> type:
        module_name, _, class_name = self.factory_path.rpartition(".")
        module = importlib.import_module(module_name)
        if not hasattr(module, class_name):
            raise ScopeFactoryError(f"scope factory {self.factory_path!r}: module "
                                    f"{module_name!r} has no {class_name!r}")
        return getattr(module, class_name)

    @contextlib.contextmanager
    def _blamed(self, what: str) -> Iterator[None]:
        """Errors of the factory's code become ScopeFactoryErrors naming the factory."""
        try:
            yield
        except ScopeFactoryError:
            raise
        except Exception as error:
            raise ScopeFactoryError(f"scope factory {self.factory_path!r} failed in {what}: "
                                    f"{type(error).__name__}: {error}") from error
