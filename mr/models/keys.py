"""Every KV key of the models, built in this one place (``docs/keys.rst`` explains the layout).

Callers pass names that the models already checked, so no part contains ``/``. Every prefix ends
with ``/``, so that a workflow ``a`` never matches the keys of a workflow ``ab``.
"""
from __future__ import annotations


class Keys:
    """The keys under one store prefix ``P`` (settings.kv_prefix)."""

    def __init__(self, prefix: str = "/mr"):
        self.prefix = prefix.rstrip("/")

    def workflows(self) -> str:
        """``P/workflow/``: the workflow entities, outside every workflow's own prefix."""
        return f"{self.prefix}/workflow/"

    def workflow(self, workflow: str) -> str:
        return self.workflows() + workflow

    def workflow_scope(self, workflow: str) -> str:
        """``P/wf/<wf>/``: everything that belongs to one workflow, deleted with it."""
        return f"{self.prefix}/wf/{workflow}/"

    def entities(self, kind: str, workflow: str) -> str:
        """``P/wf/<wf>/<kind>/``: the entities of one kind in one workflow."""
        return f"{self.workflow_scope(workflow)}{kind}/"

    def entity(self, kind: str, workflow: str, name: str) -> str:
        return self.entities(kind, workflow) + name

    def session(self, workflow: str, invocation_id: str) -> str:
        """``P/wf/<wf>/session/<invocation_id>/``: the session of one map invocation."""
        return f"{self.workflow_scope(workflow)}session/{invocation_id}/"
