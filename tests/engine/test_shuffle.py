"""Inputs by reference, the partitioned shuffle and the result writers, in both modes."""
import collections
import json
import os
import resource
import time

import fsspec
import gevent
import pytest

from mr.data.base import DataError
from mr.datasets import read_pairs
from mr.engine import results
from mr.models import Request, ValidationError
from mr.models.errors import InvalidReferenceError
from tests.engine.faults import SimulatedCrash, intercept_publishes, redeliver_after_handling
from tests.unit.test_http_post import receiver  # noqa: F401 (a fixture)

LINES_MAPPER = """
yield MrConfigureToReturn()
for _position, line in arguments:
    for word in line.lower().split():
        yield word, 1
"""
SUM_REDUCER = """
for key, values in results:
    yield key, sum(values)
"""
SUM_COMBINER = """
totals = {}
for key, value in results:
    totals[key] = totals.get(key, 0) + value
for key, total in totals.items():
    yield key, [total]
"""
#: Lines of several lengths, multi-byte characters, a line without its newline at the end.
TEXT = ("the cat sat on the mat\nThe dog ate the cat\n\nmat\r\nÉté à la plage, été\n" * 40
        + "a last line without newline")


def write_inputs(directory, files: dict[str, str]) -> str:
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return str(directory)


def expected_counts(*texts: str) -> collections.Counter:
    return collections.Counter(word for text in texts for word in text.lower().split())


def count_job(cluster, partitions=None, combiner=True, partitioner=None, **job_options):
    """The job ``wordcount`` of step ``count``; ``partitioner``: the body of its partitioner."""
    cluster.handler("lines", "mapper", LINES_MAPPER)
    cluster.handler("sum", "reducer", SUM_REDUCER)
    if combiner:
        cluster.handler("sum_combine", "combiner", SUM_COMBINER)
    options = {"partitions": partitions} if partitions else {}
    if partitioner:
        cluster.handler("partition", "partitioner", partitioner)
        options["partitioner"] = "partition"
    cluster.step("count", "lines", "sum", "sum_combine" if combiner else None, **options)
    cluster.job("wordcount", "count", **job_options)


def read_output(request) -> list:
    """The pairs of a file writer's parts, in part order."""
    fmt = request.output["format"]
    pairs = []
    for url in request.output_parts:
        path = url.removeprefix("file://")
        if fmt == "tsv":
            with open(path, encoding="utf-8") as lines:
                pairs += [[json.loads(field) for field in line.rstrip("\n").split("\t")]
                          for line in lines]
        else:
            pairs += list(read_pairs(fsspec.filesystem("file"), path, fmt))
    return pairs


@pytest.mark.parametrize("split_bytes", [7, 100, 1 << 20])
@pytest.mark.parametrize("partitions", [None, 3])
def test_an_input_by_reference_is_counted_exactly_once_over_its_splits(
        cluster, tmp_path, split_bytes, partitions):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT, "b.txt": TEXT[:333], "empty": ""})
    count_job(cluster, partitions)
    cluster.engine.settings = cluster.engine.settings.with_overrides(split_bytes=split_bytes)
    request = cluster.run("wordcount", {}, input={"url": inputs})
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected_counts(TEXT, TEXT[:333])


def test_a_glob_and_jsonl_records(cluster, tmp_path):
    directory = tmp_path / "in"
    write_inputs(directory, {"one.jsonl": '["x", 1]\n["y", 2]\n\n["x", 3]\n',
                             "two.jsonl": '["y", 10]\n', "skip.txt": "not json"})
    cluster.handler("identity", "mapper",
                    "yield MrConfigureToReturn()\nfor key, value in arguments:\n"
                    "    yield key, value\n")
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.step("total", "identity", "sum", partitions=2)
    cluster.job("total", "total")
    request = cluster.run("total", {}, input={"url": f"{directory}/*.jsonl",
                                              "format": "jsonl"})
    assert request.state == "done", request.error
    assert sorted(cluster.engine.result(request)) == [["x", 4], ["y", 12]]


