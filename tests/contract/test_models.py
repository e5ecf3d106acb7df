"""The entity models over the KV interface: every test runs against the embedded store and etcd.

Every failing write is checked to leave the store exactly as it was (keys, values, revisions).
"""
import contextlib

import pytest

from mr import codec
from mr.codec import CodecError
from mr.kv.base import Compare
from mr.models import (AlreadyExistsError, ConflictError, EntityStore, Handler, InUseError,
                       InvalidReferenceError, Invocation, Job, ModelError, NotFoundError,
                       ReadOnlySessionError, Request, Session, Step, ValidationError, Workflow)
from mr.models.keys import Keys

ID_A, ID_B, ID_C = "a" * 32, "b" * 32, "c" * 32
SOURCE = {"mapper": "yield MrConfigureToReturn()\nfor k, v in arguments:\n    yield k, v\n",
          "combiner": "for k, vs in results:\n    yield k, vs\n",
          "reducer": "for k, vs in results:\n    yield k, sum(vs)\n"}
ARGUMENT = {"mapper": "arguments", "combiner": "results", "reducer": "results"}


def handler(name, handler_type, workflow="w", **changes):
    values = dict(workflow=workflow, name=name, description=f"the {handler_type} {name}",
                  argument_spec=[[ARGUMENT[handler_type], "list"]], source_type="python",
                  source_code=SOURCE[handler_type], handler_type=handler_type)
    return Handler(**{**values, **changes})


def step(name, workflow="w", **changes):
    values = dict(workflow=workflow, name=name, description="a step", map_handler_name="m",
                  reduce_handler_name="r")
    return Step(**{**values, **changes})


def job(name, workflow="w", **changes):
    return Job(**{**dict(workflow=workflow, name=name, description="a job",
                         initial_step_name="s"), **changes})


def request(request_id=None, workflow="w", **changes):
    return Request(**{**dict(workflow=workflow, request_id=request_id, job_name="j",
                             root_invocation_id=ID_C, blocking=True), **changes})


def invocation(invocation_id=None, workflow="w", **changes):
    return Invocation(**{**dict(workflow=workflow, invocation_id=invocation_id,
                                request_id=ID_C, step_name="s", direction="map"), **changes})


def contents(kv, prefix):
    """Everything under the test's prefix: keys, values and revisions."""
    return [(item.key, item.value, item.mod_revision)
            for item in kv.range(prefix.rstrip("/") + "/", prefix=True).kvs]


@contextlib.contextmanager
def nothing_written(kv, prefix):
    before = contents(kv, prefix)
    yield
    assert contents(kv, prefix) == before


@pytest.fixture
def store(kv, kv_prefix):
    return EntityStore(kv, kv_prefix)


@pytest.fixture
def populated(store):
    """Workflow ``w`` with handlers m (mapper), c (combiner), r (reducer) and step s."""
    store.create(Workflow(name="w", description="the workflow"))
    for name, handler_type in [("m", "mapper"), ("c", "combiner"), ("r", "reducer")]:
        store.create(handler(name, handler_type))
    store.create(step("s"))
    return store


# CRUD of every entity

ENTITIES = {
    # kind: (factory of an entity named by its argument, names to create, a change to update)
    "workflow": (lambda key: Workflow(name=key, description="d"), ("b", "a"),
                 {"description": "changed"}),
    "handler": (lambda key: handler(key, "mapper"), ("m2", "m1"), {"source_code": "yield 1"}),
    "step": (lambda key: step(key), ("s2", "s1"), {"combine_handler_name": "c"}),
    "job": (lambda key: job(key), ("j2", "j1"), {"description": "changed"}),
    "request": (lambda key: request(key), (ID_B, ID_A), {"state": "running"}),
    "invocation": (lambda key: invocation(key), (ID_B, ID_A),
                   {"state": "running", "attempts": 1}),
}


