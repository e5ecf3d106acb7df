"""A small declarative base for entities: typed fields, checked once, at construction.

Models are immutable: a changed entity is a new model (:meth:`Model.replace`), so a model that
exists has passed every check, and the store never writes an unchecked value. The key field is
part of the KV key; every other field is stored in the value, encoded with :mod:`mr.codec`.
"""
from __future__ import annotations

import copy
import dataclasses
import re
import time
import uuid
from typing import Any, Callable, ClassVar

from mr import codec
from mr.models.errors import ValidationError
from mr.models.names import check_name, check_workflow_name

_MISSING = object()

#: What a field's ``check`` does: return the accepted (maybe normalized) value or raise
#: ValueError with a message that starts with the field name (the ``what`` argument).
Check = Callable[[Any, str], Any]


class Field:
    """One declared attribute of a model: its type, whether it may be omitted or None, its checks.

    Given None, a field with a default takes the default (so ``Request(request_id=None)`` gets a
    fresh id); an ``optional`` field keeps None; any other field is missing.
    """

    def __init__(self, type_: type, *, default: Any = _MISSING,
                 default_factory: Callable[[], Any] | None = None, optional: bool = False,
                 choices: tuple[str, ...] = (), check: Check | None = None):
        self.type = type_
        self.default = default
        self.default_factory = default_factory
        self.optional = optional
        self.choices = choices
        self.check = check
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def resolve(self, value: Any) -> Any:
        """The field's value given ``value`` (None or _MISSING: not given)."""
        if value is None or value is _MISSING:
            if self.default_factory is not None:
                return self.default_factory()
            if self.default is not _MISSING:
                return self.default
            if self.optional:
                return None
            raise ValueError(f"missing required field {self.name!r}")
        return self.validate(value)

    def validate(self, value: Any) -> Any:
        """``value`` if the field accepts it (normalized by ``check``), else ValueError."""
        if type(value) is not self.type:  # most values are of the very type: one comparison
            value = self._converted(value)
        if self.choices and value not in self.choices:
            allowed = ", ".join(repr(choice) for choice in self.choices)
            raise ValueError(f"field {self.name!r} must be one of {allowed}, got {value!r}")
        return self.check(value, self.name) if self.check is not None else value

    def _converted(self, value: Any) -> Any:
        """A value of another type than the field's: an int for a float field becomes one, a
        subclass is accepted (but no bool for an int), anything else is refused."""
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, self.type) or isinstance(value, bool):
            raise ValueError(f"field {self.name!r} must be {self.type.__name__}, "
                             f"got {type(value).__name__}")
        return value


# Checks shared by the entities.

_HEX_ID = re.compile(r"[0-9a-f]{32}\Z")


def new_id() -> str:
    """A fresh request or invocation id: 32 hex digits, random (uuid4)."""
    return uuid.uuid4().hex


def valid_hex_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _HEX_ID.match(value):
        raise ValueError(f"{what} {value!r} is not 32 lowercase hex digits")
    return value


def valid_name(value: str, what: str) -> str:
    return check_name(value, what)


def valid_workflow_name(value: str, what: str) -> str:
    return check_workflow_name(value)


def non_negative(value: int, what: str) -> int:
    if value < 0:
        raise ValueError(f"field {what!r} must be >= 0, got {value}")
    return value


def positive(value: float, what: str) -> float:
    if value <= 0:
        raise ValueError(f"field {what!r} must be > 0, got {value}")
    return value


def name_field(**options: Any) -> Field:
    return Field(str, check=valid_name, **options)


def id_field(**options: Any) -> Field:
    return Field(str, check=valid_hex_id, **options)


def created_at_field() -> Field:
    return Field(float, default_factory=time.time)


@dataclasses.dataclass(frozen=True)
class Reference:
    """A field naming another entity of the same workflow, which must exist while it is named.

    ``requires`` are field values the named entity must have, e.g. the handler in a step's map
    slot must be a mapper. The store checks references on every write of the referring entity,
    refuses to delete a referenced one, and refuses to change a referenced one so that it no
    longer meets ``requires``.
    """
    field: str
    target: type["Model"]
    requires: dict[str, Any] = dataclasses.field(default_factory=dict)


