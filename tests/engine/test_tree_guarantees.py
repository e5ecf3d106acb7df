"""The guarantees of the request tree (mr/engine/tree.py) that no other test held: what a
branch that died between two publish batches, or a redelivered last child, publishes again;
what a lagging worker runs; what branch records, sessions, progress, traces and notifications
say; and how a partitioned branch hands its parts to a tree branch.

These tests were written to catch the mutants of ``tree.py`` that the other tests let through
(scripts/mutation).
"""
import traceback

import gevent

from mr.engine import dispatch
from mr.engine.dispatch import child_id
from mr.engine.messages import MAP, REDUCE
from mr.engine.trace_tree import read_trace
from mr.models import Invocation, Session
from tests.engine.faults import (SimulatedCrash, answers_of, redeliver_after_handling,
                                 runs_per_key)
from tests.engine.test_data_guarantees import (WORDS, branch_to, documents_job,
                                               first_attempts_only, lagging, run_with_input,
                                               split_documents_job)
from tests.engine.test_guarantees import (RecordedDelivery, deliver_again, leaf_job,
                                          record_publishes, three_level_job, until)
from tests.engine.test_notify import wait_until, webhook
from tests.engine.test_reliability import (LEAF, assert_ran_once_each, expected, fan_out_job,
                                           run_log, sweep_after_stall, wait_done)
from tests.engine.test_shuffle import (LINES_MAPPER, SUM_COMBINER, SUM_REDUCER, TEXT,
                                       expected_counts, read_output)

__all__ = ["run_log", "webhook"]  # fixtures of test_reliability and test_notify, used here too


def session_of(cluster, request, invocation_id: str) -> dict:
    return Session(cluster.engine.kv, cluster.workflow, request.request_id, invocation_id,
                   cluster.engine.settings.kv_prefix).list()


# What is published again, and what is not


def test_a_branch_that_died_between_publish_batches_publishes_only_the_later_children_again(
        cluster, monkeypatch, run_log):
    """Batches of three children: the first batch is on its way (its messages arrive at the
    end), the worker dies publishing the second. The redelivered branch publishes the children
    after the last one its record names, and none of those already on their way."""
    monkeypatch.setattr(dispatch, "PUBLISH_BATCH_COUNT", 3)
    crashed = []

    def first_batch_on_its_way(message) -> bool:
        if message.kind != MAP or not message.ancestors or message.redelivered:
            return False
        if message.pair[1] == 3 and not crashed:
            crashed.append(message)
            raise SimulatedCrash()
        return message.pair[1] < 3

    published = record_publishes(monkeypatch, cluster, lose=first_batch_on_its_way)
    fan_out_job(cluster, run_log)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"c": 6}, blocking=False)
    until("the branch redelivered", lambda: any(message.redelivered for message in published))
    assert sorted(message.pair[1] for message in published if message.redelivered) == [3, 4, 5]
    for message in published:
        if message.kind == MAP and message.ancestors and message.pair[1] < 3:
            assert deliver_again(cluster, message).responses == ["finish"]
    finished = wait_done(cluster, accepted.request_id)
    assert dict(cluster.engine.result(finished)) == expected(6)
    assert_ran_once_each(run_log, 6)


def test_a_redelivered_last_child_does_not_publish_its_parents_reduce_again(
        cluster, monkeypatch, run_log):
    """Every message is handled again right after its first handling: the last child, reduced
    where it ran, finds its parent's reduce recorded as published and publishes nothing."""
    redeliveries = redeliver_after_handling(monkeypatch, cluster)
    published = record_publishes(monkeypatch, cluster)
    fan_out_job(cluster, run_log)
    request = cluster.run("j", {"c": 3})
    assert dict(cluster.engine.result(request)) == expected(3)
    assert redeliveries and all(answer == ["finish"] for answer in answers_of(redeliveries))
    assert [(message.kind, message.ancestors) for message in published
            if message.redelivered] == []
    assert [message.kind for message in published].count(REDUCE) == 1