@pytest.mark.parametrize("kind", ENTITIES)
def test_crud(populated, kind):
    make, names, change = ENTITIES[kind]
    cls = type(make(names[0]))
    workflow = () if cls is Workflow else ("w",)
    scope = {"request_id": ID_C} if cls is Invocation else {}
    existing = [entity.key for entity in populated.list(cls, *workflow, **scope)]
    created = [populated.create(make(name)) for name in names]
    assert all(entity.mod_revision for entity in created)

    fetched = populated.get(cls, *workflow, names[0], **scope)
    assert fetched == created[0]
    assert fetched.mod_revision == created[0].mod_revision
    assert [entity.key for entity in populated.list(cls, *workflow, **scope)] == sorted(
        [*existing, *names])

    updated = populated.update(fetched.replace(**change))
    assert updated.mod_revision > fetched.mod_revision
    again = populated.get(cls, *workflow, names[0], **scope)
    assert again == updated and again.mod_revision == updated.mod_revision
    assert all(getattr(again, field) == value for field, value in change.items())

    populated.delete(cls, *workflow, names[0], **scope)
    assert populated.find(cls, *workflow, names[0], **scope) is None
    with pytest.raises(NotFoundError, match=f"{kind} '{names[0]}'.* does not exist"):
        populated.get(cls, *workflow, names[0], **scope)
    assert populated.find(cls, *workflow, names[1], **scope) == created[1]


def test_key_layout_and_stored_value(store, kv, kv_prefix):
    store.create(Workflow(name="w", description="d"))
    store.create(handler("m", "mapper"))
    store.create(handler("r", "reducer"))
    store.create(step("s"))
    store.create(job("j1"))
    store.create(request(ID_A))
    store.create(invocation(ID_B))
    Session(kv, "w", ID_C, ID_B, kv_prefix).set("k", 1)
    assert [key for key, _value, _revision in contents(kv, kv_prefix)] == sorted([
        f"{kv_prefix}/wf/w/code/{handler('m', 'mapper').version}",
        f"{kv_prefix}/wf/w/code/{handler('r', 'reducer').version}",
        f"{kv_prefix}/wf/w/definitions",
        f"{kv_prefix}/wf/w/handler/m", f"{kv_prefix}/wf/w/handler/r",
        f"{kv_prefix}/wf/w/job/j1", f"{kv_prefix}/wf/w/request/{ID_A}",
        f"{kv_prefix}/wf/w/run/{ID_C}/invocation/{ID_B}",
        f"{kv_prefix}/wf/w/run/{ID_C}/session/{ID_B}/k",
        f"{kv_prefix}/wf/w/step/s", f"{kv_prefix}/workflow/w"])
    stored = codec.decode(kv.get(f"{kv_prefix}/wf/w/job/j1").value)
    assert stored == {"workflow": "w", "description": "a job", "initial_step_name": "s"}


def test_a_create_under_guards_says_which_failed_before_anything_else(store, kv, kv_prefix):
    """A guard that still holds is no conflict: the create fails for its own reason."""
    marker = f"{kv_prefix}/marker"
    kv.put(marker, b"read")
    read_at = Compare(marker, "mod_revision", "==", kv.get(marker).mod_revision)
    store.create(Workflow(name="w", description="d"), guards=[read_at])
    with pytest.raises(AlreadyExistsError, match="^workflow 'w' already exists$"):
        store.create(Workflow(name="w", description="d"), guards=[read_at])
    kv.put(marker, b"changed")
    with pytest.raises(ConflictError,
                       match=f"^workflow 'w': {marker} changed since it was read$"):
        store.create(Workflow(name="w", description="d"), guards=[read_at])


def test_operations_read_and_write_only_their_own_prefix(kv, kv_prefix):
    assert Keys(kv_prefix + "/tenantX/").workflows() == f"{kv_prefix}/tenantX/workflow/"
    EntityStore(kv, kv_prefix + "/one").create(Workflow(name="w", description="d"))
    assert EntityStore(kv, kv_prefix + "/two").list(Workflow) == []
    assert EntityStore(kv, kv_prefix + "/one/").get(Workflow, "w").description == "d"


# Validation

@pytest.mark.parametrize("bad_name, problem", [
    ("a b", "may contain only"), ("a.b", "may contain only"), ("a/b", "may contain only"),
    ("", "must not be empty"), ("x" * 129, "longer than 128"), ("-a", "must start with"),
])
def test_invalid_entity_names_are_refused(bad_name, problem):
    with pytest.raises(ValidationError, match=f"^job: name .*{problem}"):
        job(bad_name)
    with pytest.raises(ValidationError, match=f"^job 'j1': initial_step_name .*{problem}"):
        job("j1", initial_step_name=bad_name)
    with pytest.raises(ValidationError, match=f"^step 's1': map_handler_name .*{problem}"):
        step("s1", map_handler_name=bad_name)


