"""The guarantees of docs/data.rst, each checked where it can fail: how an input is reduced
and into how many parts, what the map-side combiner and the sort buffer do, where the file
writer writes and what it leaves, what the inline and HTTP writers refuse and record, and what
a crash, a redelivery, a lagging worker or the sweeper does to a partitioned branch.

These tests were written to catch the mutants of the data path that the other tests let
through (scripts/mutation).
"""
import json
import os

import fsspec
import pytest

from mr import codec
from mr.engine import results
from mr.engine.trace import counted
from mr.models import Session, ValidationError
from tests.engine.faults import SimulatedCrash, redeliver_after_handling, runs_per_key
from tests.engine.test_guarantees import (RecordedDelivery, crash_on_first, leaf_job,
                                          record_publishes, until)
from tests.engine.test_reliability import run_log_handler, sweep_after_stall, wait_done
from tests.engine.test_shuffle import (SUM_REDUCER, TEXT, count_job, expected_counts,
                                       read_output, write_inputs)
from tests.unit.test_http_post import receiver  # noqa: F401 (a fixture)

VALUES = "for key, values in results:\n    yield key, values\n"
#: A leaf's mapper: the words of each ``[name, text]`` pair, counted.
WORDS = ("yield MrConfigureToReturn()\nfor _name, text in arguments:\n"
         "    for word in text.lower().split():\n        yield word, 1\n")


def branch_to(step: str) -> str:
    """A mapper that makes each of its ``[name, text]`` pairs a child of ``step``."""
    return f"yield MrConfigureToMap({step!r})\nfor name, text in arguments:\n    yield name, text\n"


def run_with_input(cluster, tmp_path, timeout_s=30, **options):
    """The ``wordcount`` job of test_shuffle over TEXT, run to its end."""
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    return cluster.run("wordcount", {}, timeout_s=timeout_s, input={"url": inputs}, **options)


def first_attempts_only(cluster):
    """An invocation that needs a second attempt now fails its request."""
    cluster.engine.settings = cluster.engine.settings.with_overrides(invocation_max_attempts=1)


def documents_job(cluster, docs_partitions=3, lines_partitions=2):
    """Job ``docs``: documents, then their lines, then words counted; each branch partitioned
    (into so many partitions) or reduced as in the tree (None)."""
    cluster.handler("split_docs", "mapper", branch_to("lines"))
    cluster.handler("split_lines", "mapper", "yield MrConfigureToMap('words')\n"
                                             "for name, text in arguments:\n"
                                             "    for number, line in enumerate(text.split("
                                             "'\\n')):\n"
                                             "        yield '%s:%d' % (name, number), line\n")
    cluster.handler("count_words", "mapper", WORDS)
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.step("words", "count_words", "sum")
    for step, mapper, partitions in [("lines", "split_lines", lines_partitions),
                                     ("docs", "split_docs", docs_partitions)]:
        cluster.step(step, mapper, "sum", **({"partitions": partitions} if partitions else {}))
    cluster.job("docs", "docs")


DOCUMENTS = {f"doc{number}": TEXT[number * 50:number * 50 + 300] for number in range(4)}


# How a branch's output is partitioned, combined and handed over


def test_an_input_without_partitions_is_reduced_once_into_one_part(cluster, tmp_path):
    count_job(cluster)
    first_attempts_only(cluster)
    output = tmp_path / "out"
    request = run_with_input(cluster, tmp_path, output={"url": str(output), "format": "jsonl"})
    assert request.state == "done", request.error
    assert sorted(os.listdir(output)) == ["_SUCCESS", "part-00000"]
    assert dict(read_output(request)) == expected_counts(TEXT)


@pytest.mark.parametrize("lines_partitions", [2, None], ids=["partitioned", "tree"])
def test_a_branch_under_a_partitioned_one_hands_its_runs_up(cluster, lines_partitions):
    """Every invocation succeeds at its first attempt; the last partition of a partitioned
    branch completes it."""
    documents_job(cluster, lines_partitions=lines_partitions)
    first_attempts_only(cluster)
    request = cluster.run("docs", DOCUMENTS)
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected_counts(*DOCUMENTS.values())


