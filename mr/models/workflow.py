"""The workflow: an isolated namespace of jobs, steps, handlers, requests and queue topics."""
from __future__ import annotations

from mr.models.base import Field, Model, created_at_field, valid_workflow_name


class Workflow(Model):
    kind = "workflow"

    name = Field(str, check=valid_workflow_name)
    description = Field(str)
    created_at = created_at_field()