@pytest.mark.parametrize("bad_name", ["a b", "a.b", "a/b", "", "x" * 25])
def test_invalid_workflow_names_are_refused(bad_name):
    with pytest.raises(ValidationError, match="^workflow: workflow name"):
        Workflow(name=bad_name, description="d")
    with pytest.raises(ValidationError, match="^job 'j1': workflow name"):
        job("j1", workflow=bad_name)


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="^job 'j1': unknown field 'foo'$"):
        job("j1", foo=1)
    with pytest.raises(ValidationError, match="^step 's1': unknown fields 'x', 'y'$"):
        step("s1", x=1, y=2)


@pytest.mark.parametrize("make, field", [
    (lambda: Job(workflow="w", name="j1", initial_step_name="s"), "description"),
    (lambda: Job(workflow="w", name="j1", description="d"), "initial_step_name"),
    (lambda: Job(name="j1", description="d", initial_step_name="s"), "workflow"),
    (lambda: step("s1", reduce_handler_name=None), "reduce_handler_name"),
    (lambda: handler("h", "mapper", source_code=None), "source_code"),
    (lambda: request(blocking=None), "blocking"),
    (lambda: invocation(direction=None), "direction"),
])
def test_missing_required_fields_are_refused(make, field):
    with pytest.raises(ValidationError, match=f"missing required field '{field}'"):
        make()


def test_missing_key_field_is_refused():
    with pytest.raises(ValidationError, match="^job: missing required field 'name'"):
        Job(workflow="w", description="d", initial_step_name="s")


@pytest.mark.parametrize("make, field, expected, got", [
    (lambda: job("j1", description=3), "description", "str", "int"),
    (lambda: request(blocking="yes"), "blocking", "bool", "str"),
    (lambda: invocation(attempts=True), "attempts", "int", "bool"),
    (lambda: invocation(attempts=1.0), "attempts", "int", "float"),
    (lambda: invocation(created_at="now"), "created_at", "float", "str"),
    (lambda: request(context=[]), "context", "dict", "list"),
    (lambda: handler("h", "mapper", argument_spec="arguments"), "argument_spec", "list", "str"),
])
def test_wrong_types_are_refused(make, field, expected, got):
    with pytest.raises(ValidationError, match=f"field '{field}' must be {expected}, got {got}"):
        make()


@pytest.mark.parametrize("make, field", [
    (lambda: invocation(direction="up"), "direction"),
    (lambda: invocation(state="sleeping"), "state"),
    (lambda: request(state="lost"), "state"),
    (lambda: handler("h", "mapper").replace(handler_type="filter"), "handler_type"),
    (lambda: handler("h", "mapper", source_type="perl"), "source_type"),
])
def test_bad_enum_values_are_refused(make, field):
    with pytest.raises(ValidationError, match=f"field '{field}' must be one of"):
        make()


def test_defaults_and_generated_values():
    first, second = request(), invocation()
    assert first.state == "pending" and first.context == {} and first.handler_versions == {}
    assert second.state == "queued" and second.attempts == 0 and second.mapped_count is None
    assert len(first.request_id) == 32 and int(first.request_id, 16) >= 0
    assert request().request_id != first.request_id
    assert invocation().invocation_id != second.invocation_id
    assert isinstance(first.created_at, float) and first.created_at > 0


@pytest.mark.parametrize("bad_id", ["abc", "A" * 32, "g" * 32, "a" * 33])
def test_given_ids_must_be_32_hex_digits(bad_id):
    with pytest.raises(ValidationError, match="is not 32 lowercase hex digits"):
        request(bad_id)
    with pytest.raises(ValidationError, match="parent_invocation_id .* hex digits"):
        invocation(parent_invocation_id=bad_id)


def test_attempts_and_mapped_count_cannot_be_negative():
    with pytest.raises(ValidationError, match="'attempts' must be >= 0"):
        invocation(attempts=-1)
    with pytest.raises(ValidationError, match="'mapped_count' must be >= 0"):
        invocation(mapped_count=-1)


def test_handler_versions_map_names_to_versions():
    assert request(handler_versions={"m": "v1"}).handler_versions == {"m": "v1"}
    with pytest.raises(ValidationError, match="handler_versions key 'a b' may contain only"):
        request(handler_versions={"a b": "v1"})
    with pytest.raises(ValidationError, match="the version of 'm' must be str, got int"):
        request(handler_versions={"m": 1})


