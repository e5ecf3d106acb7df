"""The quick subset of the fault suite in the test suite: ``python -m tests.faults --quick``, one
scenario per test, each on a cluster of its own. A failed one shows the scenario's whole report
(figures, request ids, errors, where the logs are)."""
import subprocess
from pathlib import Path

import pytest

from tests.faults.__main__ import SCENARIOS, main

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenario_meets_its_expectations(scenario, tmp_path, capsys):
    exit_status = main(["--quick", "--scenario", scenario, "--data-dir", str(tmp_path)])
    report = capsys.readouterr().out
    assert exit_status == 0, report
    assert f"summary: {scenario} PASS" in report


def test_scripts_faults_runs_the_program():
    shown = subprocess.run([REPOSITORY / "scripts" / "faults", "--help"], capture_output=True,
                           text=True, timeout=600, check=False)
    assert shown.returncode == 0, shown.stderr
    assert all(name in shown.stdout for name in SCENARIOS)
    assert "--quick" in shown.stdout and "--requests" in shown.stdout
