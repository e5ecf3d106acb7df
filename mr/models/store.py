"""Create, read, update and delete entities over the KV interface.

Every write is one KV transaction whose compares guard everything the write depends on: the
workflow exists, the key is absent (create) or unchanged since read (update, delete), each
referenced entity is unchanged since it was checked. So a failed write leaves nothing behind,
and two racing writers cannot both succeed on stale reads.

References need one more thing. A write that names an entity (a job naming its initial step)
also rewrites that entity's value unchanged ("touches" it), which moves its mod_revision. A delete
reads the entity, then scans for referrers, then deletes comparing the mod_revision it read; a
referrer committed after the read has touched the entity, so the delete fails and is retried, and
its retry finds the new referrer. Without the touch, a job created between the scan and the
delete would be left pointing at nothing.
"""
from __future__ import annotations

from typing import Callable, Sequence

from mr.kv.base import KV, Compare, Delete, KeyValue, Operation, Put
from mr.models.base import Model, Reference, WorkflowEntity
from mr.models.errors import (AlreadyExistsError, ConflictError, InUseError,
                              InvalidReferenceError, NotFoundError, ValidationError)
from mr.models.keys import Keys

#: A write that loses a race to a concurrent writer is tried again, up to this many times.
MAX_ATTEMPTS = 10

#: One try of a write: its compares, its operations, and its touches (rewrites of the entities
#: it names, unchanged; see the module's docstring).
Attempt = Callable[[], tuple[list[Compare], list[Operation], list[Put]]]