@pytest.mark.parametrize("slots", [
    {"map_handler_name": "x", "reduce_handler_name": "x"},  # JobX's chained check let this pass
    {"map_handler_name": "x", "combine_handler_name": "x"},
    {"combine_handler_name": "x", "reduce_handler_name": "x"},
])
def test_step_handlers_must_be_pairwise_distinct(slots):
    with pytest.raises(ValidationError, match="must name different handlers, both are 'x'"):
        step("s1", **{"map_handler_name": "m", "reduce_handler_name": "r", **slots})


@pytest.mark.parametrize("handler_type, names", [
    ("mapper", ["results"]), ("combiner", ["arguments"]), ("reducer", ["results", "extra"]),
])
def test_handler_argument_names_must_match_its_type(handler_type, names):
    with pytest.raises(ValidationError, match=f"a {handler_type}'s argument_spec must name"):
        handler("h", handler_type, argument_spec=[[name, "list"] for name in names])


@pytest.mark.parametrize("spec", [[["arguments"]], [["arguments", 1]], [["arguments", ""]],
                                  [["", "list"]], ["arguments"]])
def test_handler_argument_spec_must_be_name_type_pairs(spec):
    with pytest.raises(ValidationError, match="list of \\[name, type\\] pairs"):
        handler("h", "mapper", argument_spec=spec)


def test_handler_source_code_must_not_be_blank():
    with pytest.raises(ValidationError, match="'source_code' must not be empty"):
        handler("h", "mapper", source_code="  \n")


@pytest.mark.parametrize("given, normalized", [
    (None, "general"), ("none", "general"), ("None", "general"), ("", "general"),
    ("GPU", "gpu"), ("big-memory", "big-memory"),
])
def test_handler_capability_is_normalized(given, normalized):
    assert handler("h", "mapper", required_capability=given).required_capability == normalized


def test_handler_version_is_a_content_hash():
    base = handler("h", "mapper")
    assert len(base.version) == 64 and int(base.version, 16) >= 0
    assert handler("h", "mapper", description="other words").version == base.version
    assert handler("h2", "mapper").version == base.version
    for change in [{"source_code": "yield 2"}, {"required_capability": "gpu"},
                   {"argument_spec": [["arguments", "tuple"]]}]:
        assert handler("h", "mapper", **change).version != base.version
    assert base.replace(source_code="yield 2").version != base.version
    assert base.to_dict()["version"] == base.version  # what `mr handler get` shows


def test_handler_version_is_never_taken_from_the_caller():
    base = handler("h", "mapper")
    assert handler("h", "mapper", version=base.version) == base
    with pytest.raises(ValidationError, match="version is computed from the handler's content"):
        handler("h", "mapper", version="0" * 64)


def test_models_are_immutable_and_replace_checks():
    entity = job("j1")
    with pytest.raises(AttributeError, match="immutable"):
        entity.description = "x"
    with pytest.raises(ValidationError, match="initial_step_name"):
        entity.replace(initial_step_name="a b")
    assert entity.replace(description="x").description == "x" and entity.description == "a job"


def test_replace_checks_the_changes_and_the_rules_across_fields_and_keeps_the_rest():
    entity = step("s1", partitions=4, sort_values=True).with_revision(7)
    with pytest.raises(ValidationError, match="sort_values needs partitions"):
        entity.replace(partitions=None)  # each field is valid alone, the rule between them not
    with pytest.raises(ValidationError, match="unknown field 'colour'"):
        entity.replace(colour="red")
    with pytest.raises(ValidationError, match="step 's1': field 'partitions' must be int"):
        entity.replace(partitions="4")
    with pytest.raises(ValidationError, match="missing required field 'initial_step_name'"):
        job("j1").replace(initial_step_name=None)
    changed = entity.replace(partitions=8)
    assert (changed.partitions, changed.sort_values, changed.mod_revision) == (8, True, 7)
    assert changed == step("s1", partitions=8, sort_values=True) and entity.partitions == 4
    finished = request(ID_A, state="done").replace(state=None, finished_at=5)
    assert (finished.state, finished.finished_at) == ("pending", 5.0)  # None: the default


def test_a_models_repr_names_its_class_and_every_field():
    """What logs and tracebacks show of an entity."""
    assert repr(job("j1")) == ("Job(workflow='w', name='j1', description='a job', "
                               "initial_step_name='s', deadline_s=None, input=None, "
                               "output=None, notify=None)")


def test_errors_share_one_base():
    for error in [ValidationError, NotFoundError, AlreadyExistsError, ConflictError, InUseError,
                  InvalidReferenceError, ReadOnlySessionError]:
        assert issubclass(error, ModelError)
    assert issubclass(ValidationError, ValueError)