# What a worker that lags runs


def test_a_worker_that_lags_does_not_reduce_a_finished_request_again(cluster, monkeypatch,
                                                                      run_log):
    """A copy of the root's reduce, at its first delivery, reaches a worker that has not seen
    the request finish: it reads the request finished with the root's session and runs
    nothing."""
    published = record_publishes(monkeypatch, cluster)
    fan_out_job(cluster, run_log)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"c": 2}, blocking=False)
    finished = wait_done(cluster, accepted.request_id)
    assert finished.state == "done", finished.error
    runs = runs_per_key(run_log)
    [root_reduce] = [message for message in published
                     if message.kind == REDUCE and not message.ancestors]
    lagging(cluster, monkeypatch, accepted)
    delivery = RecordedDelivery(cluster.engine, root_reduce)
    cluster.engine.handle(delivery)
    assert delivery.requeued == []
    assert runs_per_key(run_log) == runs


# What a request records and leaves


def test_every_branch_record_names_the_delivery_that_committed_it(cluster, monkeypatch):
    """The root dies before its first commit: its record says attempt 2, the middles' 1."""
    three_level_job(cluster)
    tree, died = cluster.engine.tree, []
    commit_record = tree._commit_record

    def die_before_the_roots_first_commit(request, invocation, *args, **fields):
        if not (died or invocation.ancestors):
            died.append(invocation)
            raise SimulatedCrash()
        return commit_record(request, invocation, *args, **fields)

    monkeypatch.setattr(tree, "_commit_record", die_before_the_roots_first_commit)
    request = cluster.run("t", {"m": 2})
    assert died and request.state == "done", request.error
    records = cluster.store.list(Invocation, cluster.workflow, request_id=request.request_id)
    root = request.root_invocation_id
    assert sorted((record.invocation_id, record.attempts) for record in records) == sorted(
        [(root, 2), (child_id(root, 0), 1), (child_id(root, 1), 1)])


def test_a_branching_roots_session_holds_what_its_mapper_stored_and_nothing_else(cluster):
    """What the handlers counted goes to the request's counters, not to the root's session."""
    split_documents_job(cluster, SUM_REDUCER, first=(
        "S_SET('documents', len(arguments))\n"
        "increment_counter('documents', 'seen', len(arguments))\n"))
    request = cluster.run("split", {"a": "x y", "b": "y z"})
    assert request.state == "done", request.error
    assert request.counters == {"documents": {"seen": 2}}
    assert session_of(cluster, request, request.root_invocation_id) == {"documents": 2}


def test_the_session_a_splits_mapper_stores_is_kept_for_inspection(cluster, tmp_path):
    cluster.handler("lines", "mapper", "S_SET('seen', True)\n" + WORDS)
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.step("count", "lines", "sum")
    cluster.job("wordcount", "count")
    request = run_with_input(cluster, tmp_path)
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected_counts(TEXT)
    root = cluster.store.get(Invocation, cluster.workflow, request.root_invocation_id,
                             request_id=request.request_id)
    assert root.mapped_count >= 1
    assert [session_of(cluster, request, child_id(request.root_invocation_id, position))
            for position in range(root.mapped_count)] == [{"seen": True}] * root.mapped_count


def test_a_leaf_with_a_combiner_keeps_its_session_and_writes_through_the_file_writer(
        cluster, tmp_path):
    """A combiner keeps the reducer out of the mapper's exchange with its executor child: the
    worker reduces the leaf itself, into the request's output files, and commits the session
    its mapper stored."""
    cluster.handler("lines", "mapper", "S_SET('lines', len(arguments))\n" + LINES_MAPPER)
    cluster.handler("sum_combine", "combiner", SUM_COMBINER)
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.step("count", "lines", "sum", "sum_combine")
    cluster.job("wordcount", "count")
    lines = TEXT.split("\n")
    request = cluster.run("wordcount", {str(number): line for number, line in enumerate(lines)},
                          output={"url": str(tmp_path / "out"), "format": "jsonl"})
    assert request.state == "done", request.error
    assert len(request.output_parts) == 1
    assert dict(read_output(request)) == expected_counts(TEXT)
    assert session_of(cluster, request, request.root_invocation_id) == {"lines": len(lines)}


