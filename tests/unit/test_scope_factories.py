"""Scope factories and FS in executor children: what handlers get, and how factory errors read."""
import pytest

from mr.executor import ExecutorPool
from mr.service import Service
from mr.settings import Settings, SettingsError
from tests.unit.executor_helpers import handler_error, task


def test_a_factory_sees_the_handler_and_its_names_override_mr_names():
    body = """\
        with LOCK:
            PRINT('hello')
        yield MrConfigureToReturn()
        yield ('info', INFO)
        yield ('calls', CALLS)
        """
    with ExecutorPool(size=1, scope_factory="tests.scope_factories.Described") as pool:
        first = pool.run(task("mapper", body, name="describe"))
        again = pool.run(task("mapper", body, name="describe"))
        other_workflow = pool.run(task("mapper", body, name="describe", workflow="other"))
    assert first.ok, first.error
    info = dict(first.pairs)["info"]
    assert info == {"workflow": "test_workflow", "name": "describe", "handler_type": "mapper",
                    "version": info["version"], "required_capability": "general"}
    assert len(info["version"]) == 64
    assert first.stdout == "[describe] hello\n"  # the factory's PRINT replaced mr's
    # One instance per workflow in a child: its calls go on, another workflow's start over.
    assert [dict(run.pairs)["calls"] for run in (first, again, other_workflow)] == [1, 2, 1]


def test_a_name_the_factory_stops_giving_is_taken_back():
    body = "yield MrConfigureToReturn()\nyield ('first', FIRST_CALL_ONLY)\n"
    with ExecutorPool(size=1, scope_factory="tests.scope_factories.Described") as pool:
        first = pool.run(task("mapper", body))
        second = pool.run(task("mapper", body))
    assert first.pairs == [["first", True]]
    error = handler_error(second)
    assert error["type"] == "NameError" and "FIRST_CALL_ONLY" in error["message"]


def test_only_the_handlers_the_factory_chooses_get_its_names():
    body = "yield MrConfigureToReturn()\nyield ('secret', SECRET)\n"
    with ExecutorPool(size=1, scope_factory="tests.scope_factories.TrustedSecrets") as pool:
        trusted = pool.run(task("mapper", body, name="trusted_reader"))
        untrusted = pool.run(task("mapper", body, name="reader"))
    assert trusted.pairs == [["secret", "secret of test_workflow"]]
    assert handler_error(untrusted)["message"] == "name 'SECRET' is not defined"


@pytest.fixture(scope="module")
def misbehaving():
    with ExecutorPool(size=1, scope_factory="tests.scope_factories.Misbehaving") as pool:
        yield pool


@pytest.mark.parametrize("name, workflow, message", [
    ("raises", "w", "failed in get_scope for handler 'raises': KeyError: 'no credentials'"),
    ("returns_list", "w", "get_scope for handler 'returns_list' returned ['SECRET']; it must "
                          "return a dict of names (str) to values"),
    ("non_str_names", "w", "returned {1: 'one'}; it must return a dict of names (str)"),
    ("fine", "unmakeable", "failed in making it for workflow 'unmakeable': RuntimeError: "
                           "cannot connect"),
])
def test_factory_errors_fail_the_invocation_naming_the_factory(misbehaving, name, workflow,
                                                               message):
    outcome = misbehaving.run(task("mapper", "yield MrConfigureToReturn()\n", name=name,
                                   workflow=workflow))
    error = handler_error(outcome, kind="scope_factory")
    assert error["type"] == "ScopeFactoryError"
    assert error["message"].startswith("scope factory 'tests.scope_factories.Misbehaving'")
    assert message in error["message"]


def test_a_factory_error_traceback_shows_the_factory_code(misbehaving):
    error = handler_error(misbehaving.run(task("mapper", "yield 1\n", name="raises")),
                          kind="scope_factory")
    assert "tests/scope_factories.py" in error["traceback"]
    assert "raise KeyError(\"no credentials\")" in error["traceback"]