class Model:
    """An entity: a ``kind`` (its KV key segment), a key field, and checked fields."""

    kind: ClassVar[str]
    key_field: ClassVar[str] = "name"
    references: ClassVar[tuple[Reference, ...]] = ()
    #: Jobs, steps and handlers: the definitions a request is accepted with. Each write of one
    #: also rewrites the workflow's definitions marker (Keys.definitions).
    is_definition: ClassVar[bool] = False
    fields: ClassVar[dict[str, Field]] = {}
    #: Every concrete model, so that the store can find the referrers of an entity.
    registry: ClassVar[list[type["Model"]]] = []
    #: Stored fields of a newer mr, kept as read (see :meth:`encode`); empty for most.
    _unknown_stored: dict[str, Any] = {}

    mod_revision: int | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.fields = {name: value for klass in reversed(cls.__mro__)
                      for name, value in vars(klass).items() if isinstance(value, Field)}
        if "kind" in vars(cls):
            Model.registry.append(cls)

    def __init__(self, **values: Any):
        key_field = self.fields[self.key_field]
        try:
            key = key_field.resolve(values.get(self.key_field))
        except ValueError as error:
            raise ValidationError(f"{self.kind}: {error}") from None
        label = f"{self.kind} {key!r}"
        unknown = [field for field in values if field not in self.fields]
        if unknown:
            listed = ", ".join(repr(field) for field in unknown)
            raise ValidationError(f"{label}: unknown field{'s' if len(unknown) > 1 else ''} "
                                  f"{listed}")
        resolved = {"mod_revision": None}
        try:
            for name, field in self.fields.items():
                resolved[name] = key if name == self.key_field else field.resolve(values.get(name))
            self.__dict__.update(resolved)  # at once: models are read and made per request
            self.check()
        except ValueError as error:
            raise ValidationError(f"{label}: {error}") from None

    def check(self) -> None:
        """Rules across fields; raise ValueError. Runs after every field was accepted."""

    def companion_writes(self, keys) -> list:
        """KV writes that belong in the same transaction as every write of this entity."""
        return []

    @property
    def key(self) -> str:
        """The value of the key field: the last segment of the entity's KV key."""
        return getattr(self, self.key_field)

    @property
    def label(self) -> str:
        """How messages name this entity: ``job 'j1'``."""
        return f"{self.kind} {self.key!r}"

    def to_dict(self) -> dict[str, Any]:
        """Every field, as stored (plus the key field)."""
        return {name: getattr(self, name) for name in self.fields}

    def replace(self, **changes: Any) -> "Model":
        """A checked copy with ``changes``; it keeps the mod_revision, for :meth:`update`, and
        the stored fields this version does not know. The fields left as they were passed
        their checks already: only the changed ones and the rules across fields are checked
        again (a finishing request is replaced twice per invocation that finishes it)."""
        unknown = [field for field in changes if field not in self.fields]
        if unknown or self.key_field in changes:  # refused, or another entity: made anew
            return self._rebuilt(changes)
        model = copy.copy(self)
        try:
            for name, value in changes.items():
                object.__setattr__(model, name, self.fields[name].resolve(value))
            model.check()
        except ValueError as error:
            raise ValidationError(f"{self.label}: {error}") from None
        return model

    def _rebuilt(self, changes: dict[str, Any]) -> "Model":
        values = {name: getattr(self, name) for name in self.fields}
        model = type(self)(**{**values, **changes}).with_revision(self.mod_revision)
        object.__setattr__(model, "_unknown_stored", self._unknown_stored)
        return model

    def with_revision(self, mod_revision: int | None) -> "Model":
        """A copy that records the KV mod_revision it was read or written at."""
        model = copy.copy(self)
        object.__setattr__(model, "mod_revision", mod_revision)
        return model

    def encode(self) -> bytes:
        """The stored value: every field but the key field (which is in the KV key) and those
        that are None (absent reads as None), plus the fields of a newer version of mr that
        this one read and does not know, so that a rolling upgrade loses nothing."""
        return codec.encode({**self._unknown_stored,
                             **{name: value for name, value in self.to_dict().items()
                                if name != self.key_field and value is not None}})

    @classmethod
    def decode(cls, key: str, data: bytes) -> "Model":
        """The model stored under the key field value ``key`` as ``data``."""
        label = f"stored {cls.kind} {key!r}"
        try:
            values = codec.decode(data)
        except codec.CodecError as error:
            raise ValidationError(f"{label}: {error}") from None
        if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
            raise ValidationError(f"{label}: the value is not a map of field names to values")
        if cls.key_field in values:
            raise ValidationError(f"{label}: the key field {cls.key_field!r} is in the value")
        unknown = {name: values.pop(name) for name in list(values) if name not in cls.fields}
        try:
            model = cls(**values, **{cls.key_field: key})
        except ValidationError as error:
            raise ValidationError(f"stored {error}") from None
        if unknown:
            object.__setattr__(model, "_unknown_stored", unknown)
        return model

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self.label} is immutable; use replace() to change it")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    __hash__ = None  # mutable containers inside: equal, but not hashable

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.to_dict().items())
        return f"{type(self).__name__}({fields})"


class WorkflowEntity(Model):
    """An entity that lives inside one workflow's namespace.

    An entity that is run state of one request names the field holding the request id in
    ``request_scope``; it is then kept under that request's run prefix and removed with it.
    """

    request_scope: ClassVar[str | None] = None

    workflow = Field(str, check=valid_workflow_name)