def test_a_leaf_of_a_partitioned_step_reduced_on_another_worker_is_not_partitioned(
        cluster, second_worker):
    """Partitions are for a branch's children; a leaf's pairs, combined here and reduced by a
    worker of the reducer's capability, are reduced once as they are."""
    cluster.handler("words", "mapper", WORDS)
    cluster.handler("big_sum", "reducer", SUM_REDUCER, capability="bigmem")
    cluster.step("words", "words", "big_sum", partitions=2)
    cluster.job("words", "words")
    worker = second_worker(("bigmem",))
    try:
        request = cluster.run("words", {"a": "x y x"})
    finally:
        worker.stop(timeout=2)
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == {"x": 2, "y": 1}


def split_documents_job(cluster, reducer: str, first: str = "", **options):
    """Job ``split``: one child per document, which counts its words; the branch's reducer
    has the body ``reducer``, its mapper starts with ``first``. ``options``: partitions."""
    cluster.handler("split", "mapper", first + branch_to("count"))
    cluster.handler("count_map", "mapper", WORDS)
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.handler("branch_reduce", "reducer", reducer)
    cluster.step("count", "count_map", "sum")
    cluster.step("split", "split", "branch_reduce", **options)
    cluster.job("split", "split")


def test_without_partitions_a_branch_reducer_gets_its_results_as_a_list(cluster):
    """As in JobX's tree: ``results`` is a list, not a stream of merged runs."""
    split_documents_job(cluster, "yield 'keys', len(results)\nyield 'first', results[0][0]\n")
    request = cluster.run("split", {"a": "x y", "b": "y z"})
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == {"keys": 3, "first": "x"}


def test_without_sort_values_a_keys_values_arrive_as_its_map_output_them(cluster, tmp_path):
    """Only ``sort_values`` sorts a key's values, also in an input's default partition."""
    cluster.handler("each", "mapper", "yield MrConfigureToReturn()\n"
                                      "for key, values in arguments:\n"
                                      "    for value in values:\n"
                                      "        yield key, value\n")
    cluster.handler("values", "reducer", VALUES)
    cluster.step("each", "each", "values")
    cluster.job("each", "each")
    values = [(number * 7) % 10 for number in range(10)]
    inputs = write_inputs(tmp_path / "in", {"a.jsonl": json.dumps(["k", values]) + "\n"})
    request = cluster.run("each", {}, input={"url": inputs, "format": "jsonl"})
    assert request.state == "done", request.error
    assert cluster.engine.result(request) == [["k", values]]


def test_the_combiner_runs_on_the_map_side_of_a_split(cluster, tmp_path):
    cluster.handler("lines", "mapper", "yield MrConfigureToReturn()\n"
                                       "for _position, line in arguments:\n"
                                       "    for word in line.lower().split():\n"
                                       "        yield word, 1\n")
    cluster.handler("tag", "combiner", "for key, value in results:\n"
                                       "    yield key, ['combined %d' % value]\n")
    cluster.handler("values", "reducer", VALUES)
    cluster.step("count", "lines", "values", "tag")
    cluster.job("wordcount", "count")
    request = run_with_input(cluster, tmp_path)
    assert request.state == "done", request.error
    result = dict(cluster.engine.result(request))
    assert sorted(result) == sorted(expected_counts(TEXT))
    assert all(value.startswith("combined ") for values in result.values() for value in values)


def test_a_sort_buffer_holds_at_most_its_size_before_it_is_combined(cluster, tmp_path):
    """With a 1 MiB buffer, 3,000 pairs of about 1 KB each are combined (and spilled) at least
    three times, never more than 1 MiB of them at once."""
    cluster.handler("big", "mapper", "yield MrConfigureToReturn()\n"
                                     "for _record in arguments:\n"
                                     "    for number in range(3000):\n"
                                     "        yield 'k%d' % number, 'x' * 1000\n")
    cluster.handler("count", "combiner", "yield 'buffered', [len(results)]\n")
    cluster.handler("values", "reducer", VALUES)
    cluster.step("big", "big", "values", "count")
    cluster.job("big", "big")
    cluster.engine.settings = cluster.engine.settings.with_overrides(sort_buffer_mb=1)
    inputs = write_inputs(tmp_path / "in", {"one.txt": "one record\n"})
    request = cluster.run("big", {}, input={"url": inputs})
    assert request.state == "done", request.error
    [[key, buffered]] = cluster.engine.result(request)
    assert key == "buffered" and sum(buffered) == 3000 and len(buffered) >= 3
    assert max(buffered) * 1000 <= 1 << 20