def kv_calls_handling(cluster, monkeypatch, message) -> list[str]:
    """The KV calls the engine makes handling ``message`` (not those of its background loops:
    the sweeper is stopped, calls from outside the engine and the tree are left out)."""
    cluster.engine.sweeper.stop()
    kv, calls = cluster.engine.kv, []

    def recorded(name, call):
        def recording(*args, **kwargs):
            if any(frame.filename.endswith(("engine/engine.py", "engine/tree.py"))
                   for frame in traceback.extract_stack()):  # not a notifier's, say
                calls.append(name)
            return call(*args, **kwargs)
        return recording

    delivery = RecordedDelivery(cluster.engine, message)
    with monkeypatch.context() as patched:
        for method in ("get", "range", "txn", "put", "delete"):
            patched.setattr(kv, method, recorded(method, getattr(kv, method)))
        gevent.spawn(cluster.engine.handle, delivery).get()
    assert delivery.requeued == []
    return calls


def test_a_request_of_one_leaf_costs_its_worker_one_kv_call_the_commit(cluster, monkeypatch):
    """Its mapper and reducer run in one exchange, and the root's commit is the request's only
    one: nothing is read first, neither a session nor what other commits counted (the
    handlers' code is cached by the first request)."""
    leaf_job(cluster, LEAF)
    assert dict(cluster.engine.result(cluster.run("j", {"a": 1}))) == {"count": 1, "sum": 1}
    published = record_publishes(monkeypatch, cluster, lose=lambda message: True)
    accepted = cluster.engine.submit(cluster.workflow, "j", {"a": 1, "b": 2}, blocking=False)
    until("the root published", lambda: published)
    assert kv_calls_handling(cluster, monkeypatch, published[0]) == ["txn"]
    finished = wait_done(cluster, accepted.request_id)
    assert dict(cluster.engine.result(finished)) == {"count": 2, "sum": 3}


def test_a_roots_reduce_reads_its_session_and_the_counters_in_one_call(cluster, monkeypatch,
                                                                       run_log):
    """One transaction reads the root's session and what the other commits counted, one
    range its children's results, and one transaction commits the request."""
    fan_out_job(cluster, run_log)
    published = record_publishes(monkeypatch, cluster, lose=lambda message: (
        message.kind == REDUCE and not message.ancestors))
    accepted = cluster.engine.submit(cluster.workflow, "j", {"c": 2}, blocking=False)
    until("the root's reduce published", lambda: any(
        message.kind == REDUCE and not message.ancestors for message in published))
    root_reduce = next(message for message in published
                       if message.kind == REDUCE and not message.ancestors)
    assert kv_calls_handling(cluster, monkeypatch, root_reduce) == ["txn", "range", "txn"]
    finished = wait_done(cluster, accepted.request_id)
    assert dict(cluster.engine.result(finished)) == expected(2)


def test_progress_counts_each_branchs_children_and_not_its_partitions(cluster):
    """The root and its two children known, both reduced: the branch's two partitions are not
    map invocations. A branch with no children adds none."""
    split_documents_job(cluster, SUM_REDUCER, partitions=2)
    two = cluster.run("split", {"a": "x y", "b": "y z"})
    assert two.state == "done", two.error
    assert cluster.engine.tree.progress(two) == {"done": 2, "known": 3}
    none = cluster.run("split", {})
    assert none.state == "done", none.error
    assert cluster.engine.tree.progress(none) == {"done": 0, "known": 1}


# Partitioned branches


