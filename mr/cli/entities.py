"""What the commands over the KV share: the configured entity store, errors as one line, the
``get``/``list``/``delete`` verbs every noun has, and output for people or, with ``--json``, for
programs.

Positional arguments name an entity the way JobX's scripts did, workflow first:
``WORKFLOW NAME``, or ``WORKFLOW REQUEST_ID INVOCATION_ID`` for request-scoped run state.
"""
from __future__ import annotations

import contextlib
import datetime
import json
from typing import Any, Callable, Iterator

from mr.cli import cluster_settings
from mr.cli.errors import UserError
from mr.data.base import DataError
from mr.kv import create_kv
from mr.kv.base import KVError, KVSpaceExceededError, TransactionTooLargeError
from mr.models import EntityStore, ModelError, Request, Workflow
from mr.models.base import Model, WorkflowEntity
from mr.settings import Settings

#: How a list verb shows one entity (from its ``to_dict()``) as one line.
Line = Callable[[dict], str]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn what a user can fix (a bad name, a missing entity, a server down) into UserError."""
    try:
        yield
    except (ModelError, TransactionTooLargeError, KVSpaceExceededError) as error:
        raise UserError(str(error)) from None
    except KVError as error:
        raise UserError(f"the KV store is not reachable: {error}") from None
    except DataError as error:
        raise UserError(f"the data store is not reachable: {error}") from None


def shared_kv_settings() -> Settings:
    """The settings, refused when they name the embedded KV: a command would write into, and
    read from, a store of its own that vanishes when it exits, and report success."""
    settings = Settings.load()
    if settings.kv_backend == "memory":
        where = cluster_settings.target()
        writes = f"writes its settings to {where}" if where else "prints its settings"
        raise UserError(
            "no KV store is configured (MR_KV_BACKEND is memory, a store private to this "
            f"command): start a cluster with mr cluster start, which {writes}, or set "
            "MR_KV_BACKEND=etcd, MR_ETCD_HOST and MR_ETCD_PORT")
    return settings


@contextlib.contextmanager
def open_store() -> Iterator[EntityStore]:
    """The entity store over the configured KV, closed afterwards."""
    settings = shared_kv_settings()
    kv = create_kv(settings)
    try:
        with user_errors():
            yield EntityStore(kv, settings.kv_prefix)
    finally:
        kv.close()


# Output

def add_json_option(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (for programs)")


def to_json(value: Any, indent: int | None = 2) -> str:
    """JSON of stored values; bytes, which JSON lacks, become their repr."""
    return json.dumps(value, indent=indent, default=repr)


def show(record: dict, as_json: bool) -> None:
    """One entity: JSON, or a ``field: value`` line per field, then each multi-line text (a
    handler's source) indented under its field name."""
    if as_json:
        print(to_json(record))
        return
    texts = {field: value for field, value in record.items()
             if isinstance(value, str) and "\n" in value}
    width = max(map(len, record)) + 1
    for field, value in record.items():
        if field not in texts:
            print(f"{field + ':':{width}} {_readable(field, value)}")
    for field, text in texts.items():
        print(f"{field}:")
        print("\n".join(("    " + line).rstrip() for line in text.splitlines()))


def show_all(records: list[dict], as_json: bool, line: Line) -> None:
    if as_json:
        print(to_json(records))
    else:
        for record in records:
            print(line(record))


def _readable(field: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if field.endswith("_at") and isinstance(value, float):
        return datetime.datetime.fromtimestamp(value).isoformat(sep=" ", timespec="seconds")
    return to_json(value, indent=None)


def first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]


# The verbs every noun has

def _add_positionals(parser, names: list[str]) -> None:
    for name in names:
        parser.add_argument(name, metavar=name.upper())


def _address_fields(cls: type[Model]) -> list[str]:
    """The names of the positional arguments that name one entity of ``cls``."""
    if not issubclass(cls, WorkflowEntity):
        return [cls.key_field]
    return ["workflow", *([cls.request_scope] if cls.request_scope else []), cls.key_field]


def _address(cls: type[Model], arguments) -> tuple[tuple, dict]:
    """The arguments of EntityStore.get/delete naming the entity the command line names."""
    if not issubclass(cls, WorkflowEntity):
        return (getattr(arguments, cls.key_field),), {}
    scope = {"request_id": getattr(arguments, cls.request_scope)} if cls.request_scope else {}
    return (arguments.workflow, getattr(arguments, cls.key_field)), scope


def add_get(verbs, cls: type[Model]) -> None:
    parser = verbs.add_parser("get", help=f"show one {cls.kind}")
    _add_positionals(parser, _address_fields(cls))
    add_json_option(parser)

    def run(arguments) -> int:
        positional, scope = _address(cls, arguments)
        with open_store() as store:
            show(store.get(cls, *positional, **scope).to_dict(), arguments.json)
        return 0
    parser.set_defaults(run=run)


def add_list(verbs, cls: type[Model], line: Line, omit: tuple[str, ...] = ()) -> None:
    """``list`` (of a workflow, or of a request, for request-scoped run state); ``omit``: fields
    too bulky for a listing, which ``get`` shows."""
    parser = verbs.add_parser("list", help=f"list the {cls.kind}s")
    _add_positionals(parser, _address_fields(cls)[:-1])
    add_json_option(parser)

    def run(arguments) -> int:
        with open_store() as store:
            entities = _list_in_scope(store, cls, arguments)
        records = [{field: value for field, value in entity.to_dict().items() if field not in omit}
                   for entity in entities]
        show_all(records, arguments.json, line)
        return 0
    parser.set_defaults(run=run)


def _list_in_scope(store: EntityStore, cls: type[Model], arguments) -> list[Model]:
    """The entities of ``cls`` in the scope the arguments name, which must exist: listing a
    misspelt workflow is an error, not an empty list."""
    if not issubclass(cls, WorkflowEntity):
        return store.list(cls)
    store.get(Workflow, arguments.workflow)
    if not cls.request_scope:
        return store.list(cls, arguments.workflow)
    request_id = getattr(arguments, cls.request_scope)
    store.get(Request, arguments.workflow, request_id)
    return store.list(cls, arguments.workflow, request_id=request_id)


def add_delete(verbs, cls: type[WorkflowEntity]) -> None:
    """``delete`` of a job, step or handler (the store refuses while another entity uses it)."""
    parser = verbs.add_parser("delete", help=f"delete a {cls.kind} that nothing uses")
    _add_positionals(parser, _address_fields(cls))

    def run(arguments) -> int:
        with open_store() as store:
            store.delete(cls, arguments.workflow, arguments.name)
        print(f"deleted {cls.kind} {arguments.name!r} of workflow {arguments.workflow!r}")
        return 0
    parser.set_defaults(run=run)


def create_and_show(model_factory: Callable[[], Model], as_json: bool) -> int:
    """Build the entity (its checks are user errors too), store it, show it as stored."""
    with open_store() as store:
        created = store.create(model_factory())
    show(created.to_dict(), as_json)
    return 0
