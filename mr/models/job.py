"""The job: the name clients POST to, pointing at the step a request starts with."""
from __future__ import annotations

from mr.models.base import Field, Reference, WorkflowEntity, name_field, positive
from mr.models.data_specs import check_input, check_output
from mr.models.step import Step
from mr.notify.channels import check_notify


class Job(WorkflowEntity):
    kind = "job"
    is_definition = True
    references = (Reference("initial_step_name", Step),)

    name = name_field()
    description = Field(str)
    initial_step_name = name_field()
    #: Seconds a request of this job may run before it fails; None: the cluster default.
    deadline_s = Field(float, optional=True, check=positive)
    #: The input requests read when they name none (see mr.models.data_specs).
    input = Field(dict, optional=True, check=check_input)
    #: Where results go when requests name nothing else; None: inline.
    output = Field(dict, optional=True, check=check_output)
    #: Where its requests' notifications go when they name none (see mr.notify.channels).
    notify = Field(list, optional=True, check=check_notify)
