"""The invocation: one queued map or reduce of one step, a node of its request's tree."""
from __future__ import annotations

from mr.models.base import (Field, WorkflowEntity, created_at_field, id_field, name_field,
                            new_id, non_negative)

DIRECTIONS = ("map", "reduce")
INVOCATION_STATES = ("queued", "running", "waiting", "done", "failed", "cancelled")


class Invocation(WorkflowEntity):
    """Kept for map invocations that branched, and for leaves combined on one worker and reduced
    on another: the engine needs their children (or combined pairs) again after a redelivery,
    the sweeper to find what is left to do, and tracing needs the tree."""

    kind = "invocation"
    key_field = "invocation_id"
    request_scope = "request_id"

    invocation_id = id_field(default_factory=new_id)
    request_id = id_field()
    parent_invocation_id = id_field(optional=True)
    step_name = name_field()
    direction = Field(str, choices=DIRECTIONS)
    state = Field(str, default="queued", choices=INVOCATION_STATES)
    attempts = Field(int, default=0, check=non_negative)
    mapped_count = Field(int, optional=True, check=non_negative)
    error = Field(dict, optional=True)
    #: The step its children run (the mapper's ``MrConfigureToMap`` argument).
    mapped_step = name_field(optional=True)
    #: Where the branching mapper's pairs (one per child) are in the data store.
    children_ref = Field(str, optional=True)
    #: A leaf whose reducer needs another capability: where its combined pairs are.
    combined_ref = Field(str, optional=True)
    #: Where, when and how its map ran (``docs/tracing.rst``): host, pid, attempts,
    #: started_at, finished_at, and the status and the path of the output it left, if any.
    trace = Field(dict, optional=True)
    created_at = created_at_field()
