"""The step: a mapper, an optional combiner (None: group by key) and a reducer."""
from __future__ import annotations

from mr.models.base import Field, Reference, WorkflowEntity, name_field, positive
from mr.models.handler import Handler

#: The handler slots of a step and the handler_type each needs.
HANDLER_SLOTS = {"map_handler_name": "mapper", "combine_handler_name": "combiner",
                 "reduce_handler_name": "reducer"}


class Step(WorkflowEntity):
    kind = "step"
    is_definition = True
    references = (*(Reference(slot, Handler, {"handler_type": handler_type})
                    for slot, handler_type in HANDLER_SLOTS.items()),
                  Reference("partitioner", Handler, {"handler_type": "partitioner"}))

    name = name_field()
    description = Field(str)
    map_handler_name = name_field()
    combine_handler_name = name_field(optional=True)
    reduce_handler_name = name_field()
    #: None: the step's reducer runs once per branch over all its children's output (JobX's
    #: tree). R: the output is partitioned by key and reduced by R invocations in parallel.
    partitions = Field(int, optional=True, check=positive)
    #: With partitions: each key's values reach the reducer sorted.
    sort_values = Field(bool, default=False)
    #: With partitions: the handler that chooses a key's partition (None: a checksum of the key).
    partitioner = name_field(optional=True)

    def check(self) -> None:
        for option in ("sort_values", "partitioner"):
            if getattr(self, option) and self.partitions is None:
                raise ValueError(f"{option} needs partitions: it is an option of the shuffle")
        named = [(slot, getattr(self, slot)) for slot in HANDLER_SLOTS if getattr(self, slot)]
        for index, (slot, handler) in enumerate(named):
            for other_slot, other_handler in named[index + 1:]:
                if handler == other_handler:
                    raise ValueError(f"{slot} and {other_slot} must name different handlers, "
                                     f"both are {handler!r}")
