"""What handlers get beyond their inputs, in real requests in both modes: a scope factory's
names, the shared filesystem, and handlers in other languages (exec)."""
from pathlib import Path

import pytest

from mr.executor import ExecutorPool
from mr.handlers.format import parse_handler_source
from mr.models import Handler
from tests.engine.test_requests import DOCUMENTS, EXPECTED, SPLIT_DOCUMENTS, SUM_REDUCER

NODE_MAPPER = Path(__file__).parents[2] / "handlers" / "wordcount" / "count_map_node.js"
FIRST_VALUES = "for key, values in results:\n    yield key, values[0]\n"


@pytest.fixture(scope="module")
def fs_root(tmp_path_factory):
    return tmp_path_factory.mktemp("fs")


@pytest.fixture(scope="module")
def executor(fs_root):
    """The clusters' pool (overriding conftest's): with a scope factory and a shared FS root."""
    with ExecutorPool(size=2, default_timeout_s=30, fs_root_url=str(fs_root),
                      scope_factory="tests.scope_factories.TrustedSecrets") as pool:
        yield pool


def exec_handler(cluster, name: str, text: str) -> None:
    source = parse_handler_source(text, name, "exec")
    cluster.store.create(Handler(
        workflow=cluster.workflow, name=name, description=source.description,
        argument_spec=source.argument_spec, source_type="exec", source_code=text,
        handler_type=source.handler_type, required_capability=source.required_capability))


def test_a_scope_factory_gives_its_names_only_to_the_handlers_it_chooses(cluster):
    reads_secret = "yield MrConfigureToReturn()\nyield 'secret', SECRET\n"
    cluster.handler("trusted_reader", "mapper", reads_secret)
    cluster.handler("reader", "mapper", reads_secret)
    cluster.handler("first", "reducer", FIRST_VALUES)
    cluster.step("trusted", "trusted_reader", "first")
    cluster.step("untrusted", "reader", "first")
    cluster.job("trusted", "trusted")
    cluster.job("untrusted", "untrusted")
    trusted = cluster.run("trusted", {"a": 1})
    assert trusted.state == "done", trusted.error
    assert cluster.engine.result(trusted) == [["secret", f"secret of {cluster.workflow}"]]
    untrusted = cluster.run("untrusted", {"a": 1})
    assert untrusted.state == "failed"
    assert (untrusted.error["type"], untrusted.error["message"], untrusted.error["handler"]) == (
        "NameError", "name 'SECRET' is not defined", "reader")


def test_mappers_write_files_that_the_reducer_reads(cluster, fs_root):
    cluster.handler("split", "mapper", SPLIT_DOCUMENTS)
    cluster.handler("store", "mapper", """
yield MrConfigureToReturn()
for name, text in arguments:
    with FS.open(f"documents/{name}.txt", "w") as file:
        file.write(text)
    yield name, len(text)
""")
    cluster.handler("first", "reducer", FIRST_VALUES)
    cluster.handler("read_back", "reducer", """
for name in FS.ls("documents"):
    with FS.open(f"documents/{name}") as file:
        yield name, file.read().upper()
""")
    cluster.step("count", "store", "first")
    cluster.step("split", "split", "read_back")
    cluster.job("files", "split")
    request = cluster.run("files", DOCUMENTS)
    assert request.state == "done", request.error
    assert cluster.engine.result(request) == [[f"{name}.txt", text.upper()]
                                              for name, text in sorted(DOCUMENTS.items())]
    stored = fs_root / cluster.workflow / "documents"
    assert {path.name: path.read_text() for path in stored.iterdir()} == {
        f"{name}.txt": text for name, text in DOCUMENTS.items()}


def test_jobx_path_helpers_and_notification_loggers_are_given(cluster, fs_root):
    """As JobX's own example mappers use them: SEP and JOIN for FS paths, and the EMAIL and
    HTTP loggers beside LOG and NOTIFY."""
    cluster.handler("notes", "mapper", """
directory = JOIN("notes", "by_key")
if not FS.exists(directory):
    FS.mkdir(directory)
yield MrConfigureToReturn()
for key, value in arguments:
    with FS.open(directory + SEP + key, "w") as file:
        file.write(str(value))
    for logger in (LOG, NOTIFY, EMAIL, HTTP):
        logger.info("wrote %s", key)
    yield key, value
""")
    cluster.handler("first", "reducer", FIRST_VALUES)
    cluster.step("notes", "notes", "first")
    cluster.job("notes", "notes")
    request = cluster.run("notes", {"a": 1, "b": 2})
    assert request.state == "done", request.error
    assert cluster.engine.result(request) == [["a", 1], ["b", 2]]
    stored = fs_root / cluster.workflow / "notes" / "by_key"
    assert {path.name: path.read_text() for path in stored.iterdir()} == {"a": "1", "b": "2"}


def test_an_exec_mapper_in_javascript_counts_exactly(cluster):
    exec_handler(cluster, "count_map_node", NODE_MAPPER.read_text())
    cluster.handler("split", "mapper", SPLIT_DOCUMENTS)
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.step("count", "count_map_node", "sum")
    cluster.step("split", "split", "sum")
    cluster.job("wordcount", "split")
    request = cluster.run("wordcount", DOCUMENTS)
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == EXPECTED


CHATTY_MAPPER = """#!/bin/bash
# Prints what looks like protocol messages on stdout; only MR_OUTPUT_FD carries data.
# **
# argument_spec: [{name: arguments, type: list}]
# handler_type: mapper
# required_capability: none
echo '["return"]'
echo '["pair", "fake", 1]'
cat <&"$MR_INPUT_FD" >/dev/null
printf '["return"]\\n["pair", "real", 1]\\n' >&"$MR_OUTPUT_FD"
echo 'done' >&2
exit 0
"""


def test_what_an_exec_handler_prints_is_captured_never_data(cluster):
    exec_handler(cluster, "chatty", CHATTY_MAPPER)
    exec_handler(cluster, "chatty_failing", CHATTY_MAPPER.replace("exit 0", "exit 5"))
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.step("chatty", "chatty", "sum")
    cluster.step("failing", "chatty_failing", "sum")
    cluster.job("chatty", "chatty")
    cluster.job("failing", "failing")
    request = cluster.run("chatty", {"a": 1})
    assert request.state == "done", request.error
    assert cluster.engine.result(request) == [["real", 1]]
    failed = cluster.run("failing", {"a": 1})
    assert failed.state == "failed"
    assert (failed.error["type"], failed.error["message"]) == (
        "ExecHandlerError", "exec handler 'chatty_failing' exited with status 5")
    assert failed.error["stdout"] == '["return"]\n["pair", "fake", 1]\n'
    assert failed.error["stderr"] == "done\n"
