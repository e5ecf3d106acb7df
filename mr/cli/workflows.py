"""``mr workflow``: create, load, show, list and delete workflows in the configured KV store.

``load`` reads workflow definition directories (handler files plus ``workflow.yaml``, see
``mr.handlers.load``) and creates or updates everything in them.
"""
from __future__ import annotations

import json
from pathlib import Path

from mr.cli.entities import add_get, add_list, open_store
from mr.cli.errors import UserError
from mr.handlers.load import WorkflowDefinitionError, load_workflow, read_definition
from mr.models import Workflow


def register(subparsers) -> None:
    parser = subparsers.add_parser("workflow",
                                   help="create, load, show, list and delete workflows")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = verbs.add_parser("create", help="create an empty workflow")
    create.add_argument("name")
    create.add_argument("description", nargs="?", default="")
    create.set_defaults(run=run_create)
    load = verbs.add_parser("load", help="create or update workflows from definition directories")
    load.add_argument("definitions", nargs="+", type=Path, metavar="DIR")
    load.set_defaults(run=run_load)
    add_get(verbs, Workflow)
    add_list(verbs, Workflow, lambda workflow: f"{workflow['name']}\t{workflow['description']}")
    delete = verbs.add_parser("delete", help="delete a workflow and everything in it")
    delete.add_argument("name")
    delete.set_defaults(run=run_delete)


def run_create(arguments) -> int:
    with open_store() as store:
        workflow = store.create(Workflow(name=arguments.name, description=arguments.description))
    print(json.dumps(workflow.to_dict(), indent=2))
    return 0


def run_load(arguments) -> int:
    with open_store() as store:
        try:
            definitions = [read_definition(path) for path in arguments.definitions]
            for definition in definitions:
                load_workflow(store, definition)
                print(f"loaded workflow {definition.name}: {len(definition.handlers)} handlers, "
                      f"{len(definition.steps)} steps, {len(definition.jobs)} jobs")
        except WorkflowDefinitionError as error:
            raise UserError(str(error)) from None
    return 0


def run_delete(arguments) -> int:
    with open_store() as store:
        store.delete(Workflow, arguments.name)
    print(f"deleted workflow {arguments.name}")
    return 0
