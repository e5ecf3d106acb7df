"""Every KV key of the models, built in this one place (``docs/keys.rst`` explains the layout).

Callers pass names that the models already checked, so no part contains ``/``. Every prefix ends
with ``/``, so that a workflow ``a`` never matches the keys of a workflow ``ab``.
"""
from __future__ import annotations


class Keys:
    """The keys under one store prefix ``P`` (settings.kv_prefix)."""

    def __init__(self, prefix: str):
        self.prefix = prefix.rstrip("/")

    def workflows(self) -> str:
        """``P/workflow/``: the workflow entities, outside every workflow's own prefix."""
        return f"{self.prefix}/workflow/"

    def workflow(self, workflow: str) -> str:
        return self.workflows() + workflow

    def workflow_scope(self, workflow: str) -> str:
        """``P/wf/<wf>/``: everything that belongs to one workflow, deleted with it."""
        return f"{self.prefix}/wf/{workflow}/"

    def entities(self, kind: str, workflow: str, request_id: str | None = None) -> str:
        """``P/wf/<wf>/<kind>/``: the entities of one kind in one workflow; for the run state
        of one request (``request_id`` given), ``P/wf/<wf>/run/<request_id>/<kind>/``."""
        if request_id is not None:
            return f"{self.run(workflow, request_id)}{kind}/"
        return f"{self.workflow_scope(workflow)}{kind}/"

    def entity(self, kind: str, workflow: str, name: str, request_id: str | None = None) -> str:
        return self.entities(kind, workflow, request_id) + name

    def definitions(self, workflow: str) -> str:
        """``P/wf/<wf>/definitions``: rewritten with every change of a job, step or handler of
        the workflow, so one read tells whether a cached copy of them is current."""
        return f"{self.workflow_scope(workflow)}definitions"

    def handler_code(self, workflow: str, version: str) -> str:
        """``P/wf/<wf>/code/<version>``: a handler's code by content version, kept unchanged
        so that a request runs the versions it was accepted with, whatever is synced since."""
        return f"{self.workflow_scope(workflow)}code/{version}"

    def finished(self, workflow: str) -> str:
        """``P/wf/<wf>/finished/``: an empty key per finished request, removed with it, for
        the workers to follow instead of every request record."""
        return f"{self.workflow_scope(workflow)}finished/"

    def run(self, workflow: str, request_id: str) -> str:
        """``P/wf/<wf>/run/<request_id>/``: a request's run state, removed in one range delete."""
        return f"{self.workflow_scope(workflow)}run/{request_id}/"

    def completions(self, workflow: str, request_id: str, parent_id: str) -> str:
        """``.../done/<parent>/``: one key per child of ``parent`` whose reduction is committed."""
        return f"{self.run(workflow, request_id)}done/{parent_id}/"

    def completion_count(self, workflow: str, request_id: str, parent_id: str) -> str:
        """``.../count/<parent>``: rewritten by each child's completion, so its version is the
        number of children of ``parent`` reduced so far (counted in O(1) per child)."""
        return f"{self.run(workflow, request_id)}count/{parent_id}"

    def published(self, workflow: str, request_id: str, invocation_id: str, what: str) -> str:
        """``.../published/<id>/<children|reduce>``: written once the messages an invocation's
        commit calls for were published, so that a redelivery does not publish them again."""
        return f"{self.run(workflow, request_id)}published/{invocation_id}/{what}"

    def active(self, workflow: str, request_id: str) -> str:
        """``.../active/``: one key per long-running invocation, on its worker's lease, so the
        sweeper leaves alone what a live worker is still running."""
        return f"{self.run(workflow, request_id)}active/"

    def counters(self, workflow: str, request_id: str) -> str:
        """``.../counters/``: what the invocations of one request counted, one key per commit
        that counted anything (``<id>/<phase>``), written in that commit's transaction."""
        return f"{self.run(workflow, request_id)}counters/"

    def sessions(self, workflow: str, request_id: str) -> str:
        """``.../session/``: the sessions of every map invocation of one request."""
        return f"{self.run(workflow, request_id)}session/"

    def session(self, workflow: str, request_id: str, invocation_id: str) -> str:
        """``.../session/<invocation_id>/``: the session of one map invocation."""
        return f"{self.sessions(workflow, request_id)}{invocation_id}/"

    def sweeper(self) -> str:
        """``P/sweeper``: held, on a lease, by the one worker that sweeps and cleans up."""
        return f"{self.prefix}/sweeper"

    def tokens(self) -> str:
        """``P/token/``: the API tokens, by name, each with the digest of its secret."""
        return f"{self.prefix}/token/"

    def notifications(self) -> str:
        """``P/notify/``: the notifications waiting to be sent (mr.notify.outbox)."""
        return f"{self.prefix}/notify/"

    def cleanups(self) -> str:
        """``P/cleanup/``: finished requests waiting for removal, ordered by due time."""
        return f"{self.prefix}/cleanup/"