def test_a_branchs_reducers_see_its_session_in_every_partition(cluster):
    split_documents_job(cluster, "for key, values in results:\n"
                                 "    yield key, sum(values) * S_GET('factor')\n",
                        first="S_SET('factor', 10)\n", partitions=2)
    request = cluster.run("split", {"a": "x y", "b": "y z"})
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == {"x": 10, "y": 20, "z": 10}


# The file writer


def test_a_request_with_arguments_writes_its_part_and_keeps_its_session(cluster, tmp_path):
    """A leaf request of JobX's tree, through the file writer: one part, and the session its
    mapper stored kept for inspection as with the inline writer."""
    leaf_job(cluster, "S_SET('seen', len(arguments))\nyield MrConfigureToReturn()\n"
                      "for key, value in arguments:\n    yield key, value\n")
    output = tmp_path / "out"
    request = cluster.run("j", {"x": 1, "y": 2},
                          output={"url": str(output), "format": "jsonl"})
    assert request.state == "done", request.error
    assert sorted(os.listdir(output)) == ["_SUCCESS", "part-00000"]
    assert sorted(read_output(request)) == [["x", 1], ["y", 2]]
    session = Session(cluster.engine.kv, cluster.workflow, request.request_id,
                      request.root_invocation_id, cluster.engine.settings.kv_prefix)
    assert session.list() == {"seen": 2}


def test_a_branching_request_with_arguments_writes_its_reduce_to_one_part(cluster, tmp_path):
    documents_job(cluster, docs_partitions=None, lines_partitions=None)
    output = tmp_path / "out"
    request = cluster.run("docs", DOCUMENTS, output={"url": str(output), "format": "jsonl"})
    assert request.state == "done", request.error
    assert sorted(os.listdir(output)) == ["_SUCCESS", "part-00000"]
    assert dict(read_output(request)) == expected_counts(*DOCUMENTS.values())


@pytest.mark.parametrize("name", ["countsX", "counts "])
def test_the_file_writer_writes_in_its_directory_whatever_its_name_ends_with(cluster,
                                                                             tmp_path, name):
    """Nothing beside the output directory; in it the part and an empty ``_SUCCESS``; and it is
    then refused as an output, since it holds a committed result."""
    leaf_job(cluster, "yield MrConfigureToReturn()\n"
                      "for key, value in arguments:\n    yield key, value\n")
    parent = tmp_path / "out"
    parent.mkdir()
    output = {"url": str(parent / name), "format": "jsonl"}
    request = cluster.run("j", {"x": 1}, output=output)
    assert request.state == "done", request.error
    assert os.listdir(parent) == [name]
    assert sorted(os.listdir(parent / name)) == ["_SUCCESS", "part-00000"]
    assert (parent / name / "_SUCCESS").read_bytes() == b""
    assert request.output_parts == [f"file://{parent / name}/part-00000"]
    assert read_output(request) == [["x", 1]]
    with pytest.raises(ValidationError, match="already holds a committed result"):
        cluster.engine.submit(cluster.workflow, "j", {"x": 1}, blocking=True, output=output)


def test_an_output_that_cannot_be_committed_fails_naming_it(cluster, tmp_path, monkeypatch):
    leaf_job(cluster, "yield MrConfigureToReturn()\nyield 'a', 1\n")
    first_attempts_only(cluster)
    local = fsspec.implementations.local.LocalFileSystem
    pipe_file = local.pipe_file

    def read_only_success(self, path, *args, **kwargs):
        if path.endswith("/_SUCCESS"):
            raise PermissionError(f"read-only: {path}")
        return pipe_file(self, path, *args, **kwargs)

    monkeypatch.setattr(local, "pipe_file", read_only_success)
    url = str(tmp_path / "out")
    request = cluster.run("j", {"a": 1}, output={"url": url, "format": "jsonl"})
    assert request.state == "failed"
    assert request.error["type"] == "DataError", request.error
    assert f"cannot commit the output at {url!r}: read-only: " in request.error["message"]


