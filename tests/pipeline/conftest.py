"""What the pipeline tests share: a copy of examples/pipeline to run in, ``mr`` run as a user
runs it, the records a run leaves under its staging URL, and the example's results computed
here, independently of mr."""
import collections
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY / "examples" / "pipeline"
HOLD_WORKFLOW = Path(__file__).resolve().parent / "hold"
WORDCOUNT = REPOSITORY / "handlers" / "wordcount"
STEPS = ("count", "totals", "lengths", "initials", "report")


@pytest.fixture
def example(tmp_path) -> Path:
    """A copy of examples/pipeline at ``tmp_path/examples/pipeline``, so that its results and
    staging directory stay out of the repository."""
    copy = tmp_path / "examples" / "pipeline"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("_staging", "results"))
    return copy


def mr(*arguments: str, cwd: Path, env: dict | None = None,
       timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mr.cli.main", *arguments], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def records(staging: Path) -> dict[str, dict]:
    """Step name -> the record of the step under the staging directory."""
    return {path.stem: json.loads(path.read_text())
            for path in sorted((staging / "steps").glob("*.json"))}


def states(staging: Path) -> dict[str, str]:
    """Step name -> its state, as its record under the staging directory says."""
    return {name: record["state"] for name, record in records(staging).items()}


def output_pairs(directory: Path) -> list:
    """The pairs of a jsonl output directory, sorted; only a committed one is read."""
    assert (directory / "_SUCCESS").exists(), f"{directory} is not committed"
    return sorted(json.loads(line) for part in sorted(directory.glob("part-*"))
                  for line in part.read_text().splitlines())


def letter_words(data: Path) -> collections.Counter:
    """How often each word (a run of letters a-z, lower-cased) occurs in the files in ``data``:
    the example's first two steps, computed directly."""
    occurrences = collections.Counter()
    for path in sorted(data.iterdir()):
        occurrences.update(re.findall(r"[a-z]+", path.read_text().lower()))
    return occurrences


def expected_report(data: Path) -> list:
    """The example's report, computed directly from its texts."""
    occurrences = letter_words(data)
    lengths = collections.Counter(len(word) for word in occurrences)
    initials = collections.Counter()
    for word, count in occurrences.items():
        initials[word[0]] += count

    def top(counter):
        return sorted(([value, n] for value, n in counter.items()),
                      key=lambda pair: (-pair[1], pair[0]))[:3]
    return sorted([["initial", top(initials)], ["length", top(lengths)]])


def overlap(first: dict, second: dict) -> bool:
    """Whether two steps' requests ran at the same time, by their recorded (server) times."""
    return (first["created_at"] < second["finished_at"]
            and second["created_at"] < first["finished_at"])


def wait_for(condition, timeout_s: float = 60) -> None:
    """Poll ``condition`` until it holds; fail the test if it does not in ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)


def answers(url: str) -> bool:
    """Whether an HTTP server answers at ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def pipeline_with_a_held_step(example):
    """The example with a step between totals and the two middle steps that holds its pairs
    until the gate file exists."""
    document = yaml.safe_load((example / "pipeline.yaml").read_text())
    document.update(pipeline="held", staging="_staging_held",
                    workflows=["texts", str(HOLD_WORKFLOW)])
    steps = document["steps"]
    held_step = {"job": "hold/hold", "input": {"url": "${totals.tmp.totals}", "format": "jsonl"},
                 "tmp_dirs": ["totals"], "output": "${tmp.totals}"}
    for name in ("lengths", "initials"):
        steps[name].update(deps=["held"],
                           input={"url": "${held.tmp.totals}", "format": "jsonl"})
    document["steps"] = {name: body for name, body in [
        *list(steps.items())[:2], ("held", held_step), *list(steps.items())[2:]]}
    path = example / "held.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path

