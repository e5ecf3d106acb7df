"""The invocation: one queued map or reduce of one step, a node of its request's tree."""
from __future__ import annotations

from mr.models.base import (Field, WorkflowEntity, created_at_field, id_field, name_field,
                            new_id, non_negative)

DIRECTIONS = ("map", "reduce")
INVOCATION_STATES = ("queued", "running", "waiting", "done", "failed", "cancelled")


class Invocation(WorkflowEntity):
    kind = "invocation"
    key_field = "invocation_id"

    invocation_id = id_field(default_factory=new_id)
    request_id = id_field()
    parent_invocation_id = id_field(optional=True)
    step_name = name_field()
    direction = Field(str, choices=DIRECTIONS)
    state = Field(str, default="queued", choices=INVOCATION_STATES)
    attempts = Field(int, default=0, check=non_negative)
    mapped_count = Field(int, optional=True, check=non_negative)
    error = Field(dict, optional=True)
    created_at = created_at_field()