def test_a_partitioned_branch_under_a_tree_branch_hands_it_its_parts(cluster):
    """Each document's lines are reduced in two partitions, whose parts the documents' branch,
    reduced as in JobX's tree, reads back."""
    documents_job(cluster, docs_partitions=None, lines_partitions=2)
    first_attempts_only(cluster)
    documents = {"d1": "a b\nb c", "d2": "c d\nd d"}
    request = cluster.run("docs", documents)
    assert request.state == "done", request.error
    assert dict(cluster.engine.result(request)) == expected_counts(*documents.values())


def test_what_each_partition_reduce_counted_is_traced_on_it(cluster):
    split_documents_job(cluster, "increment_counter('reduce', 'calls')\n" + SUM_REDUCER,
                        partitions=2)
    request = cluster.run("split", {"a": "x y", "b": "y z"})
    assert request.state == "done", request.error
    root = read_trace(cluster.engine, cluster.workflow, request.request_id).root
    partitions = [node for node in root.children if node.kind == "partition"]
    assert [(node.partition, node.counters) for node in partitions] == [
        (0, {"reduce": {"calls": 1}}), (1, {"reduce": {"calls": 1}})]


def test_a_branch_the_sweeper_completed_under_a_partitioned_one_is_traced(cluster,
                                                                          monkeypatch):
    """A partitioned branch whose last partition dies, at every delivery, before completing it
    is completed by the sweeper, which records no trace of its own: the request's trace shows
    that completion, without a host, and its parent's partitions after it."""
    documents_job(cluster, docs_partitions=2, lines_partitions=2)
    cluster.engine.sweeper.stop()  # the test sweeps
    tree, sweeping = cluster.engine.tree, gevent.getcurrent()
    complete = tree._complete_partitioned

    def only_the_sweeper_completes_a_child_branch(request, invocation, written):
        if invocation.parent is not None and gevent.getcurrent() is not sweeping:
            raise SimulatedCrash()
        complete(request, invocation, written)

    monkeypatch.setattr(tree, "_complete_partitioned", only_the_sweeper_completes_a_child_branch)
    accepted = cluster.engine.submit(cluster.workflow, "docs", {"d": "a b\nb c"},
                                     blocking=False)
    lines = child_id(accepted.root_invocation_id, 0)
    counter = cluster.engine.keys.completion_count(cluster.workflow, accepted.request_id,
                                                   f"{lines}-partitions")
    until("both partitions of the lines committed", lambda: cluster.engine.kv.get(counter)
          is not None and cluster.engine.kv.get(counter).version == 2)
    sweep_after_stall(cluster)
    finished = wait_done(cluster, accepted.request_id)
    assert finished.state == "done", finished.error
    assert dict(cluster.engine.result(finished)) == expected_counts("a b\nb c")
    root = read_trace(cluster.engine, cluster.workflow, accepted.request_id).root
    [branch] = [node for node in root.children if node.kind == "branch"]
    assert (branch.invocation_id, branch.state) == (lines, "done")
    assert [(run.phase, run.host) for run in branch.runs][1] == ("reduce", None)
    assert [node.state for node in root.children if node.kind == "partition"] == ["done"] * 2


# Notifications


def test_a_handler_message_names_the_invocation_that_sent_it(cluster, webhook):  # noqa: F811
    cluster.handler("split", "mapper", branch_to("count"))
    cluster.handler("count_map", "mapper", "NOTIFY.info('counting %s', arguments[0][0])\n"
                                           + WORDS)
    cluster.handler("sum", "reducer", SUM_REDUCER)
    cluster.step("count", "count_map", "sum")
    cluster.step("split", "split", "sum")
    cluster.job("split", "split")
    request = cluster.run("split", {"a": "x", "b": "y"}, notify=[{"http": webhook.url}])
    assert request.state == "done", request.error
    wait_until(lambda: len(webhook.bodies("message")) == 2)
    root = request.root_invocation_id
    assert sorted((body["message"], body["invocation_id"])
                  for body in webhook.bodies("message")) == [
        ("counting a", child_id(root, 0)), ("counting b", child_id(root, 1))]
