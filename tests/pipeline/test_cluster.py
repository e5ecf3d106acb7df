"""Pipelines and the client against a real local cluster — etcd, nsqd, two ``mr worker``
processes and the gunicorn front end — through its HTTP API, as against ``mr run``."""
import os
import shutil
import signal
import subprocess
import sys

import pytest

from mr.cli.cluster import start_cluster
from mr.client import Client, JobFailed
from mr.handlers.load import read_definition
from mr.pipeline import Pipeline
from tests.pipeline.conftest import (EXAMPLE, HOLD_WORKFLOW, STEPS, WORDCOUNT, expected_report,
                                     letter_words, mr, output_pairs, overlap,
                                     pipeline_with_a_held_step, records, states, wait_for)


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    return tmp_path_factory.mktemp("gate") / "open"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, gate):
    local = start_cluster(tmp_path_factory.mktemp("cluster"),
                          [read_definition(path) for path in (EXAMPLE / "texts", WORDCOUNT,
                                                              HOLD_WORKFLOW)],
                          workers=2, tie_to_parent=True,
                          extra_env={"MR_TEST_GATE": str(gate), "MR_EXECUTOR_PROCESSES": "2"})
    yield local
    local.stop()


def test_the_example_pipeline_runs_on_the_cluster(cluster, example):
    finished = mr("pipeline", "run", "pipeline.yaml", "--url", cluster.url, "--token",
                  cluster.env["MR_TOKEN"], cwd=example)
    assert finished.returncode == 0, finished.stderr
    assert output_pairs(example / "results" / "report") == expected_report(example / "data")
    steps = records(example / "_staging")
    assert set(states(example / "_staging").values()) == {"done"}
    assert overlap(steps["lengths"], steps["initials"])
    assert all(steps[name]["request_url"].startswith(f"{cluster.url}/request/texts/")
               for name in STEPS)


def test_the_python_form_runs_on_the_cluster(cluster, tmp_path):
    shutil.copytree(EXAMPLE / "data", tmp_path / "texts")
    with Pipeline(cluster.url, token=cluster.env["MR_TOKEN"]) as p:
        first = p.run("texts", "count_words", input=str(tmp_path / "texts"),
                      output=str(tmp_path / "counts"))
        other = p.run("wordcount", "wordcount_files", input=str(tmp_path / "texts"),
                      output=str(tmp_path / "words"))
        totals = p.run("texts", "totals", input={"url": str(tmp_path / "counts"),
                                                 "format": "jsonl"},
                       output=str(tmp_path / "totals"))
        pairs = p.read(str(tmp_path / "totals"))
    assert totals.deps == [first] and first.finished_at <= totals.created_at
    assert overlap({"created_at": first.created_at, "finished_at": first.finished_at},
                   {"created_at": other.created_at, "finished_at": other.finished_at})
    assert {word: count for word, (count, _documents) in pairs} == letter_words(tmp_path / "texts")
    assert output_pairs(tmp_path / "words")


def test_the_client_submits_follows_and_reads_definitions(cluster):
    client = Client(cluster.url, cluster.env["MR_TOKEN"])
    assert client.submit("wordcount", "wordcount", {"a": "the cat", "b": "the hat"}) == {
        "pairs": [["cat", 1], ["hat", 1], ["the", 2]]}
    request_id = client.submit("wordcount", "wordcount", {"a": "a b a"}, wait=False)
    assert client.wait("wordcount", request_id)["result"] == {"pairs": [["a", 2], ["b", 1]]}
    with pytest.raises(JobFailed) as failed:
        client.submit("wordcount", "wordcount_files", input={"url": "/nonexistent/input"})
    assert failed.value.type == "InputError" and failed.value.request_id
    definition = client.job("texts", "initials")
    assert definition["step"]["mapper"] == "word_initials"
    assert set(definition["handler_versions"]) == {"word_initials", "sum_counts"}


def test_resume_cancels_the_request_a_killed_runner_left_running(cluster, example, gate):
    held = pipeline_with_a_held_step(example)
    staging = example / "_staging_held"
    arguments = [sys.executable, "-m", "mr.cli.main", "pipeline", "run", str(held),
                 "--url", cluster.url, "--token", cluster.env["MR_TOKEN"]]
    runner = subprocess.Popen(arguments, cwd=example, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: records(staging).get("held", {}).get("state") == "running")
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
    orphan = records(staging)["held"]["request_id"]
    client = Client(cluster.url, cluster.env["MR_TOKEN"])
    assert client.status("hold", orphan)["state"] == "running"  # the cluster runs on alone

    resumed = subprocess.Popen([*arguments, "--resume"], cwd=example, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=os.environ)
    try:
        wait_for(lambda: records(staging)["held"].get("request_id") not in (None, orphan))
        assert client.status("hold", orphan)["state"] == "cancelled"
    finally:
        gate.touch()
        out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "step totals: skipped (its checkpoint matches)" in out
    assert output_pairs(example / "results" / "report") == expected_report(example / "data")
