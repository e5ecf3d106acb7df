"""``mr pipeline run|status`` on pipeline files, each run against its own embedded ``mr run``:
the five-step example, resume after a SIGKILL, a changed handler, ``--use-existing``, and the
errors refused before anything runs."""
import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from mr.pipeline import datasets

from tests.pipeline.conftest import (STEPS, answers, expected_report, mr, output_pairs, overlap,
                                     pipeline_with_a_held_step, records, states, wait_for)


def test_the_five_step_example_runs_its_middle_steps_side_by_side(example):
    finished = mr("pipeline", "run", "pipeline.yaml", cwd=example)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines()[-1] == "pipeline licence_words: 5 steps ran, 0 skipped"
    assert output_pairs(example / "results" / "report") == expected_report(example / "data")
    steps = records(example / "_staging")
    assert states(example / "_staging") == dict.fromkeys(STEPS, "done")
    assert overlap(steps["lengths"], steps["initials"])
    for first, then in (("count", "totals"), ("totals", "lengths"), ("totals", "initials"),
                        ("lengths", "report"), ("initials", "report")):
        assert steps[first]["finished_at"] <= steps[then]["created_at"], (first, then)
    # the temporary directories are the staging URL's, and hold the intermediate outputs
    assert (example / "_staging" / "tmp" / "count" / "counts" / "_SUCCESS").exists()


def test_a_fresh_run_refuses_committed_outputs_and_use_existing_runs_what_is_missing(example):
    assert mr("pipeline", "run", "pipeline.yaml", cwd=example).returncode == 0
    refused = mr("pipeline", "run", "pipeline.yaml", cwd=example)
    assert refused.returncode == 2
    assert refused.stderr.startswith("mr: error: ") and len(refused.stderr.splitlines()) == 1
    assert "holds a committed result already" in refused.stderr and "--resume" in refused.stderr
    before = records(example / "_staging")
    subprocess.run(["rm", "-r", str(example / "results" / "stats" / "lengths")], check=True)

    again = mr("pipeline", "run", "pipeline.yaml", "--use-existing", cwd=example)
    assert again.returncode == 0, again.stderr
    after = records(example / "_staging")
    assert states(example / "_staging") == {
        "count": "skipped", "totals": "skipped", "lengths": "done", "initials": "skipped",
        "report": "skipped"}
    assert after["lengths"]["request_id"] != before["lengths"]["request_id"]
    assert output_pairs(example / "results" / "report") == expected_report(example / "data")