def test_a_branch_with_partitions_reduces_its_children_as_the_tree_does(cluster):
    documents = {f"doc{number}": TEXT[number * 7:number * 7 + 200] for number in range(12)}
    cluster.handler("split", "mapper", "yield MrConfigureToMap('count')\n"
                                       "for name, text in arguments:\n    yield name, text\n")
    cluster.handler("count_map", "mapper", "yield MrConfigureToReturn()\n"
                                           "for name, text in arguments:\n"
                                           "    for word in text.lower().split():\n"
                                           "        yield word, 1\n")
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.step("count", "count_map", "sum")
    cluster.step("split", "split", "sum", partitions=4)
    cluster.job("wordcount", "split")
    request = cluster.run("wordcount", documents)
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected_counts(*documents.values())


@pytest.mark.parametrize("fmt", ["jsonl", "tsv", "mr"])
def test_the_file_writer_commits_one_part_per_partition_and_a_success_marker(
        cluster, tmp_path, fmt):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    count_job(cluster, partitions=3)
    output = tmp_path / "out"
    request = cluster.run("wordcount", {}, input={"url": inputs},
                          output={"url": str(output), "format": fmt})
    assert request.state == "done", request.error
    assert sorted(os.listdir(output)) == ["_SUCCESS", "part-00000", "part-00001", "part-00002"]
    assert [url.rsplit("/", 1)[1] for url in request.output_parts] == [
        "part-00000", "part-00001", "part-00002"]
    pairs = read_output(request)
    assert dict(pairs) == expected_counts(TEXT) and len(pairs) == len(expected_counts(TEXT))


def test_one_jobs_mr_output_is_the_next_jobs_input(cluster, tmp_path):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    count_job(cluster, partitions=2)
    first = cluster.run("wordcount", {}, input={"url": inputs},
                        output={"url": str(tmp_path / "counts"), "format": "mr"})
    assert first.state == "done", first.error
    cluster.handler("by_length", "mapper", "yield MrConfigureToReturn()\n"
                                           "for word, count in arguments:\n"
                                           "    yield len(word), count\n")
    cluster.step("lengths", "by_length", "sum", partitions=2)
    cluster.job("lengths", "lengths")
    second = cluster.run("lengths", {}, input={"url": str(tmp_path / "counts"),
                                               "format": "mr"})
    assert second.state == "done", second.error
    by_length = collections.Counter()
    for word, count in expected_counts(TEXT).items():
        by_length[len(word)] += count
    assert dict(cluster.engine.result(second)) == by_length


def test_a_job_reads_and_writes_where_its_definition_says(cluster, tmp_path):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    count_job(cluster, partitions=2, input={"url": inputs},
              output={"url": str(tmp_path / "out")})
    request = cluster.run("wordcount", {})
    assert request.state == "done", request.error
    assert dict(read_output(request)) == expected_counts(TEXT)


def test_sorted_values_reach_the_reducer_sorted(cluster, tmp_path):
    inputs = write_inputs(tmp_path / "in", {"a.jsonl": "".join(
        f'["k{number % 3}", {(number * 7919) % 101}]\n' for number in range(300))})
    cluster.handler("identity", "mapper",
                    "yield MrConfigureToReturn()\nfor key, value in arguments:\n"
                    "    yield key, value\n")
    cluster.handler("values", "reducer", "for key, values in results:\n    yield key, values\n")
    cluster.step("sorted", "identity", "values", partitions=2, sort_values=True)
    cluster.job("sorted", "sorted")
    cluster.engine.settings = cluster.engine.settings.with_overrides(split_bytes=500)
    request = cluster.run("sorted", {}, input={"url": inputs, "format": "jsonl"})
    assert request.state == "done", request.error
    result = dict(cluster.engine.result(request))
    assert sorted(result) == ["k0", "k1", "k2"]
    for key, values in result.items():
        assert values == sorted((number * 7919) % 101 for number in range(300)
                                if f"k{number % 3}" == key)


