"""``mr.pipeline.Pipeline``: a sequential script of jobs run in parallel as far as its data
allows, reads that wait for pending outputs, USE_EXISTING, and failures — against a private
``mr run`` the pipeline starts and stops itself."""
import collections
import re
import shutil
import urllib.request

import pytest

from mr.pipeline import JobRunFailed, Pipeline, PipelineError
from tests.pipeline.conftest import (EXAMPLE, HOLD_WORKFLOW, WORDCOUNT, output_pairs, overlap,
                                     wait_for)


@pytest.fixture
def texts(tmp_path):
    """The example's texts: four in one directory, the GPL beside them."""
    directory = tmp_path / "texts"
    shutil.copytree(EXAMPLE / "data", directory, ignore=shutil.ignore_patterns("GPL-3.txt"))
    shutil.copy(EXAMPLE / "data" / "GPL-3.txt", tmp_path / "GPL-3.txt")
    return tmp_path


def count(p: Pipeline, directory, input: str, output: str):
    """The word count of ``directory/input`` into ``directory/output``, a job named so."""
    return p.run("wordcount", "wordcount_files", input=str(directory / input),
                 output=str(directory / output), name=output)


def three_jobs(p: Pipeline, out) -> tuple:
    """A script as one would write it to run the jobs one after the other."""
    licences = count(p, out, "texts", "licences")
    gpl = count(p, out, "GPL-3.txt", "gpl")
    counts = count(p, out, "licences", "counts_of_counts")
    return licences, gpl, counts


def word_counts(*paths) -> list:
    counts = collections.Counter()
    for path in paths:
        counts.update(re.findall(r"\w+", path.read_text().lower()))
    return sorted([word, n] for word, n in counts.items())


def timing(run) -> dict:
    return {"created_at": run.created_at, "finished_at": run.finished_at}


def test_a_sequential_script_runs_its_independent_jobs_side_by_side(texts):
    with Pipeline(workflows=[WORDCOUNT]) as p:
        licences, gpl, counts = three_jobs(p, texts)
        assert counts.deps == [licences]  # inferred: it reads what licences writes
        read = p.read(str(texts / "counts_of_counts"))  # waits until it is written
        assert counts.state == "done"
        server = p.client.url
    assert [run.state for run in (licences, gpl, counts)] == ["done"] * 3
    assert overlap(timing(licences), timing(gpl))
    assert licences.finished_at <= counts.created_at
    assert output_pairs(texts / "licences") == word_counts(*(texts / "texts").iterdir())
    assert output_pairs(texts / "gpl") == word_counts(texts / "GPL-3.txt")
    assert sorted(read) == output_pairs(texts / "counts_of_counts")
    with pytest.raises(OSError):  # the private mr run stopped with the pipeline
        urllib.request.urlopen(f"{server}/health", timeout=2)


def test_use_existing_skips_the_jobs_whose_output_exists(texts):
    with Pipeline(workflows=[WORDCOUNT]) as p:
        three_jobs(p, texts)
    first = output_pairs(texts / "licences")
    shutil.rmtree(texts / "gpl")
    with Pipeline(workflows=[WORDCOUNT], use_existing=True) as p:
        licences, gpl, counts = three_jobs(p, texts)
    assert [run.state for run in (licences, gpl, counts)] == ["skipped", "done", "skipped"]
    assert licences.reason == "its output exists" and licences.request_id is None
    assert output_pairs(texts / "licences") == first
    assert output_pairs(texts / "gpl") == word_counts(texts / "GPL-3.txt")


def test_a_failed_job_blocks_what_reads_it_and_wait_names_it(texts):
    tmp_path = texts
    with Pipeline(workflows=[WORDCOUNT]) as p:
        missing = count(p, tmp_path, "no-such-input", "missing")
        gpl = count(p, tmp_path, "GPL-3.txt", "gpl")
        after = count(p, tmp_path, "missing", "after")
        with pytest.raises(JobRunFailed) as raised:
            p.wait()
        with pytest.raises(JobRunFailed):
            p.read(str(tmp_path / "missing"))
    message = str(raised.value)
    assert raised.value.run is missing
    assert message.startswith(f"job 'missing' (wordcount/wordcount_files) (request "
                              f"{missing.request_id}) failed: InputError: ")
    assert (missing.state, gpl.state, after.state) == ("failed", "done", "blocked")
    assert after.request_id is None and not (tmp_path / "after").exists()
    assert output_pairs(tmp_path / "gpl") == word_counts(tmp_path / "GPL-3.txt")


def test_two_jobs_may_not_write_one_output(texts):
    with Pipeline(workflows=[WORDCOUNT]) as p:
        p.run("wordcount", "wordcount_files", input=str(texts / "GPL-3.txt"),
              output=str(texts / "out"), name="first")
        with pytest.raises(PipelineError, match=f"job 'first' .* writes {texts / 'out'} "
                                                f"already"):
            p.run("wordcount", "wordcount_files", input=str(texts / "texts"),
                  output=str(texts / "out"))


def test_a_job_cancelled_on_the_server_is_cancelled_in_the_pipeline(texts, monkeypatch):
    monkeypatch.setenv("MR_TEST_GATE", str(texts / "never"))  # the held job waits for ever
    with pytest.raises(JobRunFailed) as raised:
        with Pipeline(workflows=[HOLD_WORKFLOW]) as p:
            held = p.run("hold", "hold", input=str(texts / "GPL-3.txt"),
                         output=str(texts / "held"))
            wait_for(lambda: held.state == "running")
            p.client.cancel("hold", held.request_id)
    assert held.state == "cancelled" and raised.value.run is held
    assert str(raised.value).endswith(f"failed: Cancelled: request {held.request_id} was "
                                      f"cancelled")