def test_a_stored_field_of_a_newer_version_is_kept_through_reads_and_writes(populated, kv,
                                                                         kv_prefix):
    """A rolling upgrade: a newer mr wrote a field this one does not know."""
    key = f"{kv_prefix}/wf/w/job/j1"
    kv.put(key, codec.encode({"workflow": "w", "description": "d", "initial_step_name": "s",
                              "foo": 1}))
    job = populated.get(Job, "w", "j1")
    assert (job.description, not hasattr(job, "foo")) == ("d", True)
    populated.update(job.replace(description="changed"))
    assert codec.decode(kv.get(key).value) == {"workflow": "w", "description": "changed",
                                               "initial_step_name": "s", "foo": 1}


def test_stored_records_that_cannot_be_models_are_refused(populated, kv, kv_prefix):
    key = f"{kv_prefix}/wf/w/job/j1"
    kv.put(key, codec.encode(["not", "a", "map"]))
    with pytest.raises(ValidationError, match="^stored job 'j1': the value is not a map"):
        populated.list(Job, "w")
    kv.put(key, codec.encode({"name": "j1", "workflow": "w"}))
    with pytest.raises(ValidationError, match="^stored job 'j1': the key field 'name' is in"):
        populated.get(Job, "w", "j1")
    kv.put(key, b"\xc1")
    with pytest.raises(ValidationError, match="^stored job 'j1': cannot decode"):
        populated.get(Job, "w", "j1")
    kv.put(key, codec.encode({"workflow": "w", "description": 7, "initial_step_name": "s"}))
    with pytest.raises(ValidationError, match="^stored job 'j1': field 'description' must be "
                                              "str, got int$"):
        populated.get(Job, "w", "j1")


def test_reads_check_the_names_they_are_given(populated):
    with pytest.raises(ValidationError, match="job: field 'name' must be str"):
        populated.get(Job, "w", None)
    with pytest.raises(ValidationError, match="may contain only"):
        populated.get(Job, "w", "../s")
    with pytest.raises(ValidationError, match="workflow name"):
        populated.list(Job, "a/b")
    with pytest.raises(TypeError, match="belongs to no workflow"):
        populated.list(Workflow, "w")
    with pytest.raises(TypeError, match="^a workflow is named by its name alone; got 'w', 'x'$"):
        populated.get(Workflow, "w", "x")
    with pytest.raises(TypeError, match="^invocation entities are named within their request: "
                                        "pass request_id$"):
        populated.list(Invocation, "w")
    with pytest.raises(TypeError, match="^job entities are not scoped by a request$"):
        populated.list(Job, "w", request_id=ID_A)


# Creating

@pytest.mark.parametrize("make", [
    lambda: handler("h", "mapper", workflow="nope"), lambda: step("s1", workflow="nope"),
    lambda: job("j1", workflow="nope"), lambda: request(workflow="nope"),
    lambda: invocation(workflow="nope"),
])
def test_create_in_missing_workflow_is_refused(populated, kv, kv_prefix, make):
    entity = make()
    with nothing_written(kv, kv_prefix), pytest.raises(
            NotFoundError, match=f"^{entity.label}: workflow 'nope' does not exist$"):
        populated.create(entity)


@pytest.mark.parametrize("make", [
    lambda: Workflow(name="w", description="again"), lambda: handler("m", "mapper"),
    lambda: step("s", description="again"), lambda: request(ID_A), lambda: invocation(ID_A),
])
def test_create_of_existing_entity_is_refused(populated, kv, kv_prefix, make):
    populated.create(request(ID_A))
    populated.create(invocation(ID_A))
    entity = make()
    with nothing_written(kv, kv_prefix), pytest.raises(
            AlreadyExistsError, match=f"^{entity.label} already exists"):
        populated.create(entity)


# References

def test_job_needs_its_initial_step(populated, kv, kv_prefix):
    with nothing_written(kv, kv_prefix), pytest.raises(
            InvalidReferenceError, match="^job 'j1': step 'nope' does not exist$"):
        populated.create(job("j1", initial_step_name="nope"))
    created = populated.create(job("j1"))
    with nothing_written(kv, kv_prefix), pytest.raises(
            InvalidReferenceError, match="^job 'j1': step 'nope' does not exist$"):
        populated.update(created.replace(initial_step_name="nope"))