def test_a_killed_run_resumes_with_only_its_unfinished_steps(example, tmp_path):
    """The runner is SIGKILLed while a step runs; ``--resume`` runs that step and those after
    it, skips the finished ones, and ends with the output of an uninterrupted run."""
    held = pipeline_with_a_held_step(example)
    gate = tmp_path / "gate"
    env = {**os.environ, "MR_TEST_GATE": str(gate)}
    runner = subprocess.Popen([sys.executable, "-m", "mr.cli.main", "pipeline", "run",
                               str(held)], cwd=example, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    staging = example / "_staging_held"
    try:
        wait_for(lambda: records(staging).get("held", {}).get("state") == "running")
        runner.kill()
    finally:
        runner.wait(timeout=30)
    assert runner.returncode == -signal.SIGKILL
    killed = records(staging)
    assert [killed[name]["state"] for name in ("count", "totals", "held")] == [
        "done", "done", "running"]
    server = json.loads((staging / "pipeline.json").read_text())["url"]
    wait_for(lambda: not answers(f"{server}/health"))  # the private mr run died with it
    status = mr("pipeline", "status", str(held), cwd=example)
    assert "held      interrupted" in status.stdout, status.stdout

    gate.touch()
    resumed = mr("pipeline", "run", str(held), "--resume", cwd=example, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "step count: skipped (its checkpoint matches)" in resumed.stdout
    assert "step totals: skipped (its checkpoint matches)" in resumed.stdout
    final = records(staging)
    for name in ("count", "totals"):
        assert final[name]["state"] == "skipped"
        assert final[name]["request_id"] == killed[name]["request_id"]
    assert final["held"]["reason"] == "its last run did not finish"
    for name in ("held", "lengths", "initials", "report"):
        assert final[name]["state"] == "done", name
        assert final[name]["request_id"] != killed.get(name, {}).get("request_id")
    assert output_pairs(example / "results" / "report") == expected_report(example / "data")


def test_a_changed_handler_reruns_its_step_and_the_steps_below_it(example):
    assert mr("pipeline", "run", "pipeline.yaml", cwd=example).returncode == 0
    before = records(example / "_staging")
    handler = example / "texts" / "word_initials.py"
    handler.write_text(handler.read_text().replace('word[0]]', 'word[:1]]'))

    resumed = mr("pipeline", "run", "pipeline.yaml", "--resume", cwd=example)
    assert resumed.returncode == 0, resumed.stderr
    after = records(example / "_staging")
    assert states(example / "_staging") == {
        "count": "skipped", "totals": "skipped", "lengths": "skipped", "initials": "done",
        "report": "done"}
    assert "step initials: running" in resumed.stdout
    assert after["initials"]["reason"] == "handler word_initials changed"
    assert after["report"]["reason"] == "initials runs again"
    for name in ("count", "totals", "lengths"):
        assert after[name]["request_id"] == before[name]["request_id"]
    assert output_pairs(example / "results" / "report") == expected_report(example / "data")


def test_a_changed_input_reruns_everything_below_it(example):
    assert mr("pipeline", "run", "pipeline.yaml", cwd=example).returncode == 0
    (example / "data" / "BSD.txt").unlink()
    resumed = mr("pipeline", "run", "pipeline.yaml", "--resume", cwd=example)
    assert resumed.returncode == 0, resumed.stderr
    after = records(example / "_staging")
    assert after["count"]["reason"] == "its input changed"
    assert set(states(example / "_staging").values()) == {"done"}
    assert output_pairs(example / "results" / "report") == expected_report(example / "data")


@pytest.mark.parametrize("change, error", [
    ({"steps": {"lengths": {"deps": ["nothing"]}}},
     "step 'lengths': deps names 'nothing', which is not a step"),
    ({"steps": {"count": {"deps": ["report"]}}},
     "depend on each other in a cycle"),
    ({"steps": {"totals": {"job": "texts/no_such_job"}}},
     "step 'totals': job 'no_such_job' of workflow 'texts' does not exist"),
])
def test_a_wrong_pipeline_is_one_line_error_before_anything_runs(example, change, error):
    document = yaml.safe_load((example / "pipeline.yaml").read_text())
    for name, body in change["steps"].items():
        document["steps"][name].update(body)
    (example / "wrong.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    finished = mr("pipeline", "run", "wrong.yaml", cwd=example)
    assert finished.returncode == 2
    assert finished.stderr.startswith("mr: error: ") and len(finished.stderr.splitlines()) == 1
    assert error in finished.stderr
    assert not (example / "results").exists() and not (example / "_staging" / "steps").exists()


def test_status_draws_the_graph_with_links_to_requests(example):
    assert mr("pipeline", "run", "pipeline.yaml", cwd=example).returncode == 0
    steps = records(example / "_staging")
    text = mr("pipeline", "status", "pipeline.yaml", cwd=example).stdout
    for name in STEPS:
        assert f"{steps[name]['request_url']}" in text
    assert "lengths   done   totals" in text
    dot = mr("pipeline", "status", "pipeline.yaml", "--format", "dot", cwd=example)
    assert dot.returncode == 0
    for dep, step in (("count", "totals"), ("totals", "lengths"), ("initials", "report")):
        assert f"{dep} -> {step}" in dot.stdout
    assert f'URL="{steps["report"]["request_url"]}"' in dot.stdout
    svg = mr("pipeline", "status", "pipeline.yaml", "--format", "svg", cwd=example)
    assert svg.returncode == 0, svg.stderr
    assert svg.stdout.lstrip().startswith("<?xml") and "<svg" in svg.stdout
    assert f'xlink:href="{steps["count"]["request_url"]}"' in svg.stdout


def test_a_failed_step_blocks_the_steps_below_and_resume_runs_them(example):
    pipeline = example / "pipeline.yaml"
    correct = pipeline.read_text()
    pipeline.write_text(correct.replace('"${count.tmp.counts}", format: jsonl',
                                        '"${count.tmp.counts}", format: mr'))
    failed = mr("pipeline", "run", "pipeline.yaml", cwd=example)
    assert failed.returncode == 1
    steps = records(example / "_staging")
    assert failed.stderr.startswith(
        f"mr: pipeline licence_words failed: job 'totals' (texts/totals) (request "
        f"{steps['totals']['request_id']}) failed: ")
    assert states(example / "_staging") == {
        "count": "done", "totals": "failed", "lengths": "blocked", "initials": "blocked",
        "report": "blocked"}
    assert "which did not succeed" in steps["report"]["error"]

    pipeline.write_text(correct)
    resumed = mr("pipeline", "run", "pipeline.yaml", "--resume", cwd=example)
    assert resumed.returncode == 0, resumed.stderr
    assert "step count: skipped (its checkpoint matches)" in resumed.stdout
    after = records(example / "_staging")
    assert (after["totals"]["reason"], after["lengths"]["reason"]) == (
        "its last run failed", "totals runs again")
    assert output_pairs(example / "results" / "report") == expected_report(example / "data")


def test_checkpoints_and_temporary_directories_on_s3(example, s3_bucket):
    """A staging URL on an object store (a private S3 server): the intermediate outputs, the
    records and the checkpoints live there, and a resume trusts them."""
    staging = f"{s3_bucket.url}/licences"
    pipeline = example / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("staging: _staging",
                                                     f"staging: {staging}"))
    first = mr("pipeline", "run", "pipeline.yaml", cwd=example)
    assert first.returncode == 0, first.stderr
    assert output_pairs(example / "results" / "report") == expected_report(example / "data")
    record = datasets.read_json(f"{staging}/steps/totals.json")
    assert record["state"] == "done"
    assert sorted(record["checkpoint"]["inputs"]) == [
        f"{staging}/tmp/count/counts/part-0000{n}" for n in range(2)]
    assert all(etag for _size, etag in record["checkpoint"]["inputs"].values())
    resumed = mr("pipeline", "run", "pipeline.yaml", "--resume", cwd=example)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[-1] == "pipeline licence_words: 0 steps ran, 5 skipped"