def test_an_output_holding_a_committed_result_is_refused(cluster, tmp_path):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    count_job(cluster)
    output = {"url": str(tmp_path / "out")}
    assert cluster.run("wordcount", {}, input={"url": inputs}, output=output).state == "done"
    with pytest.raises(ValidationError, match="already holds a committed result"):
        cluster.engine.submit(cluster.workflow, "wordcount", {}, blocking=True,
                              input={"url": inputs}, output=output)


def test_input_and_arguments_together_are_refused(cluster, tmp_path):
    count_job(cluster)
    with pytest.raises(ValidationError, match="not both"):
        cluster.engine.submit(cluster.workflow, "wordcount", {"a": "b"}, blocking=True,
                              input={"url": str(tmp_path)})


def test_an_input_that_names_no_file_fails_the_request_with_input_error(cluster, tmp_path):
    count_job(cluster)
    request = cluster.run("wordcount", {}, input={"url": str(tmp_path / "nothing-here")})
    assert request.state == "failed"
    assert request.error["type"] == "InputError"
    assert "nothing-here" in request.error["message"]


@pytest.mark.parametrize("by_reference", [True, False], ids=["parts", "pairs"])
def test_a_result_above_the_inline_limit_fails_and_points_at_the_file_writer(
        cluster, tmp_path, by_reference):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    count_job(cluster, partitions=2)
    cluster.engine.settings = cluster.engine.settings.with_overrides(inline_result_max_bytes=50)
    if by_reference:
        request = cluster.run("wordcount", {}, input={"url": inputs})
    else:
        request = cluster.run("wordcount", {"a": TEXT})
    assert request.state == "failed", request.error
    assert request.error["type"] == "ResultTooLarge", request.error
    assert request.error["type"] == "ResultTooLarge"
    assert "MR_INLINE_RESULT_MAX_BYTES" in request.error["message"]
    assert '"output"' in request.error["message"]


def test_a_mapper_over_a_split_that_branches_fails_clearly(cluster, tmp_path):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    cluster.handler("branches", "mapper", "yield MrConfigureToMap('count')\n"
                                          "for pair in arguments:\n    yield pair\n")
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.step("count", "branches", "sum")
    cluster.job("wordcount", "count")
    request = cluster.run("wordcount", {}, input={"url": inputs})
    assert request.state == "failed"
    assert request.error["type"] == "HandlerProtocolError"
    assert "MrConfigureToReturn" in request.error["message"]


def logged_runs(log_dir, input_name: str, body: str) -> str:
    """A handler body that logs each run under a name made of its input's first key."""
    return f"""
import os as _os, uuid as _uuid
{input_name} = list({input_name})
_name = str({input_name}[0][0]) if {input_name} else 'empty-' + _uuid.uuid4().hex
with open(_os.path.join({str(log_dir)!r}, _name.replace('/', '_')), 'a') as _log:
    _log.write('run\\n')
{body}"""


def test_redelivered_split_maps_and_partition_reduces_run_their_handlers_once(
        cluster, tmp_path, monkeypatch):
    log_dir = tmp_path / "runs"
    log_dir.mkdir()
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT, "b.txt": TEXT[:500]})
    cluster.handler("lines", "mapper", logged_runs(log_dir, "arguments", LINES_MAPPER))
    cluster.handler("sum", "reducer", logged_runs(log_dir, "results", SUM_REDUCER))
    cluster.step("count", "lines", "sum", partitions=3)
    cluster.job("wordcount", "count")
    cluster.engine.settings = cluster.engine.settings.with_overrides(split_bytes=400)
    redeliveries = redeliver_after_handling(monkeypatch, cluster)
    request = cluster.run("wordcount", {}, input={"url": inputs})
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected_counts(TEXT, TEXT[:500])
    runs = {name: open(log_dir / name).read().count("run") for name in os.listdir(log_dir)}
    splits = len(cluster.engine.shuffle.splits(request))
    assert splits > 3 and len(runs) == splits + 3  # every split's mapper and every partition's reducer
    assert set(runs.values()) == {1}, {name: count for name, count in runs.items() if count > 1}
    assert len(redeliveries) >= splits + 3


