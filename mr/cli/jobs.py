"""``mr job``: the names clients POST to, each starting a request at a step."""
from __future__ import annotations

from mr.cli.entities import add_delete, add_get, add_json_option, add_list, create_and_show
from mr.models import Job


def register(subparsers) -> None:
    parser = subparsers.add_parser("job", help="create, show, list and delete jobs")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = verbs.add_parser("create", help="create a job that starts requests at a step")
    for argument in ("workflow", "name", "description", "initial_step"):
        create.add_argument(argument, metavar=argument.upper())
    create.add_argument("--deadline-s", type=float, metavar="SECONDS",
                        help="how long a request may run before it fails (default: "
                             "MR_REQUEST_DEADLINE_S)")
    add_json_option(create)
    create.set_defaults(run=run_create)
    add_get(verbs, Job)
    add_list(verbs, Job, lambda job: f"{job['name']}\t{job['initial_step_name']}\t"
                                     f"{job['description']}")
    add_delete(verbs, Job)


def run_create(arguments) -> int:
    return create_and_show(lambda: Job(
        workflow=arguments.workflow, name=arguments.name, description=arguments.description,
        initial_step_name=arguments.initial_step, deadline_s=arguments.deadline_s),
        arguments.json)