def test_after_a_factory_error_the_child_serves_on(misbehaving):
    handler_error(misbehaving.run(task("mapper", "yield 1\n", name="raises")),
                  kind="scope_factory")
    fine = misbehaving.run(task("mapper", "yield MrConfigureToReturn()\nyield ('s', SECRET)\n"))
    assert fine.pairs == [["s", "s"]]


def test_exec_handlers_get_no_scope_so_the_factory_is_not_called(misbehaving):
    outcome = misbehaving.run(task("mapper", "printf '[\"return\"]\\n' >&\"$MR_OUTPUT_FD\"\n",
                                   name="raises", source_type="exec", interpreter="/bin/bash"))
    assert outcome.ok, outcome.error


@pytest.mark.parametrize("path, message", [
    ("tests.no_such_module.Factory",
     "ModuleNotFoundError: No module named 'tests.no_such_module'"),
    ("tests.scope_factories.NoSuchClass", "module 'tests.scope_factories' has no 'NoSuchClass'"),
])
def test_a_factory_that_cannot_be_loaded_fails_each_invocation(path, message):
    with ExecutorPool(size=1, scope_factory=path) as pool:
        outcomes = [pool.run(task("mapper", "yield MrConfigureToReturn()\n")) for _ in range(2)]
    for outcome in outcomes:
        error = handler_error(outcome, kind="scope_factory")
        assert error["message"].startswith(f"scope factory {path!r}")
        assert message in error["message"]


def test_fs_is_the_workflows_directory_under_the_root(tmp_path):
    body = """\
        with FS.open('notes/today.txt', 'w') as file:
            file.write('written by ' + __name__)
        yield MrConfigureToReturn()
        yield ('listed', FS.ls('notes'))
        """
    with ExecutorPool(size=1, fs_root_url=str(tmp_path)) as pool:
        outcome = pool.run(task("mapper", body, name="writer", workflow="wf"))
    assert outcome.pairs == [["listed", ["today.txt"]]]
    assert (tmp_path / "wf" / "notes" / "today.txt").read_text() == "written by handler(writer)"


def test_without_a_root_fs_is_none():
    with ExecutorPool(size=1) as pool:
        outcome = pool.run(task("mapper", "yield MrConfigureToReturn()\nyield ('fs', FS)\n"))
    assert outcome.pairs == [["fs", None]]


@pytest.mark.parametrize("url, reason", [
    ("nosuchprotocol://x", "Protocol not known"),
    ("memory://fs", "memory:// lives in one process, and handlers run in several"),
])
def test_a_root_children_cannot_share_stops_the_pool_at_its_start(url, reason):
    with pytest.raises(ValueError, match=f"cannot use {url!r} as the shared filesystem's root: "
                                         f".*{reason}"):
        ExecutorPool(size=1, fs_root_url=url)


def test_the_setting_takes_a_dotted_path():
    variable = "MR_WORKFLOW_SCOPE_FACTORY_FQ_CLASS"
    with pytest.raises(SettingsError, match=f"{variable}: expected a dotted path such as "
                                            f"package.module.Class, got 'Secrets'"):
        Settings.load({variable: "Secrets"})
    assert Settings.load({variable: "a.b.C"}).workflow_scope_factory_fq_class == "a.b.C"


def test_a_service_gives_its_pool_the_factory_and_the_fs_root(tmp_path):
    service = Service.embedded(Settings.load({}).with_overrides(
        executor_processes=1, fs_root_url=str(tmp_path),
        workflow_scope_factory_fq_class="tests.scope_factories.TrustedSecrets"))
    try:
        outcome = service.executor.run(task("mapper", """\
            FS.mkdir('made')
            yield MrConfigureToReturn()
            yield ('secret', SECRET)
            """, name="trusted_handler"))
    finally:
        service.stop()
    assert outcome.pairs == [["secret", "secret of test_workflow"]]
    assert (tmp_path / "test_workflow" / "made").is_dir()
