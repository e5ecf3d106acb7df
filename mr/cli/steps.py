"""``mr step``: a mapper, an optional combiner and a reducer, and re-pointing steps at other
handlers (JobX's ``mr_kv_step_set_handler`` and ``mr_kv_step_update_handlers``)."""
from __future__ import annotations

from mr.cli.entities import (add_delete, add_get, add_json_option, add_list, create_and_show,
                             open_store, show)
from mr.cli.errors import UserError
from mr.models import Handler, Step
from mr.models.step import HANDLER_SLOTS

#: The step slot that holds a handler of each type.
SLOT_OF_TYPE = {handler_type: slot for slot, handler_type in HANDLER_SLOTS.items()}


def register(subparsers) -> None:
    parser = subparsers.add_parser("step", help="create, show, list, delete and re-point steps")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    create = verbs.add_parser(
        "create", help="create a step of existing handlers",
        epilog="COMBINER is required; '' means none (values are then grouped by key).")
    for argument, metavar in (("workflow", "WORKFLOW"), ("name", "NAME"),
                              ("description", "DESCRIPTION"), ("map", "MAPPER"),
                              ("combine", "COMBINER"), ("reduce", "REDUCER")):
        create.add_argument(argument, metavar=metavar)
    create.add_argument("--partitions", type=int, metavar="R",
                        help="reduce the step's output by key in R partitions, in parallel")
    create.add_argument("--sort-values", action="store_true",
                        help="with --partitions: each key's values reach the reducer sorted")
    create.add_argument("--partitioner", metavar="HANDLER",
                        help="with --partitions: the partitioner handler that chooses each "
                             "key's partition")
    add_json_option(create)
    create.set_defaults(run=run_create)

    set_handler = verbs.add_parser("set-handler", help="replace some of a step's handlers")
    set_handler.add_argument("workflow", metavar="WORKFLOW")
    set_handler.add_argument("name", metavar="STEP")
    set_handler.add_argument("-m", "--map", metavar="MAPPER")
    set_handler.add_argument("-c", "--combine", metavar="COMBINER",
                             help="'' removes the combiner (values are then grouped by key)")
    set_handler.add_argument("-r", "--reduce", metavar="REDUCER")
    add_json_option(set_handler)
    set_handler.set_defaults(run=run_set_handler)

    update = verbs.add_parser(
        "update-handlers", help="re-point every step using one handler to another of its type")
    update.add_argument("workflow", metavar="WORKFLOW")
    update.add_argument("handler_type", choices=list(SLOT_OF_TYPE), metavar="HANDLER_TYPE",
                        help="mapper, combiner or reducer: the slot to change")
    update.add_argument("from_name", metavar="FROM")
    update.add_argument("to_name", metavar="TO")
    update.add_argument("-s", "--simulate", action="store_true",
                        help="show which steps would change, change nothing")
    update.set_defaults(run=run_update_handlers)

    add_get(verbs, Step)
    add_list(verbs, Step, lambda step: "\t".join(
        [step["name"], *(step[slot] or "-" for slot in HANDLER_SLOTS), step["description"]]))
    add_delete(verbs, Step)


def _combiner(name: str | None) -> str | None:
    """JobX's spelling of "no combiner" is the empty string."""
    return name or None


def run_create(arguments) -> int:
    return create_and_show(lambda: Step(
        workflow=arguments.workflow, name=arguments.name, description=arguments.description,
        map_handler_name=arguments.map, combine_handler_name=_combiner(arguments.combine),
        reduce_handler_name=arguments.reduce, partitions=arguments.partitions,
        sort_values=arguments.sort_values, partitioner=arguments.partitioner), arguments.json)


def run_set_handler(arguments) -> int:
    changes = {slot: value for slot, value in (("map_handler_name", arguments.map),
                                               ("combine_handler_name", arguments.combine),
                                               ("reduce_handler_name", arguments.reduce))
               if value is not None}
    if not changes:
        raise UserError("nothing to change: give -m MAPPER, -c COMBINER and/or -r REDUCER")
    if "combine_handler_name" in changes:
        changes["combine_handler_name"] = _combiner(changes["combine_handler_name"])
    with open_store() as store:
        step = store.get(Step, arguments.workflow, arguments.name)
        updated = store.update(step.replace(**changes))
    show(updated.to_dict(), arguments.json)
    return 0


def run_update_handlers(arguments) -> int:
    """All the steps change in one transaction, or none does."""
    slot = SLOT_OF_TYPE[arguments.handler_type]
    with open_store() as store:
        target = store.get(Handler, arguments.workflow, arguments.to_name)
        if target.handler_type != arguments.handler_type:
            raise UserError(f"handler {target.name!r} is a {target.handler_type}, not a "
                            f"{arguments.handler_type}")
        steps = [step for step in store.list(Step, arguments.workflow)
                 if getattr(step, slot) == arguments.from_name]
        if steps and not arguments.simulate:
            store.write_all(updates=[step.replace(**{slot: arguments.to_name})
                                     for step in steps])
    if not steps:
        print(f"no step of workflow {arguments.workflow!r} has {arguments.from_name!r} as its "
              f"{arguments.handler_type}")
    verb = "would re-point" if arguments.simulate else "re-pointed"
    for step in steps:
        print(f"{verb} step {step.name}: {slot} {arguments.from_name} -> {arguments.to_name}")
    return 0
