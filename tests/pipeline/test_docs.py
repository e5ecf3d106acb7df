"""docs/pipelines.rst works as written: every ``mr pipeline`` command it shows, its Python
pipeline and its client example, run here in a copy of examples/pipeline."""
import json
import re
import shutil
import signal
import subprocess
import sys

import pytest

from tests.pipeline.conftest import (REPOSITORY, WORDCOUNT, expected_report, output_pairs,
                                     records, states)

DOC = (REPOSITORY / "docs" / "pipelines.rst").read_text()
COMMANDS = re.findall(r"^    (\.venv/bin/mr pipeline .*)$", DOC, re.MULTILINE)


def literal_block(after: str) -> str:
    """The code block that follows the paragraph ending with ``after``."""
    start = DOC.index(after)
    start = DOC.index("::\n\n", start) + 4
    block = re.match(r"((?:    .*\n|\n)+)", DOC[start:]).group(1)
    return "\n".join(line[4:] for line in block.rstrip().splitlines()) + "\n"


@pytest.fixture
def shell(example):
    """Runs a documented command line as written, from the directory above examples/, where
    ``.venv/bin/mr`` is this test's mr."""
    root = example.parents[1]
    mr = root / ".venv" / "bin" / "mr"
    mr.parent.mkdir(parents=True)
    mr.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mr.cli.main "$@"\n')
    mr.chmod(0o755)
    ran = []

    def run(command: str, **substitutions) -> subprocess.CompletedProcess:
        assert command in COMMANDS, f"not documented: {command}"
        ran.append(command)
        for documented, here in substitutions.items():
            command = command.replace(documented, here)
        return subprocess.run(["bash", "-c", command], cwd=root, capture_output=True,
                              text=True, timeout=180)
    run.ran = ran
    yield run


@pytest.fixture
def server():
    """``mr run`` of the example's workflow and the word count, on a free port."""
    process = subprocess.Popen([sys.executable, "-m", "mr.cli.main", "run",
                                "examples/pipeline/texts", str(WORDCOUNT), "--port", "0"],
                               cwd=REPOSITORY, stdout=subprocess.PIPE, text=True)
    try:
        yield next(line for line in process.stdout if "listening on" in line).split()[4]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_every_documented_pipeline_command_works(example, shell, server):
    run_it = ".venv/bin/mr pipeline run examples/pipeline/pipeline.yaml"
    fresh = shell(run_it)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.splitlines()[-1] == "pipeline licence_words: 5 steps ran, 0 skipped"
    assert "pipeline licence_words: 5 steps ran, 0\nskipped" in DOC
    assert output_pairs(example / "results" / "report") == expected_report(example / "data")
    assert (example / "results" / "report" / "part-00000").exists()

    handler = example / "texts" / "word_initials.py"
    handler.write_text(handler.read_text().replace("yield", "yield  ", 1))
    resumed = shell(f"{run_it} --resume")
    assert resumed.returncode == 0, resumed.stderr
    for line in ("step count: skipped (its checkpoint matches)",
                 "step totals: skipped (its checkpoint matches)",
                 "step lengths: skipped (its checkpoint matches)"):
        assert line in resumed.stdout
    steps = records(example / "_staging")
    assert (steps["initials"]["reason"], steps["report"]["reason"]) == (
        "handler word_initials changed", "initials runs again")

    shutil.rmtree(example / "results" / "stats" / "lengths")
    existing = shell(f"{run_it} --use-existing")
    assert existing.returncode == 0, existing.stderr
    assert existing.stdout.splitlines()[-1] == "pipeline licence_words: 1 steps ran, 4 skipped"
    assert [name for name, state in states(example / "_staging").items()
            if state == "done"] == ["lengths"]

    status = ".venv/bin/mr pipeline status examples/pipeline/pipeline.yaml"
    text = shell(status)
    assert text.returncode == 0 and "lengths   done" in text.stdout
    assert "count     skipped" in text.stdout
    dot = shell(f"{status} --format dot")
    assert dot.returncode == 0 and "totals -> lengths" in dot.stdout
    svg = shell(f"{status} --format svg > pipeline.svg")
    assert svg.returncode == 0, svg.stderr
    assert "<svg" in (example.parents[1] / "pipeline.svg").read_text()

    shutil.rmtree(example / "results")
    remote = shell(f"{run_it} --url http://127.0.0.1:8080", **{"http://127.0.0.1:8080": server})
    assert remote.returncode == 0, remote.stderr
    assert json.loads((example / "_staging" / "pipeline.json").read_text())["url"] == server
    assert output_pairs(example / "results" / "report") == expected_report(example / "data")
    assert sorted(shell.ran) == sorted(COMMANDS)


def test_the_documented_python_pipeline_runs(tmp_path):
    code = literal_block("The Python form\n").replace("/tmp/flow", str(tmp_path / "flow"))
    finished = subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY,
                              capture_output=True, text=True, timeout=180)
    assert finished.returncode == 0, finished.stderr
    distinct = len(output_pairs(tmp_path / "flow" / "again"))
    assert finished.stdout == f"{distinct} distinct words in the counts of docs/\n"
    assert output_pairs(tmp_path / "flow" / "readme")


def test_the_documented_client_example_answers_as_shown(server):
    code = literal_block("usable on its own")
    documented = re.search(r"# (\{.*\})", code).group(1)
    code = code.replace("http://127.0.0.1:8080", server)
    code = re.sub(r"^(client\.submit\(.*\))$", r"print(\1)", code, flags=re.MULTILINE)
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == documented
