"""README.rst's "Write your first handler" works as written: its files, its local pipeline, and
its request to ``mr run`` give the outputs the README shows."""
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.test_cluster import call

REPOSITORY = Path(__file__).resolve().parents[2]


def literal_blocks() -> list[str]:
    """The literal blocks (after ``::``) of the walk-through, unindented."""
    readme = (REPOSITORY / "README.rst").read_text()
    section = readme[readme.index("Write your first handler"):readme.index("\nDocumentation\n")]
    blocks = []
    for chunk in section.split("::\n\n")[1:]:
        lines = []
        for line in chunk.split("\n"):
            if line and not line.startswith("    "):
                break
            lines.append(line[4:])
        blocks.append("\n".join(lines).strip("\n") + "\n")
    return blocks


def test_the_walkthrough_works_as_written(tmp_path):
    _mkdir, mapper, reducer, pipeline, manifest, serving = literal_blocks()
    workflow = tmp_path / "lengths"
    workflow.mkdir()
    (workflow / "by_length.py").write_text(mapper)
    (workflow / "count.py").write_text(reducer)
    (workflow / "workflow.yaml").write_text(manifest)
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)

    piped = subprocess.run(["bash", "-c", pipeline], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    readme = (REPOSITORY / "README.rst").read_text()
    shown = re.search(r"which prints (.*?), one per line", readme, re.S).group(1)
    assert piped.stdout.splitlines() == re.findall(r"``(\[.*?\])``", shown)

    expected_answer = json.loads(serving.splitlines()[-2])
    request = json.loads(re.search(r"-d '(.*?)'", serving).group(1))
    server = subprocess.Popen([sys.executable, "-m", "mr.cli.main", "run", "lengths", "--port",
                               "0"], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        address = next(line for line in server.stdout if "listening on" in line).split()[4]
        status, answer = call(f"{address}/job/lengths/lengths", request)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert status == 200 and answer == expected_answer