@pytest.mark.parametrize("slots, problem", [
    ({"map_handler_name": "nope"}, "handler 'nope' does not exist"),
    ({"combine_handler_name": "nope"}, "handler 'nope' does not exist"),
    ({"reduce_handler_name": "nope"}, "handler 'nope' does not exist"),
    ({"map_handler_name": "c", "combine_handler_name": "m"},
     "map_handler_name names handler 'c', whose handler_type is 'combiner', not 'mapper'"),
    ({"combine_handler_name": "r", "reduce_handler_name": "c"},
     "combine_handler_name names handler 'r', whose handler_type is 'reducer', not 'combiner'"),
    ({"map_handler_name": "r", "reduce_handler_name": "m"},
     "map_handler_name names handler 'r', whose handler_type is 'reducer', not 'mapper'"),
])
def test_step_needs_handlers_of_the_right_type(populated, kv, kv_prefix, slots, problem):
    with nothing_written(kv, kv_prefix), pytest.raises(
            InvalidReferenceError, match=f"^step 's1': {problem}$"):
        populated.create(step("s1", **slots))
    existing = populated.get(Step, "w", "s")
    with nothing_written(kv, kv_prefix), pytest.raises(
            InvalidReferenceError, match=f"^step 's': {problem}$"):
        populated.update(existing.replace(**slots))


def test_step_without_combiner_is_valid(populated):
    assert populated.get(Step, "w", "s").combine_handler_name is None
    assert populated.create(step("s1", combine_handler_name="c")).combine_handler_name == "c"


def test_referenced_step_cannot_be_deleted(populated, kv, kv_prefix):
    populated.create(job("j1"))
    populated.create(job("j2"))
    with nothing_written(kv, kv_prefix), pytest.raises(
            InUseError, match="^step 's' of workflow 'w' is used by job 'j1' "
                              "\\(as initial_step_name\\), job 'j2'"):
        populated.delete(Step, "w", "s")
    populated.delete(Job, "w", "j1")
    populated.delete(Job, "w", "j2")
    populated.delete(Step, "w", "s")
    assert populated.find(Step, "w", "s") is None


def test_referenced_handler_cannot_be_deleted(populated, kv, kv_prefix):
    populated.create(step("s1", combine_handler_name="c"))
    with nothing_written(kv, kv_prefix), pytest.raises(
            InUseError, match="^handler 'c' of workflow 'w' is used by step 's1' "
                              "\\(as combine_handler_name\\)$"):
        populated.delete(Handler, "w", "c")
    with nothing_written(kv, kv_prefix), pytest.raises(
            InUseError, match="used by step 's' \\(as map_handler_name\\), step 's1'"):
        populated.delete(Handler, "w", "m")
    populated.delete(Step, "w", "s1")
    populated.delete(Handler, "w", "c")
    assert populated.find(Handler, "w", "c") is None


def test_referenced_handler_cannot_change_type_under_its_step(populated, kv, kv_prefix):
    populated.create(step("s1"))
    mapper = populated.get(Handler, "w", "m")
    as_reducer = mapper.replace(handler_type="reducer", argument_spec=[["results", "list"]])
    with nothing_written(kv, kv_prefix), pytest.raises(
            InUseError, match="^handler 'm': cannot be changed: step 's' uses it as "
                              "map_handler_name, which needs handler_type 'mapper'; step 's1' "
                              "uses it as map_handler_name, which needs handler_type 'mapper'$"):
        populated.update(as_reducer)
    assert populated.update(mapper.replace(source_code="yield 3")).source_code == "yield 3"
    populated.create(handler("m2", "mapper"))
    changed = populated.get(Handler, "w", "m2").replace(handler_type="reducer",
                                                        argument_spec=[["results", "list"]])
    assert populated.update(changed).handler_type == "reducer"


class Interleaving:
    """A KV that runs ``interfere`` once, right after the first read of ``key``.

    It stands for a concurrent writer that commits between a read and the write built on it.
    """

    def __init__(self, kv, key, interfere):
        self._kv = kv
        self._key = key
        self._interfere = interfere

    def __getattr__(self, name):
        return getattr(self._kv, name)

    def range(self, key, **options):
        result = self._kv.range(key, **options)
        self._fire_if(key)
        return result

    def get(self, key):
        result = self._kv.get(key)
        self._fire_if(key)
        return result

    def _fire_if(self, key):
        if key == self._key and self._interfere is not None:
            interfere, self._interfere = self._interfere, None
            interfere()