class EntityStore:
    """The entities of every workflow, under the key prefix ``prefix`` (``docs/keys.rst``).

    Workflows are addressed by name alone (``get(Workflow, "w")``), every other entity by
    workflow and name (``get(Job, "w", "j1")``). Models read or written carry the KV
    ``mod_revision`` they were read or written at; :meth:`update` uses it for optimistic
    concurrency.
    """

    def __init__(self, kv: KV, prefix: str):
        self.kv = kv
        self.keys = Keys(prefix)

    # Keys

    def collection(self, cls: type[Model], workflow: str | None = None,
                   request_id: str | None = None) -> str:
        """The key prefix of every entity of ``cls`` (in ``workflow``, for workflow entities;
        of request ``request_id``, for request-scoped ones)."""
        if not issubclass(cls, WorkflowEntity):
            if workflow is not None:
                raise TypeError(f"a {cls.kind} belongs to no workflow; got workflow {workflow!r}")
            return self.keys.workflows()
        if (cls.request_scope is None) != (request_id is None):
            raise TypeError(f"{cls.kind} entities are " + (
                "named within their request: pass request_id" if request_id is None else
                "not scoped by a request"))
        if request_id is not None:
            request_id = _checked(cls, cls.request_scope, request_id)
        return self.keys.entities(cls.kind, _checked(cls, "workflow", workflow), request_id)

    def key_of(self, model: Model) -> str:
        if isinstance(model, WorkflowEntity):
            scope = getattr(model, model.request_scope) if model.request_scope else None
            return self.keys.entity(model.kind, model.workflow, model.key, scope)
        return self.keys.workflow(model.key)

    def _locate(self, cls: type[Model], workflow: str, name: str | None,
                request_id: str | None = None) -> tuple[str, str]:
        """The key and label of the entity that get/find/delete's arguments name."""
        if issubclass(cls, WorkflowEntity):
            collection = self.collection(cls, workflow, request_id)
            name = _checked(cls, cls.key_field, name)
            return collection + name, f"{cls.kind} {name!r} of workflow {workflow!r}"
        if name is not None:
            raise TypeError(f"a {cls.kind} is named by its name alone; got {workflow!r}, {name!r}")
        name = _checked(cls, cls.key_field, workflow)
        return self.collection(cls) + name, f"{cls.kind} {name!r}"

    # Reads

    def get(self, cls: type[Model], workflow: str, name: str | None = None, *,
            request_id: str | None = None) -> Model:
        """The entity; NotFoundError when it does not exist."""
        key, label = self._locate(cls, workflow, name, request_id)
        stored = self.kv.get(key)
        if stored is None:
            raise NotFoundError(f"{label} does not exist")
        return _load(cls, stored)

    def find(self, cls: type[Model], workflow: str, name: str | None = None, *,
             request_id: str | None = None) -> Model | None:
        """The entity, or None when it does not exist."""
        try:
            return self.get(cls, workflow, name, request_id=request_id)
        except NotFoundError:
            return None

    def list(self, cls: type[Model], workflow: str | None = None, *,
             request_id: str | None = None) -> list[Model]:
        """Every entity of ``cls`` (in ``workflow``, of request ``request_id``), sorted by name."""
        collection = self.collection(cls, workflow, request_id)
        return [_load(cls, stored) for stored in self.kv.range(collection, prefix=True).kvs]

    # Writes

    def create(self, model: Model, guards: Sequence[Compare] = ()) -> Model:
        """Store a new entity; AlreadyExistsError when its key is taken. Returns it as stored.

        ``guards``: compares saying that what the entity was built from is unchanged (a
        request's pinned definitions). When one fails, ConflictError and nothing written, before
        any other error: the caller reads again, builds anew, and its read finds the rest (a
        deleted workflow, say)."""
        return model.with_revision(self._write(model.label, *self._creating(model, guards)))

    def update(self, model: Model, expected_mod_revision: int | None = None) -> Model:
        """Replace a stored entity with ``model``; returns it as stored.

        ConflictError if the entity changed since ``expected_mod_revision`` (default: the
        model's own ``mod_revision``, set when it was read); both None: overwrite.
        """
        return model.with_revision(
            self._write(model.label, *self._updating(model, expected_mod_revision)))

    def delete(self, cls: type[Model], workflow: str, name: str | None = None, *,
               request_id: str | None = None) -> None:
        """Delete an entity that nothing refers to; a workflow goes with everything in it."""
        key, label = self._locate(cls, workflow, name, request_id)
        self._write(label, *self._deleting(cls, workflow, name, key, label))

    def write_all(self, creates: list[Model] = (), updates: list[Model] = (),
                  deletes: list[Model] = ()) -> int:
        """Create, update and delete several entities in one transaction: all or nothing.

        Each write is checked as on its own (updates against the revision their model was read
        at); returns the revision written. An entity written here that another write names is
        written, not touched; one deleted here that another names is InUseError.
        """
        deleted = {self.key_of(model): model.label for model in deletes}
        parts = ([self._creating(model) for model in creates]
                 + [self._updating(model, None) for model in updates]
                 + [self._deleting(type(model), model.workflow, model.key, self.key_of(model),
                                   model.label) for model in deletes])

        def attempt() -> tuple[list[Compare], list[Operation], list[Put]]:
            compares: list[Compare] = []
            operations: dict[str, Operation] = {}
            touches: dict[str, Put] = {}
            for write, _ in parts:
                write_compares, write_operations, write_touches = write()
                compares += write_compares
                for operation in write_operations:  # the definitions marker, say: keep one
                    operations.setdefault(f"{type(operation).__name__}:{operation.key}",
                                          operation)
                touches.update((touch.key, touch) for touch in write_touches)
            named_and_deleted = sorted(touches.keys() & deleted.keys())
            if named_and_deleted:
                raise InUseError(f"{deleted[named_and_deleted[0]]} is deleted by these writes "
                                 f"and named by another of them")
            return compares, list(operations.values()), [
                touch for key, touch in touches.items() if f"Put:{key}" not in operations]

        def explain() -> None:
            for _, explain_one in parts:
                explain_one()

        return self._write(f"{len(parts)} writes", attempt, explain)

    def _creating(self, model: Model,
                  guards: Sequence[Compare] = ()) -> tuple[Attempt, Callable[[], None]]:
        key = self.key_of(model)
        value = model.encode()

        def attempt() -> tuple[list[Compare], list[Operation], list[Put]]:
            targets = self._check_references(model)
            return ([*self._workflow_exists(model), Compare(key, "version", "==", 0),
                     *_unchanged(targets), *guards],
                    [Put(key, value), *model.companion_writes(self.keys),
                     *self._definitions_marked(type(model), model)], _touches(targets))

        def explain() -> None:
            for guard in guards:
                if not guard.holds_for(self.kv.get(guard.key)):
                    raise ConflictError(f"{model.label}: {guard.key} changed since it was read")
            self._require_workflow(model)
            if self.kv.get(key) is not None:
                raise AlreadyExistsError(f"{model.label} already exists"
                                         + _in_workflow(model))

        return attempt, explain

    def _updating(self, model: Model,
                  expected_mod_revision: int | None) -> tuple[Attempt, Callable[[], None]]:
        key = self.key_of(model)
        value = model.encode()
        expected = model.mod_revision if expected_mod_revision is None else expected_mod_revision

        def attempt() -> tuple[list[Compare], list[Operation], list[Put]]:
            current = self.kv.get(key)
            if current is None:
                raise NotFoundError(f"{model.label} does not exist" + _in_workflow(model))
            if expected is not None and current.mod_revision != expected:
                raise ConflictError(f"{model.label} changed since it was read (mod_revision "
                                    f"{expected}, now {current.mod_revision})")
            self._check_referrers_accept(model)
            targets = self._check_references(model)
            return ([Compare(key, "mod_revision", "==", current.mod_revision),
                     *_unchanged(targets)],
                    [Put(key, value), *model.companion_writes(self.keys),
                     *self._definitions_marked(type(model), model)], _touches(targets))

        return attempt, _nothing_to_explain

    def _deleting(self, cls: type[Model], workflow: str, name: str | None, key: str,
                  label: str) -> tuple[Attempt, Callable[[], None]]:
        def attempt() -> tuple[list[Compare], list[Operation], list[Put]]:
            current = self.kv.get(key)
            if current is None:
                raise NotFoundError(f"{label} does not exist")
            operations: list[Operation] = [Delete(key), *self._definitions_marked(cls, workflow)]
            if issubclass(cls, WorkflowEntity):
                referrers = self._referrers(cls, workflow, name)
                if referrers:
                    users = ", ".join(f"{referrer.label} (as {reference.field})"
                                      for referrer, reference in referrers)
                    raise InUseError(f"{label} is used by {users}")
            else:
                operations.append(Delete(self.keys.workflow_scope(workflow), prefix=True))
            return [Compare(key, "mod_revision", "==", current.mod_revision)], operations, []

        return attempt, _nothing_to_explain

    def _write(self, label: str, attempt: Attempt, explain: Callable[[], None]) -> int:
        """Run ``attempt``'s transaction until it succeeds; returns the revision it wrote.

        After a failed transaction ``explain`` raises the error that a compare stands for;
        when it does not (a referenced entity changed), the attempt is made again from fresh
        reads. Attempts raise their own errors for what they read.
        """
        for _ in range(MAX_ATTEMPTS):
            compares, operations, touches = attempt()
            result = self.kv.txn(compares, [*operations, *touches])
            if result.succeeded:
                return result.revision
            explain()
        raise ConflictError(f"{label}: gave up after {MAX_ATTEMPTS} attempts: what it depends on "
                            f"kept changing")

    def _definitions_marked(self, cls: type[Model], model_or_workflow) -> list[Operation]:
        if not cls.is_definition:
            return []
        workflow = getattr(model_or_workflow, "workflow", model_or_workflow)
        return [Put(self.keys.definitions(workflow), b"")]

    # Guards

    def _workflow_exists(self, model: Model) -> list[Compare]:
        if not isinstance(model, WorkflowEntity):
            return []
        return [Compare(self.keys.workflow(model.workflow), "version", ">", 0)]

    def _require_workflow(self, model: Model) -> None:
        if (isinstance(model, WorkflowEntity)
                and self.kv.get(self.keys.workflow(model.workflow)) is None):
            raise NotFoundError(f"{model.label}: workflow {model.workflow!r} does not exist")

    def _check_references(self, model: Model) -> list[KeyValue]:
        """The stored entities ``model`` names, after checking they exist and fit."""
        targets: dict[str, KeyValue] = {}
        for reference in model.references:
            name = getattr(model, reference.field)
            if name is None:
                continue
            key = self.keys.entity(reference.target.kind, model.workflow, name)
            stored = self.kv.get(key)
            if stored is None:
                self._require_workflow(model)
                raise InvalidReferenceError(
                    f"{model.label}: {reference.target.kind} {name!r} does not exist")
            target = _load(reference.target, stored)
            for field, needed in reference.requires.items():
                if getattr(target, field) != needed:
                    raise InvalidReferenceError(
                        f"{model.label}: {reference.field} names {target.label}, whose {field} "
                        f"is {getattr(target, field)!r}, not {needed!r}")
            targets[key] = stored
        return list(targets.values())

    def _check_referrers_accept(self, model: Model) -> None:
        """Refuse to change a referenced entity so that its referrers' requirements fail."""
        if not isinstance(model, WorkflowEntity):
            return
        unmet = []
        for referrer, reference in self._referrers(type(model), model.workflow, model.key):
            for field, needed in reference.requires.items():
                if getattr(model, field) != needed:
                    unmet.append(f"{referrer.label} uses it as {reference.field}, which needs "
                                 f"{field} {needed!r}")
        if unmet:
            raise InUseError(f"{model.label}: cannot be changed: {'; '.join(unmet)}")

    def referrers(self, cls: type[Model], workflow: str,
                  name: str) -> list[tuple[Model, Reference]]:
        """The entities of ``workflow`` that name entity ``name`` of ``cls``, with the
        reference through which each names it."""
        return self._referrers(cls, workflow, name)

    def _referrers(self, cls: type[Model], workflow: str,
                   name: str) -> list[tuple[Model, Reference]]:
        """The entities of ``workflow`` whose reference fields name entity ``name`` of ``cls``."""
        found = []
        for referrer_cls in Model.registry:
            references = [r for r in referrer_cls.references if r.target is cls]
            if references:
                found += [(referrer, reference)
                          for referrer in self.list(referrer_cls, workflow)
                          for reference in references
                          if getattr(referrer, reference.field) == name]
        return found


def _nothing_to_explain() -> None:
    """A failed compare of an update or delete means only "changed since read": try again."""


def _checked(cls: type[Model], field: str, value: object) -> str:
    """A name argument, checked by the field that holds such names."""
    try:
        return cls.fields[field].validate(value)
    except ValueError as error:
        raise ValidationError(f"{cls.kind}: {error}") from None


def _load(cls: type[Model], stored: KeyValue) -> Model:
    name = stored.key.rsplit("/", 1)[1]
    return cls.decode(name, stored.value).with_revision(stored.mod_revision)


def _in_workflow(model: Model) -> str:
    return f" in workflow {model.workflow!r}" if isinstance(model, WorkflowEntity) else ""


def _unchanged(targets: list[KeyValue]) -> list[Compare]:
    return [Compare(t.key, "mod_revision", "==", t.mod_revision) for t in targets]


def _touches(targets: list[KeyValue]) -> list[Put]:
    return [Put(t.key, t.value, t.lease) for t in targets]