@pytest.mark.parametrize("side", ["input", "output"])
def test_a_url_whose_protocol_is_not_installed_is_refused_naming_it(cluster, side):
    count_job(cluster)
    with pytest.raises(ValidationError, match="^cannot open 'nosuchprotocol://x/y': "):
        cluster.engine.submit(cluster.workflow, "wordcount", {}, blocking=True,
                              **{side: {"url": "nosuchprotocol://x/y"}})


# The inline and HTTP writers


def test_a_result_of_exactly_the_inline_limit_is_kept_and_one_byte_more_fails(cluster):
    leaf_job(cluster, "yield MrConfigureToReturn()\nyield 'a', 1\n")
    size = len(codec.encode([["a", 1]]))
    cluster.engine.settings = cluster.engine.settings.with_overrides(
        inline_result_max_bytes=size)
    kept = cluster.run("j", {"x": 1}, timeout_s=10)
    assert kept.state == "done", kept.error
    assert cluster.engine.result(kept) == [["a", 1]]
    cluster.engine.settings = cluster.engine.settings.with_overrides(
        inline_result_max_bytes=size - 1)
    refused = cluster.run("j", {"x": 1}, timeout_s=10)
    assert refused.state == "failed" and refused.error["type"] == "ResultTooLarge"
    assert f"takes {size} bytes encoded, more than the {size - 1}" in refused.error["message"]
    assert refused.failed_invocation_id == refused.root_invocation_id


def test_a_root_refused_for_the_size_of_its_result_keeps_what_it_counted(cluster):
    leaf_job(cluster, 'increment_counter("pairs", "seen", 1)\n'
                      'yield MrConfigureToReturn()\nyield "a", 1\n')
    cluster.engine.settings = cluster.engine.settings.with_overrides(inline_result_max_bytes=1)
    refused = cluster.run("j", {"x": 1}, timeout_s=10)
    assert refused.state == "failed" and refused.error["type"] == "ResultTooLarge"
    assert refused.counters == {"pairs": {"seen": 1}}
    assert counted(cluster.engine.kv, cluster.engine.keys, refused) == {"pairs": {"seen": 1}}


def test_partitions_too_large_for_the_inline_limit_fail_the_request_at_its_root(cluster,
                                                                                 tmp_path):
    count_job(cluster, partitions=2)
    cluster.engine.settings = cluster.engine.settings.with_overrides(inline_result_max_bytes=50)
    request = run_with_input(cluster, tmp_path)
    assert request.state == "failed" and request.error["type"] == "ResultTooLarge"
    assert request.failed_invocation_id == request.root_invocation_id


@pytest.mark.parametrize("receiver", [[]], indirect=True)
def test_a_result_that_is_not_json_is_not_posted(cluster, receiver):
    """NaN is no JSON: the result is refused before any POST, not sent as a non-standard
    ``NaN`` the receiver cannot parse."""
    leaf_job(cluster, "yield MrConfigureToReturn()\nyield 'a', float('nan')\n", VALUES)
    request = cluster.run("j", {"x": 1}, output={"http": receiver.url})
    assert request.state == "failed" and request.error["type"] == "ResultDeliveryFailed"
    assert request.error["message"].startswith("the result cannot be posted as JSON: ")
    assert request.failed_invocation_id == request.root_invocation_id
    assert receiver.received == []


@pytest.mark.parametrize("receiver", [[503] * 5], indirect=True)
def test_a_receiver_that_keeps_failing_gets_five_posts_then_the_request_fails(
        cluster, receiver, monkeypatch):
    """The retries are the writer's, within one attempt of the invocation."""
    monkeypatch.setattr(results, "HTTP_BACKOFF_S", 0.01)
    leaf_job(cluster, "yield MrConfigureToReturn()\nyield 'a', 1\n")
    first_attempts_only(cluster)
    request = cluster.run("j", {"x": 1}, output={"http": receiver.url})
    assert request.state == "failed" and request.error["type"] == "ResultDeliveryFailed"
    assert request.error["message"].startswith(
        f"could not deliver the result to {receiver.url} after 5 attempts: HTTP 503")
    assert request.failed_invocation_id == request.root_invocation_id
    assert len(receiver.received) == 5