def test_referrer_created_during_a_delete_keeps_its_reference(populated, kv, kv_prefix):
    jobs = f"{kv_prefix}/wf/w/job/"
    racing = EntityStore(Interleaving(kv, jobs, lambda: populated.create(job("j1"))), kv_prefix)
    with pytest.raises(InUseError, match="used by job 'j1'"):
        racing.delete(Step, "w", "s")
    assert populated.get(Job, "w", "j1").initial_step_name == "s"
    assert populated.find(Step, "w", "s") is not None


def test_step_created_during_a_handler_delete_keeps_its_handler(populated, kv, kv_prefix):
    populated.create(handler("m2", "mapper"))
    steps = f"{kv_prefix}/wf/w/step/"
    racing = EntityStore(
        Interleaving(kv, steps, lambda: populated.create(step("s2", map_handler_name="m2"))),
        kv_prefix)
    with pytest.raises(InUseError, match="used by step 's2'"):
        racing.delete(Handler, "w", "m2")
    assert populated.find(Handler, "w", "m2") is not None


def test_reference_deleted_during_a_create_is_noticed(populated, kv, kv_prefix):
    step_key = f"{kv_prefix}/wf/w/step/s"
    racing = EntityStore(Interleaving(kv, step_key, lambda: populated.delete(Step, "w", "s")),
                         kv_prefix)
    with pytest.raises(InvalidReferenceError, match="^job 'j1': step 's' does not exist$"):
        racing.create(job("j1"))
    assert populated.find(Job, "w", "j1") is None


# Optimistic concurrency

def test_update_of_stale_read_is_a_conflict(populated, kv, kv_prefix):
    first = populated.get(Job, "w", populated.create(job("j1")).name)
    second = populated.get(Job, "w", "j1")
    populated.update(first.replace(description="first"))
    with nothing_written(kv, kv_prefix), pytest.raises(
            ConflictError, match="^job 'j1' changed since it was read"):
        populated.update(second.replace(description="second"))
    assert populated.get(Job, "w", "j1").description == "first"


def test_update_with_explicit_expected_revision(populated, kv, kv_prefix):
    created = populated.create(invocation(ID_A))
    running = populated.update(created.replace(state="running"),
                               expected_mod_revision=created.mod_revision)
    with nothing_written(kv, kv_prefix), pytest.raises(ConflictError):
        populated.update(running.replace(state="done"),
                         expected_mod_revision=created.mod_revision)
    assert populated.get(Invocation, "w", ID_A, request_id=ID_C).state == "running"


def test_update_without_a_revision_overwrites(populated):
    populated.create(job("j1"))
    populated.update(job("j1", description="fresh"))
    assert populated.get(Job, "w", "j1").description == "fresh"


def test_update_of_missing_entity_is_refused(populated, kv, kv_prefix):
    with nothing_written(kv, kv_prefix), pytest.raises(
            NotFoundError, match="^job 'j1' does not exist in workflow 'w'$"):
        populated.update(job("j1"))


def test_delete_of_missing_entity_is_refused(populated, kv, kv_prefix):
    with nothing_written(kv, kv_prefix), pytest.raises(
            NotFoundError, match="^job 'j1' of workflow 'w' does not exist$"):
        populated.delete(Job, "w", "j1")
    with nothing_written(kv, kv_prefix), pytest.raises(
            NotFoundError, match="^workflow 'nope' does not exist$"):
        populated.delete(Workflow, "nope")


# Workflow isolation and deletion

def build_workflow(store, name):
    store.create(Workflow(name=name, description=f"workflow {name}"))
    store.create(handler("m", "mapper", workflow=name))
    store.create(handler("r", "reducer", workflow=name))
    store.create(step("s", workflow=name))
    store.create(job("j1", workflow=name, description=f"j1 of {name}"))
    store.create(request(ID_A, workflow=name))
    store.create(invocation(ID_B, workflow=name))


def test_workflows_with_the_same_names_are_isolated(store):
    build_workflow(store, "a")
    build_workflow(store, "ab")  # "a" is a prefix of "ab": the trailing slash must separate them
    assert [entity.description for entity in store.list(Job, "a")] == ["j1 of a"]
    assert store.get(Job, "ab", "j1").description == "j1 of ab"
    store.delete(Job, "a", "j1")
    assert store.find(Job, "a", "j1") is None
    assert store.get(Job, "ab", "j1").description == "j1 of ab"