@pytest.mark.parametrize("parallelism", [0, 1, 3])
def test_an_input_is_dealt_out_to_as_many_map_invocations_as_there_are_children(
        cluster, tmp_path, parallelism):
    """One file is cut for every child; many small ones share a child's invocation. By default
    (MR_SPLIT_PARALLELISM 0), one for each of the worker's executor children."""
    log_dir = tmp_path / "runs"
    log_dir.mkdir()
    small = {f"{index:02d}.txt": TEXT[index * 40:(index + 1) * 40] for index in range(12)}
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT, **small})
    cluster.handler("lines", "mapper", logged_runs(log_dir, "arguments", LINES_MAPPER))
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.step("count", "lines", "sum", partitions=2)
    cluster.job("wordcount", "count")
    cluster.engine.settings = cluster.engine.settings.with_overrides(
        split_parallelism=parallelism)
    request = cluster.run("wordcount", {}, input={"url": inputs})
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected_counts(TEXT, *small.values())
    # 13 files: 1 or 3 map invocations, or by default 2, the tests' executor children
    assert len(os.listdir(log_dir)) == (parallelism or cluster.engine.executor.size)


def test_a_crash_after_the_last_partition_commits_is_completed_by_its_redelivery(
        cluster, tmp_path, monkeypatch):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    count_job(cluster, partitions=3)
    tree = cluster.engine.tree
    complete = tree._complete_partitioned
    crashes = []

    def crash_once(*args):
        if not crashes:
            crashes.append(args)
            raise SimulatedCrash()
        complete(*args)

    monkeypatch.setattr(tree, "_complete_partitioned", crash_once)
    request = cluster.run("wordcount", {}, input={"url": inputs}, timeout_s=60)
    assert crashes, "the last partition never completed its branch"
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected_counts(TEXT)


def test_a_finished_request_leaves_no_shuffle_files(cluster, tmp_path):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    count_job(cluster, partitions=2)
    request = cluster.run("wordcount", {}, input={"url": inputs})
    assert request.state == "done"
    store = cluster.engine.shuffle_store
    prefix = f"{request.workflow}/{request.request_id}"
    assert store.list_tree(prefix)
    cluster.engine.release(request)
    assert store.list_tree(prefix) == []


def test_memory_is_bounded_by_configuration_not_by_the_input(request, tmp_path):
    """One split of 60 MB of distinct lines, shuffled by line: held whole as pairs they take
    more than the 256 MiB an executor child may use here (a sort buffer as large as the split
    fails this test); streamed, they pass through a 4 MiB sort buffer, many runs and a merge,
    and the worker's own memory does not move."""
    from mr.executor import ExecutorPool
    from tests.engine.conftest import start_cluster
    inputs = tmp_path / "in"
    inputs.mkdir()
    with open(inputs / "lines.txt", "w") as lines:
        for block in range(64):
            lines.write("".join(f"line {block:03d} {number:07d}\n" for number in range(52000)))
    with ExecutorPool(size=2, default_timeout_s=120, memory_limit_mb=256) as pool:
        clusters = start_cluster(request, "embedded", pool, tmp_path)
        cluster = next(clusters)
        try:
            cluster.engine.settings = cluster.engine.settings.with_overrides(
                sort_buffer_mb=4, split_bytes=64 << 20, invocation_timeout_s=120.0)
            cluster.handler("by_line", "mapper", "yield MrConfigureToReturn()\n"
                                                 "for _position, line in arguments:\n"
                                                 "    yield line, 1\n")
            cluster.handler("sum", "reducer", SUM_REDUCER)
            cluster.step("count", "by_line", "sum", partitions=2)
            cluster.job("lines", "count")
            worker_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            finished = cluster.run("lines", {}, timeout_s=300, input={"url": str(inputs)},
                                   output={"url": str(tmp_path / "out"), "format": "mr"})
            grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - worker_peak
        finally:
            next(clusters, None)
    assert finished.state == "done", finished.error
    fs = fsspec.filesystem("file")
    total = sum(1 for url in finished.output_parts
                for _ in read_pairs(fs, url.removeprefix("file://"), "mr"))
    assert total == 64 * 52000
    assert grown_kib < 64 * 1024, f"the worker's peak memory grew by {grown_kib} KiB"


