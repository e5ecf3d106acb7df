"""What the entity store promises beyond single writes: several writes in one transaction are
all or nothing and each is checked as on its own, and a write that keeps losing races gives up
with an error naming it. Against the embedded store and etcd, like tests/contract/test_models.py.
"""
import pytest

from mr.models import (AlreadyExistsError, ConflictError, EntityStore, Handler, InUseError, Job,
                       NotFoundError, Step, Workflow)
from tests.contract.test_models import handler, job, nothing_written, populated, step, store

__all__ = ["populated", "store"]  # fixtures of test_models, used here too


def sync_writes(store) -> dict:
    """What a sync of handlers writes: handler ``new`` created, ``changed`` updated, ``old``
    deleted."""
    store.create(handler("old", "mapper"))
    store.create(handler("changed", "mapper"))
    return {"creates": [handler("new", "mapper")],
            "updates": [store.get(Handler, "w", "changed").replace(description="new text")],
            "deletes": [store.get(Handler, "w", "old")]}


def test_writing_several_entities_at_once_applies_each(populated):
    populated.write_all(**sync_writes(populated))
    assert [entity.name for entity in populated.list(Handler, "w")] == [
        "c", "changed", "m", "new", "r"]
    assert populated.get(Handler, "w", "changed").description == "new text"


def test_writing_several_entities_at_once_is_all_or_nothing(populated, kv, kv_prefix):
    """A sync creates, updates and deletes handlers in one transaction: when any of its writes
    is refused, none of them happens, whatever its place among them."""
    writes = sync_writes(populated)
    writes["creates"].insert(0, handler("m", "mapper"))
    with nothing_written(kv, kv_prefix), pytest.raises(
            AlreadyExistsError, match="^handler 'm' already exists in workflow 'w'$"):
        populated.write_all(**writes)
    assert populated.find(Handler, "w", "new") is None


def test_writing_several_entities_at_once_keeps_a_handler_a_step_uses(populated, kv,
                                                                        kv_prefix):
    used = populated.get(Handler, "w", "m")
    with nothing_written(kv, kv_prefix), pytest.raises(
            InUseError, match="^handler 'm' is used by step 's'"):
        populated.write_all(creates=[handler("new", "mapper")], deletes=[used])
    gone = handler("gone", "mapper")
    with nothing_written(kv, kv_prefix), pytest.raises(
            NotFoundError, match="^handler 'gone' does not exist$"):
        populated.write_all(deletes=[gone])


def test_an_entity_one_write_changes_and_another_names_is_changed(populated):
    """A step created beside a change of the handler it names: the handler is written with the
    change, not rewritten unchanged for the step's sake."""
    changed = populated.get(Handler, "w", "m").replace(description="changed")
    populated.write_all(creates=[step("s2")], updates=[changed])
    assert populated.get(Handler, "w", "m").description == "changed"
    assert populated.get(Step, "w", "s2").map_handler_name == "m"


def test_an_entity_one_write_deletes_and_another_names_is_refused(populated, kv, kv_prefix):
    with nothing_written(kv, kv_prefix), pytest.raises(
            InUseError, match="^handler 'c' is deleted by these writes and named by another "
                              "of them$"):
        populated.write_all(creates=[step("s2", combine_handler_name="c")],
                            deletes=[populated.get(Handler, "w", "c")])


class Contended:
    """A KV on which another writer rewrites ``key`` right before every transaction."""

    def __init__(self, kv, key):
        self._kv = kv
        self._key = key

    def __getattr__(self, name):
        return getattr(self._kv, name)

    def txn(self, *args, **kwargs):
        current = self._kv.get(self._key)
        self._kv.put(self._key, current.value)
        return self._kv.txn(*args, **kwargs)


@pytest.mark.parametrize("contended, label, write", [
    ("step/s", "job 'j2'", lambda store: store.create(job("j2"))),
    ("step/s", "job 'j1'",
     lambda store: store.update(store.get(Job, "w", "j1").replace(description="x"))),
    ("job/j1", "job 'j1' of workflow 'w'", lambda store: store.delete(Job, "w", "j1")),
    ("step/s", "1 writes", lambda store: store.write_all(
        updates=[store.get(Job, "w", "j1").replace(description="x")])),
], ids=["create", "update", "delete", "several"])
def test_a_write_that_keeps_losing_races_gives_up_naming_what_it_wrote(populated, kv, kv_prefix,
                                                                       contended, label, write):
    """No write retries forever: after 10 transactions refused because what it depends on
    changed (a step it names, the entity it deletes), it fails with a conflict."""
    populated.create(job("j1"))
    racing = EntityStore(Contended(kv, f"{kv_prefix}/wf/w/{contended}"), kv_prefix)
    with pytest.raises(ConflictError) as refused:
        write(racing)
    assert str(refused.value) == (f"{label}: gave up after 10 attempts: what it depends on "
                                  f"kept changing")


def test_a_workflow_that_exists_is_refused_with_its_name_alone(populated):
    with pytest.raises(AlreadyExistsError) as refused:
        populated.create(Workflow(name="w", description="again"))
    assert str(refused.value) == "workflow 'w' already exists"
