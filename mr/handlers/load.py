"""Workflow definition directories: handler files plus a ``workflow.yaml`` naming steps and jobs.

A definition directory holds one handler per file: ``*.py`` files (Python handlers) and
executables starting with ``#!`` (``exec`` handlers); files and directories starting with ``_``
or ``.`` are skipped. A handler's name is its path relative to the directory, ``/`` replaced by
``_``, without the suffix. ``workflow.yaml`` (YAML, read with the safe loader)::

    workflow: wordcount            # the workflow's name (default: the directory's name)
    description: Counts words.
    steps:
      count: {mapper: count_map, reducer: count_reduce}          # combiner: optional
    jobs:
      wordcount: {step: count, description: Count the words of documents.}

Loading creates what is missing and updates what changed, so loading the same directory twice
is harmless. Every file is parsed and checked before anything is written.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from mr.handlers.format import HandlerFormatError, parse_handler_source, source_type_of
from mr.models import EntityStore, Handler, Job, ModelError, Step, Workflow

MANIFEST = "workflow.yaml"


class WorkflowDefinitionError(ValueError):
    """A definition directory that cannot be loaded; the message names the file and reason."""


@dataclasses.dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    description: str
    handlers: list[Handler]
    steps: list[Step]
    jobs: list[Job]


def read_definition(directory: Path) -> WorkflowDefinition:
    """Parse and check a definition directory without writing anything."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    try:
        manifest = yaml.safe_load(manifest_path.read_text()) or {}
    except OSError as error:
        raise WorkflowDefinitionError(f"{manifest_path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise WorkflowDefinitionError(f"{manifest_path}: not valid YAML: {error}") from None
    if not isinstance(manifest, dict):
        raise WorkflowDefinitionError(f"{manifest_path}: must be a mapping")
    unknown = set(manifest) - {"workflow", "description", "steps", "jobs"}
    if unknown:
        raise WorkflowDefinitionError(f"{manifest_path}: unknown keys {', '.join(sorted(unknown))}")
    name = manifest.get("workflow", directory.resolve().name)
    handlers, errors = scan_handlers(name, directory)
    if errors:
        raise WorkflowDefinitionError("\n".join(errors))
    try:
        steps = [Step(workflow=name, name=step, description=_get(spec, "description", ""),
                      map_handler_name=_get(spec, "mapper"),
                      combine_handler_name=_get(spec, "combiner", None),
                      reduce_handler_name=_get(spec, "reducer"),
                      partitions=_get(spec, "partitions", None),
                      sort_values=_get(spec, "sort_values", False),
                      partitioner=_get(spec, "partitioner", None))
                 for step, spec in _mapping(manifest, "steps").items()]
        jobs = [Job(workflow=name, name=job, description=_get(spec, "description", ""),
                    initial_step_name=_get(spec, "step"),
                    deadline_s=_get(spec, "deadline_s", None), input=_get(spec, "input", None),
                    output=_get(spec, "output", None), notify=_get(spec, "notify", None))
                for job, spec in _mapping(manifest, "jobs").items()]
        Workflow(name=name, description=str(manifest.get("description", "")))
    except (ModelError, ValueError) as error:
        raise WorkflowDefinitionError(f"{manifest_path}: {error}") from None
    return WorkflowDefinition(name, str(manifest.get("description", "")), handlers, steps, jobs)


def read_handler(path: Path, workflow: str, name: str) -> Handler | None:
    """The handler a file defines, as the KV would store it (so with the version the KV would
    show); None for a file that is no handler: neither ``*.py`` nor starting with ``#!``.
    Raises HandlerFormatError, or ModelError/ValueError for metadata the model refuses."""
    content = path.read_bytes()
    if not path.name.endswith(".py") and not content.startswith(b"#!"):
        return None  # not a handler, whatever else it is (a README, an image)
    text = content.decode()
    source = parse_handler_source(text, str(path), source_type_of(path.name, text))
    return Handler(workflow=workflow, name=name, description=source.description,
                   argument_spec=source.argument_spec, source_type=source.source_type,
                   source_code=source.source_code, handler_type=source.handler_type,
                   required_capability=source.required_capability)


def scan_handlers(workflow: str, directory: Path) -> tuple[list[Handler], list[str]]:
    """Every handler file under ``directory``, parsed and checked, and every problem found as
    ``file:line: reason`` (all of them, not just the first)."""
    handlers, errors = [], []
    for path in _candidate_files(Path(directory)):
        name = "_".join(path.relative_to(directory).with_suffix("").parts)
        try:
            handler = read_handler(path, workflow, name)
        except HandlerFormatError as error:
            errors.append(str(error))
        except UnicodeDecodeError:
            errors.append(f"{path}:1: not UTF-8 text")
        except (ModelError, ValueError) as error:
            errors.append(f"{path}:1: {error}")
        else:
            if handler is not None:
                handlers.append(handler)
    return handlers, errors


def _candidate_files(directory: Path) -> list[Path]:
    """Every file, but none that is, or is inside, something named ``_*`` or ``.*``."""
    return sorted(path for path in directory.rglob("*")
                  if path.is_file() and path.name != MANIFEST
                  and not any(part.startswith(("_", "."))
                              for part in path.relative_to(directory).parts))


def _mapping(manifest: dict, key: str) -> dict[str, dict]:
    value = manifest.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError(f"{key!r} must map names to mappings")
    return value


def _get(spec: dict, key: str, *default: Any) -> Any:
    if key not in spec and not default:
        raise ValueError(f"missing {key!r} in {spec!r}")
    return spec.get(key, *default)


def load_workflow(store: EntityStore, definition: WorkflowDefinition) -> None:
    """Create or update the workflow and its handlers, then its steps, then its jobs (the
    order in which they refer to each other)."""
    if store.find(Workflow, definition.name) is None:
        store.create(Workflow(name=definition.name, description=definition.description))
    for entity in [*definition.handlers, *definition.steps, *definition.jobs]:
        current = store.find(type(entity), definition.name, entity.key)
        if current is None:
            store.create(entity)
        elif current != entity:
            store.update(entity.with_revision(current.mod_revision))