@pytest.mark.parametrize("receiver", [[503]], indirect=True)
def test_the_http_writer_posts_the_result_with_the_request_named(cluster, tmp_path, receiver,
                                                                  monkeypatch):
    monkeypatch.setattr(results, "HTTP_BACKOFF_S", 0.01)
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    count_job(cluster, partitions=2)
    request = cluster.run("wordcount", {}, input={"url": inputs},
                          output={"http": receiver.url})
    assert request.state == "done", request.error
    assert len(receiver.received) == 2  # a 503, then the delivery
    body, headers = receiver.received[-1]
    posted = json.loads(body)
    assert (posted["request_id"], posted["workflow"], posted["job"]) == (
        request.request_id, cluster.workflow, "wordcount")
    assert dict(posted["result"]["pairs"]) == expected_counts(TEXT)
    assert headers["X-Mr-Request-Id"] == request.request_id
    assert headers["X-Mr-Workflow"] == cluster.workflow and headers["X-Mr-Job"] == "wordcount"
    assert dict(cluster.engine.result(request)) == expected_counts(TEXT)


@pytest.mark.parametrize("receiver", [[400]], indirect=True)
def test_a_result_the_receiver_refuses_fails_with_result_delivery_failed(cluster, receiver):
    cluster.handler("one", "mapper", "yield MrConfigureToReturn()\nyield 'a', 1\n")
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.step("one", "one", "sum")
    cluster.job("one", "one")
    request = cluster.run("one", {}, output={"http": receiver.url})
    assert request.state == "failed"
    assert request.error["type"] == "ResultDeliveryFailed"
    assert receiver.url in request.error["message"] and "HTTP 400" in request.error["message"]


def test_an_input_file_that_vanishes_is_retried_then_fails_naming_it(cluster, tmp_path,
                                                                     monkeypatch):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    count_job(cluster)
    cluster.engine.settings = cluster.engine.settings.with_overrides(invocation_max_attempts=2)
    vanished = []

    def vanish(message):
        if message.pair is not None and not vanished:  # a split's map: its file goes first
            os.remove(os.path.join(inputs, "a.txt"))
            vanished.append(message)
        return True

    intercept_publishes(monkeypatch, cluster.engine, vanish)
    request = cluster.run("wordcount", {}, input={"url": inputs})
    assert vanished and request.state == "failed"
    assert request.error["type"] == "DataError"
    message = request.error["message"]
    assert "gave up after 2 attempts; the last failed with: handler 'lines': cannot read " \
           f"{os.path.join(inputs, 'a.txt')}: " in message


def test_an_os_error_of_the_handlers_own_fails_its_request_at_once(cluster, tmp_path):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    cluster.handler("opens", "mapper", "yield MrConfigureToReturn()\n"
                                       "for pair in arguments:\n"
                                       "    open('/nonexistent/mr-test-file')\n")
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.step("count", "opens", "sum")
    cluster.job("wordcount", "count")
    request = cluster.run("wordcount", {}, input={"url": inputs})
    assert request.state == "failed"
    assert (request.error["type"], request.error["kind"]) == ("FileNotFoundError", "handler")
    assert "mr-test-file" in request.error["message"]


def test_lost_partition_reduces_are_published_again_by_the_sweeper(cluster, tmp_path,
                                                                    monkeypatch):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    count_job(cluster, partitions=3)
    lost = []

    def lose_partition_one(message):
        if message.partition == 1 and not message.redelivered:
            lost.append(message)
            return False
        return True

    intercept_publishes(monkeypatch, cluster.engine, lose_partition_one)
    accepted = cluster.engine.submit(cluster.workflow, "wordcount", {}, blocking=False,
                                     input={"url": inputs})
    deadline = time.monotonic() + 20
    while not lost and time.monotonic() < deadline:
        gevent.sleep(0.1)
    gevent.sleep(1)  # partitions 0 and 2 commit
    assert lost
    assert cluster.engine.get_request(cluster.workflow, accepted.request_id).state == "running"
    now = time.time()
    cluster.engine.sweeper.sweep(now)
    report = cluster.engine.sweeper.sweep(now + cluster.engine.settings.request_stall_s + 1)
    assert (report.redriven, report.published) == (1, 1)
    finished = cluster.engine.wait(cluster.workflow, accepted.request_id, 30)
    assert finished.state == "done", finished.error
    assert dict(cluster.engine.result(finished)) == expected_counts(TEXT)


