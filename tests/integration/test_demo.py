"""The README's first-run command: ``mr demo`` starts embedded mr, counts words, stops it."""
import re
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_demo_counts_words_and_stops_cleanly():
    finished = subprocess.run([sys.executable, "-m", "mr.cli.main", "demo", "--top", "3"],
                              cwd=REPOSITORY, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[0].startswith("mr started in embedded mode at http://127.0.0.1:")
    counts = [re.fullmatch(r"\s+(\d+)\s+(\w+)", line) for line in lines[3:6]]
    assert all(counts), lines
    readme_words = re.findall(r"\w+", (REPOSITORY / "README.rst").read_text().lower())
    top_word = counts[0].group(2)
    assert int(counts[0].group(1)) >= readme_words.count(top_word) > 0
    assert lines[-1] == "mr stopped"