def test_deleting_a_workflow_removes_everything_under_its_prefix(store, kv, kv_prefix):
    build_workflow(store, "ab")
    others = contents(kv, kv_prefix)
    build_workflow(store, "a")
    Session(kv, "a", ID_C, ID_B, kv_prefix).set("k", 1)
    store.delete(Workflow, "a")
    assert contents(kv, kv_prefix) == others
    assert store.find(Workflow, "a") is None and store.list(Job, "a") == []
    assert [workflow.name for workflow in store.list(Workflow)] == ["ab"]


def test_a_recreated_workflow_starts_empty(store):
    build_workflow(store, "a")
    store.delete(Workflow, "a")
    store.create(Workflow(name="a", description="again"))
    assert store.list(Handler, "a") == [] and store.list(Request, "a") == []


# Sessions

def test_session_set_get_list_delete(kv, kv_prefix):
    session = Session(kv, "w", ID_C, ID_A, kv_prefix)
    value = {"nested": [1, 2.5, None, b"\x00"], "text": "é"}
    session.set("a", value)
    session.set("b", 2)
    session.set("b", 3)
    assert session.get("a") == value
    assert session.list() == {"a": value, "b": 3}
    assert Session(kv, "w", ID_C, ID_B, kv_prefix).list() == {}
    assert Session(kv, "other", ID_C, ID_A, kv_prefix).list() == {}
    assert session.delete_all() == 2
    assert session.list() == {}


def test_session_get_of_unset_key_is_a_key_error(kv, kv_prefix):
    with pytest.raises(KeyError, match="key 'missing' is not set"):
        Session(kv, "w", ID_C, ID_A, kv_prefix).get("missing")


@pytest.mark.parametrize("bad_key", ["a b", "a/b", "", "x" * 129])
def test_session_keys_must_be_names(kv, kv_prefix, bad_key):
    with nothing_written(kv, kv_prefix), pytest.raises(
            ValidationError, match=f"^session of invocation '{ID_A}': session key "):
        Session(kv, "w", ID_C, ID_A, kv_prefix).set(bad_key, 1)


def test_session_refuses_unencodable_values(kv, kv_prefix):
    with nothing_written(kv, kv_prefix), pytest.raises(CodecError, match="type set"):
        Session(kv, "w", ID_C, ID_A, kv_prefix).set("k", {1, 2})


def test_session_needs_a_valid_workflow_and_invocation(kv, kv_prefix):
    with pytest.raises(ValidationError, match="workflow name"):
        Session(kv, "a.b", ID_C, ID_A, kv_prefix)
    with pytest.raises(ValidationError, match="invocation_id 'x' is not 32 lowercase hex"):
        Session(kv, "w", ID_C, "x", kv_prefix)
    with pytest.raises(ValidationError, match=f"^session of invocation '{ID_A}': request_id 'x' "
                                              f"is not 32 lowercase hex digits$"):
        Session(kv, "w", "x", ID_A, kv_prefix)


def test_read_only_session_reads_but_refuses_writes(kv, kv_prefix):
    session = Session(kv, "w", ID_C, ID_A, kv_prefix)
    session.set("k", [1])
    view = session.read_only()
    assert view.get("k") == [1] and view.list() == {"k": [1]}
    with nothing_written(kv, kv_prefix):
        with pytest.raises(ReadOnlySessionError, match=(
                f"^cannot set 'k2': the session of invocation '{ID_A}' is read-only for its "
                f"reducer; only its mapper and combiner may write it$")):
            view.set("k2", 1)
        with pytest.raises(PermissionError, match=(
                f"^cannot delete the session of invocation '{ID_A}': it is read-only for its "
                f"reducer$")):
            view.delete_all()


def test_sessions_do_not_show_up_as_invocations(populated, kv, kv_prefix):
    populated.create(invocation(ID_A))
    Session(kv, "w", ID_C, ID_A, kv_prefix).set("k", 1)
    assert [entity.invocation_id
            for entity in populated.list(Invocation, "w", request_id=ID_C)] == [ID_A]


def test_every_definition_write_moves_the_workflow_definitions_marker(populated, kv, kv_prefix):
    marker = f"{kv_prefix}/wf/w/definitions"

    def revision():
        return kv.get(marker).mod_revision

    seen = [revision()]
    populated.create(job("j9"))
    seen.append(revision())
    populated.update(populated.get(Job, "w", "j9").replace(description="again"))
    seen.append(revision())
    populated.delete(Job, "w", "j9")
    seen.append(revision())
    populated.create(request(ID_A))  # run state is not a definition
    seen.append(revision())
    assert seen[0] < seen[1] < seen[2] < seen[3] == seen[4]