@pytest.mark.parametrize("receiver", [["hang"]], indirect=True)
def test_a_receiver_that_does_not_answer_is_given_up_on_and_posted_again(cluster, receiver,
                                                                          monkeypatch):
    monkeypatch.setattr(results, "HTTP_BACKOFF_S", 0.01)
    monkeypatch.setattr(results, "HTTP_TIMEOUT_S", 0.5)
    leaf_job(cluster, "yield MrConfigureToReturn()\nyield 'a', 1\n")
    request = cluster.run("j", {"x": 1}, timeout_s=10, output={"http": receiver.url})
    assert request.state == "done", request.error
    assert len(receiver.received) == 2
    assert json.loads(receiver.received[1][0])["result"] == {"pairs": [["a", 1]]}


# Crashes, redeliveries, lagging workers and the sweeper


def die_completing_branches(monkeypatch, cluster, dying) -> list:
    """The worker dies as a partition completes its branch, each time ``dying(deaths)`` says
    so; returns the deaths."""
    tree = cluster.engine.tree
    complete = tree._complete_partitioned
    deaths = []

    def die_or_complete(*args):
        if dying(deaths):
            deaths.append(args)
            raise SimulatedCrash()
        complete(*args)

    monkeypatch.setattr(tree, "_complete_partitioned", die_or_complete)
    return deaths


def test_a_crash_after_the_only_partition_commits_is_completed_by_its_redelivery(
        cluster, tmp_path, monkeypatch):
    count_job(cluster)
    cluster.engine.settings = cluster.engine.settings.with_overrides(invocation_max_attempts=2)
    deaths = die_completing_branches(monkeypatch, cluster, lambda deaths: not deaths)
    request = run_with_input(cluster, tmp_path)
    assert deaths, "the partition never completed its branch"
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected_counts(TEXT)


def test_a_crash_before_the_partitions_are_published_is_redone_by_the_redelivery(
        cluster, tmp_path, monkeypatch):
    count_job(cluster, partitions=2)
    cluster.engine.settings = cluster.engine.settings.with_overrides(invocation_max_attempts=2)
    _, crashed = crash_on_first(monkeypatch, cluster,
                                lambda message: message.partition is not None)
    request = run_with_input(cluster, tmp_path, timeout_s=20)
    assert crashed
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected_counts(TEXT)


def test_a_redelivered_branch_does_not_publish_its_partitions_again(cluster, tmp_path,
                                                                    monkeypatch):
    redeliveries = redeliver_after_handling(monkeypatch, cluster)
    published = record_publishes(monkeypatch, cluster)
    count_job(cluster, partitions=3)
    request = run_with_input(cluster, tmp_path)
    assert request.state == "done", request.error
    assert redeliveries
    partitions = [message for message in published if message.partition is not None]
    assert {message.partition for message in partitions} == {0, 1, 2}
    assert not any(message.redelivered for message in partitions)


def test_lost_partition_reduces_of_an_input_without_partitions_are_published_again(
        cluster, tmp_path, monkeypatch):
    """The sweeper publishes the partition's reduce, not the branch's fan-out again (which,
    finding its partitions published, would do nothing)."""
    count_job(cluster)
    lost = []

    def first_delivery_of_a_partition(message) -> bool:
        if message.partition is not None and not message.redelivered:
            lost.append(message)
            return True
        return False

    published = record_publishes(monkeypatch, cluster, lose=first_delivery_of_a_partition)
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    accepted = cluster.engine.submit(cluster.workflow, "wordcount", {}, blocking=False,
                                     input={"url": inputs})
    until("the partition's reduce lost", lambda: lost)
    already = len(published)
    report = sweep_after_stall(cluster)
    assert (report.redriven, report.published) == (1, 1)
    assert [message.partition for message in published[already:]] == [0]
    finished = wait_done(cluster, accepted.request_id, timeout_s=10)
    assert finished.state == "done", finished.error
    assert dict(cluster.engine.result(finished)) == expected_counts(TEXT)