def test_a_partitioner_handler_chooses_each_keys_partition(cluster, tmp_path):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    count_job(cluster, partitions=2, partitioner="return 0 if key < 'm' else 3\n")
    request = cluster.run("wordcount", {}, input={"url": inputs},
                          output={"url": str(tmp_path / "out"), "format": "jsonl"})
    assert request.state == "done", request.error
    first, second = ([json.loads(line)[0] for line in open(url.removeprefix("file://"))]
                     for url in request.output_parts)
    assert first and all(word < "m" for word in first)
    assert second and all(word >= "m" for word in second)  # 3 modulo 2 partitions
    assert sorted(first + second) == sorted(expected_counts(TEXT))


def test_a_partitioner_that_returns_no_int_fails_clearly(cluster, tmp_path):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    count_job(cluster, partitions=2, partitioner="return str(key)\n")
    request = cluster.run("wordcount", {}, input={"url": inputs})
    assert request.state == "failed"
    assert request.error["type"] == "HandlerProtocolError"
    assert "partitioner 'partition' returned" in request.error["message"]


def test_a_partitioner_needs_partitions_and_a_partitioner_handler(cluster):
    cluster.handler("lines", "mapper", LINES_MAPPER)
    cluster.handler("sum", "reducer", SUM_REDUCER)
    with pytest.raises(ValidationError, match="partitioner needs partitions"):
        cluster.step("count", "lines", "sum", partitioner="sum")
    with pytest.raises(InvalidReferenceError, match="whose handler_type is 'reducer', not "
                                                    "'partitioner'"):
        cluster.step("count", "lines", "sum", partitions=2, partitioner="sum")


def test_a_request_due_for_removal_leaves_no_shuffle_files(cluster, tmp_path):
    inputs = write_inputs(tmp_path / "in", {"a.txt": TEXT})
    count_job(cluster, partitions=2)
    cluster.engine.settings = cluster.engine.settings.with_overrides(result_retention_s=0.0)
    request = cluster.run("wordcount", {}, input={"url": inputs})
    assert request.state == "done"
    store = cluster.engine.shuffle_store
    prefix = f"{request.workflow}/{request.request_id}"
    assert store.list_tree(prefix)
    deadline = time.monotonic() + 10
    while store.list_tree(prefix) and time.monotonic() < deadline:
        cluster.engine.cleaner.remove_due()
        gevent.sleep(0.05)
    assert store.list_tree(prefix) == []


def test_committing_an_output_again_leaves_it_whole_and_a_lost_part_is_an_error(cluster,
                                                                                tmp_path):
    """What a redelivered completion of the root does to the file writer's output."""
    output = tmp_path / "out"
    request = Request(workflow=cluster.workflow, job_name="j", root_invocation_id="a" * 32,
                      blocking=True, output={"url": str(output), "format": "jsonl"})
    shuffle = cluster.engine.shuffle
    parts = []
    for partition in range(2):
        write = shuffle.output_sink(request, partition)["write"]
        os.makedirs(os.path.dirname(write["path"]))
        with open(write["path"], "w") as part:
            part.write(f'["k{partition}", {partition}]\n')
        parts.append(write["path"])
    urls = shuffle.commit_output(request, parts)
    assert shuffle.commit_output(request, parts) == urls  # again: the parts are in place
    assert sorted(os.listdir(output)) == ["_SUCCESS", "part-00000", "part-00001"]
    assert (output / "part-00001").read_text() == '["k1", 1]\n'
    os.remove(output / "part-00001")
    with pytest.raises(DataError, match="part .* of the output is gone"):
        shuffle.commit_output(request, parts)
