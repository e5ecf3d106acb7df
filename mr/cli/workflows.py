"""``mr workflow``: create, load, list and delete workflows in the configured KV store.

``load`` reads workflow definition directories (handler files plus ``workflow.yaml``, see
``mr.handlers.load``) and creates or updates everything in them. JobX's
``mr_kv_workflow_create NAME DESCRIPTION`` is a thin entry point onto ``create``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from mr.cli.errors import UserError
from mr.handlers.load import WorkflowDefinitionError, load_workflow, read_definition
from mr.kv import create_kv
from mr.kv.base import KVError
from mr.models import EntityStore, ModelError, Workflow
from mr.settings import Settings


def register(subparsers) -> None:
    parser = subparsers.add_parser("workflow", help="create, load, list and delete workflows")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = verbs.add_parser("create", help="create an empty workflow")
    create.add_argument("name")
    create.add_argument("description", nargs="?", default="")
    create.set_defaults(run=run_create)
    load = verbs.add_parser("load", help="create or update workflows from definition directories")
    load.add_argument("definitions", nargs="+", type=Path, metavar="DIR")
    load.set_defaults(run=run_load)
    listing = verbs.add_parser("list", help="list the workflows")
    listing.set_defaults(run=run_list)
    delete = verbs.add_parser("delete", help="delete a workflow and everything in it")
    delete.add_argument("name")
    delete.set_defaults(run=run_delete)


def _store() -> tuple[EntityStore, object]:
    settings = Settings.load()
    kv = create_kv(settings)
    return EntityStore(kv, settings.kv_prefix), kv


def _run(action) -> int:
    store, kv = _store()
    try:
        return action(store)
    except (ModelError, WorkflowDefinitionError) as error:
        raise UserError(str(error)) from None
    except KVError as error:
        raise UserError(f"the KV store is not reachable: {error}") from None
    finally:
        kv.close()


def run_create(arguments) -> int:
    def create(store: EntityStore) -> int:
        workflow = store.create(Workflow(name=arguments.name, description=arguments.description))
        print(json.dumps(workflow.to_dict(), indent=2))
        return 0
    return _run(create)


def run_load(arguments) -> int:
    def load(store: EntityStore) -> int:
        definitions = [read_definition(path) for path in arguments.definitions]
        for definition in definitions:
            load_workflow(store, definition)
            print(f"loaded workflow {definition.name}: {len(definition.handlers)} handlers, "
                  f"{len(definition.steps)} steps, {len(definition.jobs)} jobs")
        return 0
    return _run(load)


def run_list(arguments) -> int:
    def listing(store: EntityStore) -> int:
        for workflow in store.list(Workflow):
            print(f"{workflow.name}\t{workflow.description}")
        return 0
    return _run(listing)


def run_delete(arguments) -> int:
    def delete(store: EntityStore) -> int:
        store.delete(Workflow, arguments.name)
        print(f"deleted workflow {arguments.name}")
        return 0
    return _run(delete)


def mr_kv_workflow_create() -> int:
    """JobX's ``mr_kv_workflow_create NAME DESCRIPTION``."""
    from mr.cli.main import main
    return main(["workflow", "create", *sys.argv[1:]])
