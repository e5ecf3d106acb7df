"""The workflow the front-end tests post to, ``w``:

- job ``j``: mapper ``m`` returns its arguments, reducer ``r`` sums each key's values;
- job ``fails``: mapper ``boom`` prints, then raises.
"""
from mr.models import EntityStore, Handler, Job, Step, Workflow

WORKFLOW = "w"
HANDLERS = {
    "m": ("mapper", "yield MrConfigureToReturn()\nfor k, v in arguments:\n    yield k, v\n"),
    "r": ("reducer", "for k, vs in results:\n    yield k, sum(vs)\n"),
    "boom": ("mapper", "print('about to fail')\nraise ValueError('no good')\nyield\n"),
}
ARGUMENT_NAMES = {"mapper": "arguments", "reducer": "results"}


def populate(store: EntityStore) -> None:
    store.create(Workflow(name=WORKFLOW, description="the front end's test workflow"))
    for name, (handler_type, source_code) in HANDLERS.items():
        store.create(Handler(workflow=WORKFLOW, name=name, description=f"{handler_type} {name}",
                             argument_spec=[[ARGUMENT_NAMES[handler_type], "list"]],
                             source_type="python", source_code=source_code,
                             handler_type=handler_type))
    for step, mapper in (("s", "m"), ("s_fails", "boom")):
        store.create(Step(workflow=WORKFLOW, name=step, description=f"step {step}",
                          map_handler_name=mapper, reduce_handler_name="r"))
    for job, step in (("j", "s"), ("fails", "s_fails")):
        store.create(Job(workflow=WORKFLOW, name=job, description=f"job {job}",
                         initial_step_name=step))
