"""Handler sync and live reload, in both modes."""
import textwrap
import time

import gevent
import pytest

from mr.handlers.sync import HandlerSyncError, sync_handlers
from mr.models import Handler

HEADER = '''"""
{description}

**
argument_spec:
    - {{name: {argument}, type: list}}
handler_type: {handler_type}
required_capability: none
"""
'''


def write_handler(directory, relative, handler_type, body, description="a handler"):
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    argument = "arguments" if handler_type == "mapper" else "results"
    path.write_text(HEADER.format(description=description, argument=argument,
                                  handler_type=handler_type) + textwrap.dedent(body))
    return path


MAPPER = "yield MrConfigureToReturn()\nfor key, value in arguments:\n    yield key, value\n"
REDUCER = "for key, values in results:\n    yield key, {factor} * sum(values)\n"


@pytest.fixture
def handler_dir(tmp_path):
    directory = tmp_path / "handlers"
    write_handler(directory, "identity.py", "mapper", MAPPER)
    write_handler(directory, "math/scale.py", "reducer", REDUCER.format(factor=1))
    write_handler(directory, "_draft.py", "mapper", "this is not python")
    write_handler(directory, "_wip/ignored.py", "mapper", "neither is this")
    (directory / "README.md").write_text("notes, not a handler\n")
    (directory / "logo.png").write_bytes(bytes(range(256)))
    return directory


def names(store, workflow):
    return {handler.name: handler.version for handler in store.list(Handler, workflow)}


def test_sync_creates_then_skips_unchanged_then_updates_and_deletes(cluster, handler_dir):
    first = sync_handlers(cluster.store, cluster.workflow, handler_dir)
    assert (sorted(first.created), first.updated, first.deleted) == (
        ["identity", "math_scale"], [], [])
    assert first.applied
    again = sync_handlers(cluster.store, cluster.workflow, handler_dir)
    assert (again.created, again.updated, sorted(again.unchanged), again.applied) == (
        [], [], ["identity", "math_scale"], False)

    write_handler(handler_dir, "math/scale.py", "reducer", REDUCER.format(factor=10))
    (handler_dir / "identity.py").unlink()
    write_handler(handler_dir, "fresh.py", "mapper", MAPPER)
    before = names(cluster.store, cluster.workflow)
    changed = sync_handlers(cluster.store, cluster.workflow, handler_dir)
    assert (changed.created, changed.updated, changed.deleted) == (
        ["fresh"], ["math_scale"], ["identity"])
    after = names(cluster.store, cluster.workflow)
    assert set(after) == {"fresh", "math_scale"}
    assert after["math_scale"] != before["math_scale"]


def test_simulate_reports_and_changes_nothing(cluster, handler_dir):
    report = sync_handlers(cluster.store, cluster.workflow, handler_dir, simulate=True)
    assert sorted(report.created) == ["identity", "math_scale"] and not report.applied
    assert names(cluster.store, cluster.workflow) == {}


def test_force_updates_every_handler(cluster, handler_dir):
    sync_handlers(cluster.store, cluster.workflow, handler_dir)
    revisions = {h.name: h.mod_revision for h in cluster.store.list(Handler, cluster.workflow)}
    forced = sync_handlers(cluster.store, cluster.workflow, handler_dir, force=True)
    assert sorted(forced.updated) == ["identity", "math_scale"] and forced.unchanged == []
    assert all(h.mod_revision > revisions[h.name]
               for h in cluster.store.list(Handler, cluster.workflow))


def test_any_invalid_file_changes_nothing_and_every_problem_is_reported(cluster, handler_dir):
    sync_handlers(cluster.store, cluster.workflow, handler_dir)
    before = names(cluster.store, cluster.workflow)
    write_handler(handler_dir, "math/scale.py", "reducer", REDUCER.format(factor=3))
    write_handler(handler_dir, "broken.py", "mapper", "yield MrConfigureToReturn()\nif True\n")
    (handler_dir / "headless.py").write_text("yield 1\n")
    with pytest.raises(HandlerSyncError) as raised:
        sync_handlers(cluster.store, cluster.workflow, handler_dir)
    problems = raised.value.problems
    assert len(problems) == 2
    # line 11: the nine lines of the header, then the two of the body
    assert f"{handler_dir / 'broken.py'}:11: expected ':'" in problems, problems
    assert any(p.startswith(f"{handler_dir / 'headless.py'}:") for p in problems), problems
    assert names(cluster.store, cluster.workflow) == before


def test_handlers_still_used_by_a_step_are_kept(cluster, handler_dir):
    sync_handlers(cluster.store, cluster.workflow, handler_dir)
    cluster.step("s", "identity", "math_scale")
    (handler_dir / "identity.py").unlink()
    (handler_dir / "math" / "scale.py").unlink()
    report = sync_handlers(cluster.store, cluster.workflow, handler_dir)
    assert report.deleted == []
    assert report.kept == {"identity": ["step 's' (as map_handler_name)"],
                           "math_scale": ["step 's' (as reduce_handler_name)"]}
    assert set(names(cluster.store, cluster.workflow)) == {"identity", "math_scale"}


def test_a_sync_reaches_the_next_request_while_running_requests_keep_their_versions(
        cluster, handler_dir, record_property):
    write_handler(handler_dir, "slow.py", "mapper", """
import time
time.sleep(1.5)
yield MrConfigureToReturn()
for key, value in arguments:
    yield key, value
""")
    sync_handlers(cluster.store, cluster.workflow, handler_dir)
    cluster.step("scaled", "identity", "math_scale")
    cluster.step("slow_scaled", "slow", "math_scale")
    cluster.job("scale", "scaled")
    cluster.job("slow_scale", "slow_scaled")
    running = cluster.engine.submit(cluster.workflow, "slow_scale", {"a": 1}, blocking=True)
    gevent.sleep(0.2)

    write_handler(handler_dir, "math/scale.py", "reducer", REDUCER.format(factor=100))
    sync_handlers(cluster.store, cluster.workflow, handler_dir)
    synced_at = time.monotonic()
    deadline = synced_at + 5
    while True:
        result = dict(cluster.engine.result(cluster.run("scale", {"a": 1})))
        if result == {"a": 100} or time.monotonic() > deadline:
            break
    latency = time.monotonic() - synced_at
    record_property("live_reload_latency_s", latency)
    assert result == {"a": 100}
    assert latency < 1.0, f"the sync reached requests after {latency:.3f} s"

    pinned = cluster.engine.wait(cluster.workflow, running.request_id, 30)
    assert dict(cluster.engine.result(pinned)) == {"a": 1}


def test_a_large_directory_syncs_in_one_transaction(cluster, tmp_path):
    directory = tmp_path / "many"
    for number in range(150):
        write_handler(directory, f"mapper_{number}.py", "mapper", MAPPER)
    report = sync_handlers(cluster.store, cluster.workflow, directory)
    assert len(report.created) == 150 and report.applied
    assert len(names(cluster.store, cluster.workflow)) == 150
