"""The request: one POST to a job, the root of a tree of invocations."""
from __future__ import annotations

from mr import codec
from mr.models.base import (Field, WorkflowEntity, created_at_field, id_field, name_field,
                            new_id, positive, valid_name)
from mr.models.data_specs import check_input, check_output
from mr.notify.channels import check_notify

REQUEST_STATES = ("pending", "running", "done", "failed", "cancelled")
#: Pairs up to this size (encoded) ride inline: a request's arguments and result in its record,
#: a child's reduced pairs in its completion marker. Each saves a data store write and read;
#: kept small because records and markers live in etcd.
INLINE_LIMIT_BYTES = 1024


def _handler_versions(value: dict, what: str) -> dict:
    """Handler name -> version: the versions the request was accepted with (request pinning)."""
    for handler, version in value.items():
        valid_name(handler, f"{what} key")
        if not isinstance(version, str):
            raise ValueError(f"field {what!r}: the version of {handler!r} must be str, "
                             f"got {type(version).__name__}")
    return value


def _inline_pairs(value: list, what: str) -> list:
    """Pairs small enough to ride in the record (INLINE_LIMIT_BYTES encoded)."""
    size = len(codec.encode(value))
    if size > INLINE_LIMIT_BYTES:
        raise ValueError(f"field {what!r} takes {size} bytes encoded, more than the "
                         f"{INLINE_LIMIT_BYTES} that ride inline")
    return value


class Request(WorkflowEntity):
    kind = "request"
    key_field = "request_id"

    request_id = id_field(default_factory=new_id)
    job_name = name_field()
    root_invocation_id = id_field()
    #: The job's initial step and where the arguments are: enough to publish the root again.
    root_step = name_field(optional=True)
    #: The argument pairs, when small enough to ride here; else in the data store, at:
    arguments = Field(list, optional=True, check=_inline_pairs)
    arguments_ref = Field(str, optional=True)
    #: The files the request reads, instead of arguments (mr.models.data_specs).
    input = Field(dict, optional=True, check=check_input)
    #: The result writer; None: the result is kept for the client (inline).
    output = Field(dict, optional=True, check=check_output)
    #: Once done with the file writer: the URLs of the parts it committed.
    output_parts = Field(list, optional=True)
    #: Where its notifications go: its own channels, else its job's (mr.notify.channels).
    notify = Field(list, optional=True, check=check_notify)
    #: When (epoch seconds) the request fails if it has not finished.
    deadline = Field(float, optional=True, check=positive)
    state = Field(str, default="pending", choices=REQUEST_STATES)
    blocking = Field(bool)
    context = Field(dict, default_factory=dict)
    handler_versions = Field(dict, default_factory=dict, check=_handler_versions)
    #: The steps as they were at acceptance: step name -> [map, combine or None, reduce].
    steps = Field(dict, default_factory=dict)
    #: Of those, the steps with partitions: step name -> {"partitions", "sort_values"}.
    shuffles = Field(dict, default_factory=dict)
    failed_invocation_id = id_field(optional=True)
    error = Field(dict, optional=True)
    #: Once done, the result pairs, when small enough to ride here (committed with the state);
    #: else in the data store, at:
    result = Field(list, optional=True, check=_inline_pairs)
    result_ref = Field(str, optional=True)
    #: Once done: its invocations' counters summed, group -> name -> n (``docs/tracing.rst``).
    counters = Field(dict, optional=True)
    #: The trace of the invocation that finished it (done: the root's last run; failed: the
    #: invocation that failed), with its ``invocation_id`` and what it counted.
    finished_by = Field(dict, optional=True)
    created_at = created_at_field()
    finished_at = Field(float, optional=True)
