"""Scope factories for the tests; executor children import them by their dotted paths."""
import dataclasses
import os
import threading

from mr.executor.scope import ScopeFactory


class TrustedSecrets(ScopeFactory):
    """Gives ``SECRET`` only to the handlers whose names start with ``trusted_``."""

    def get_scope(self, handler):
        if handler.name.startswith("trusted_"):
            return {"SECRET": f"secret of {self.workflow}"}
        return {}


class Described(ScopeFactory):
    """Shows what a factory sees and keeps: the handler's description, its own calls (one instance
    per workflow and child), a value pickle could not carry, a name given only once, and an
    override of one of mr's names."""

    def __init__(self, workflow):
        super().__init__(workflow)
        self.calls = 0
        self.lock = threading.Lock()

    def get_scope(self, handler):
        self.calls += 1
        scope = {"INFO": dataclasses.asdict(handler), "CALLS": self.calls, "LOCK": self.lock,
                 "CHILD": os.getpid(), "PRINT": lambda text: print(f"[{handler.name}] {text}")}
        if self.calls == 1:
            scope["FIRST_CALL_ONLY"] = True
        return scope


class Misbehaving(ScopeFactory):
    """Fails in the way the handler's name (or the workflow's) asks for."""

    def __init__(self, workflow):
        if workflow == "unmakeable":
            raise RuntimeError("cannot connect")
        super().__init__(workflow)

    def get_scope(self, handler):
        if handler.name == "raises":
            raise KeyError("no credentials")
        if handler.name == "returns_list":
            return ["SECRET"]
        if handler.name == "non_str_names":
            return {1: "one"}
        return {"SECRET": "s"}