def test_the_sweeper_completes_a_branch_whose_partitions_all_committed(cluster, tmp_path,
                                                                       monkeypatch):
    """The last partition committed and died before completing its branch, and its
    redeliveries die too; the sweeper finds every partition committed and completes it."""
    count_job(cluster, partitions=2)
    dying = [True]
    die_completing_branches(monkeypatch, cluster, lambda deaths: dying[0])
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    accepted = cluster.engine.submit(cluster.workflow, "wordcount", {}, blocking=False,
                                     input={"url": inputs})
    root = accepted.root_invocation_id
    counter = cluster.engine.keys.completion_count(cluster.workflow, accepted.request_id,
                                                   f"{root}-partitions")
    until("both partitions committed", lambda: cluster.engine.kv.get(counter) is not None
          and cluster.engine.kv.get(counter).version == 2)
    dying[0] = False
    sweep_after_stall(cluster)
    finished = cluster.engine.get_request(cluster.workflow, accepted.request_id)
    assert finished.state == "done", finished.error
    assert dict(cluster.engine.result(finished)) == expected_counts(TEXT)


def lagging(cluster, monkeypatch, accepted) -> None:
    """The cluster's engine now has not seen ``accepted`` finish: it knows it running."""
    monkeypatch.setattr(cluster.engine.requests, "is_finished", lambda *args: False)
    monkeypatch.setattr(cluster.engine.requests, "get", lambda *args: accepted)


def deliver_to_a_lagging_worker(cluster, monkeypatch, accepted, message,
                                attempts: int = 2) -> None:
    """Hand ``message`` again to a worker whose watch has not yet seen ``accepted``'s end: it
    still knows the request running, as accepted. The message is answered as done."""
    lagging(cluster, monkeypatch, accepted)
    delivery = RecordedDelivery(cluster.engine, message, attempts=attempts)
    cluster.engine.handle(delivery)
    assert delivery.requeued == []


def test_a_worker_that_lags_runs_nothing_of_a_finished_request(cluster, monkeypatch,
                                                               tmp_path):
    log_dir = tmp_path / "runs"
    log_dir.mkdir()
    cluster.handler("m", "mapper", run_log_handler(
        str(log_dir), "arguments", "yield MrConfigureToReturn()\nyield 'a', 1\n"))
    cluster.handler("add", "reducer", SUM_REDUCER)
    cluster.step("s", "m", "add")
    cluster.job("j", "s")
    published = record_publishes(monkeypatch, cluster)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"x": 1}, blocking=False)
    request = wait_done(cluster, accepted.request_id)
    assert request.state == "done", request.error
    stored = cluster.engine.data.list_tree()
    for message in published:
        deliver_to_a_lagging_worker(cluster, monkeypatch, accepted, message)
    assert runs_per_key(log_dir) == {"x": 1}
    assert cluster.engine.data.list_tree() == stored


@pytest.mark.parametrize("attempts", [1, 2], ids=["first delivery", "redelivery"])
def test_a_worker_that_lags_writes_no_part_for_a_removed_request(cluster, monkeypatch,
                                                                 tmp_path, attempts):
    count_job(cluster, partitions=2)
    published = record_publishes(monkeypatch, cluster)
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    accepted = cluster.engine.submit(cluster.workflow, "wordcount", {}, blocking=False,
                                     input={"url": inputs})
    request = wait_done(cluster, accepted.request_id)
    assert request.state == "done", request.error
    cluster.engine.release(request)
    store = cluster.engine.shuffle_store
    prefix = f"{request.workflow}/{request.request_id}"
    partitions = [message for message in published if message.partition is not None]
    assert {message.partition for message in partitions} == {0, 1}
    for message in partitions:
        deliver_to_a_lagging_worker(cluster, monkeypatch, accepted, message, attempts)
    assert store.list_tree(prefix) == []
