"""Handler files in JobX's format run unchanged, set up with JobX's scripts, on a live cluster."""
import subprocess
import sys
from pathlib import Path

import pytest

from mr.cli.cluster import start_cluster
from tests.integration.test_cluster import front

JOBX_HANDLERS = Path(__file__).parent / "jobx_handlers"
SCRIPTS = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    local = start_cluster(tmp_path_factory.mktemp("jobx"), [], workers=1, tie_to_parent=True,
                          extra_env={"MR_WORKFLOW_NAMES": "jobx"})
    yield local
    local.stop()


def jobx(cluster, script, *arguments):
    finished = subprocess.run([str(SCRIPTS / script), *arguments], capture_output=True,
                              text=True, timeout=60, env={**cluster.env, "PATH": str(SCRIPTS)})
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


def test_jobx_handlers_and_scripts_work_unchanged(cluster):
    jobx(cluster, "mr_kv_workflow_create", "jobx", "JobX-style handlers")
    stored = jobx(cluster, "mr_kv_handler_store", "jobx", str(JOBX_HANDLERS))
    assert stored.split() == ["created", "map_split_sentences", "created", "map_word_lengths",
                              "created", "reduce_collect", "created", "reduce_merge"]
    jobx(cluster, "mr_kv_step_create", "jobx", "sentences", "Split texts into sentences.",
         "map_split_sentences", "", "reduce_merge")
    jobx(cluster, "mr_kv_step_create", "jobx", "words", "Key words by length.",
         "map_word_lengths", "", "reduce_collect")
    jobx(cluster, "mr_kv_job_create", "jobx", "lengths", "Words by length.", "sentences")

    status, body = front(cluster, "/job/jobx/lengths",
                         {"arguments": {"doc1": "The cat sat. A dog ran far.", "doc2": "Big cat."}})
    assert status == 200, body
    assert dict(body["result"]["pairs"]) == {
        1: ["a"], 3: ["big", "cat", "dog", "far", "ran", "sat", "the"], "words": 9}

    again = jobx(cluster, "mr_kv_handler_store", "jobx", str(JOBX_HANDLERS), "-s")
    assert "created" not in again and "updated" not in again
