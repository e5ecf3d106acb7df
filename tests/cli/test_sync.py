"""``mr handlers sync`` on the command line: its report, and invalid files as file:line."""
import shutil

from tests.cli.conftest import WORDCOUNT


def test_sync_reports_changes_and_refuses_a_directory_with_invalid_files(mr, wordcount, tmp_path):
    handlers = tmp_path / "handlers"
    shutil.copytree(WORDCOUNT, handlers)
    (handlers / "count_map_node.js").unlink()
    report = mr.ok("handlers", "sync", wordcount, str(handlers))
    assert "kept       count_map_node: no file, but used by step 'count_node' " \
           "(as map_handler_name)" in report.splitlines()
    assert "unchanged  count_map" in report.splitlines()

    (handlers / "broken.py").write_text('"""\nbroken\n\n**\nhandler_type: mapper\n"""\nif True\n')
    before = mr.json("handler", "list", wordcount)
    finished = mr.run("handlers", "sync", wordcount, str(handlers))
    assert finished.returncode == 2 and "Traceback" not in finished.stderr
    problem, summary = finished.stderr.splitlines()
    assert problem.startswith(f"{handlers / 'broken.py'}:")
    assert summary == "mr: error: 1 invalid handler file(s); nothing was changed"
    assert mr.json("handler", "list", wordcount) == before
