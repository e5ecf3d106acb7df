"""README.rst's "Submit a job from the command line" and the examples of ``docs/cli.rst``'s
"Submitting jobs" work as written: each command is run by bash as it is shown, and prints what
is shown (request and invocation ids aside, which differ on every run)."""
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from mr.devservers import free_port
from tests.cli.conftest import REPOSITORY, environment_without_settings

README = (REPOSITORY / "README.rst").read_text()
CLI_DOC = (REPOSITORY / "docs" / "cli.rst").read_text()
IDS = re.compile(r"[0-9a-f]{32}")


def readme_blocks() -> list[str]:
    """The literal blocks of the README's section, unindented."""
    section = README[README.index("Submit a job from the command line"):
                     README.index("See what a request did\n---")]
    return [textwrap.dedent(re.match(r"((?:    .*\n|\n)+)", chunk).group(1)).strip("\n")
            for chunk in section.split("::\n\n")[1:]]


def example(command: str) -> tuple[str, str]:
    """The example of docs/cli.rst that starts with ``$ command``: the command and what it
    prints, unindented."""
    start = CLI_DOC.index(f"$ {command}")
    indent = CLI_DOC.rindex("\n", 0, start) + 1
    lines = []
    for line in CLI_DOC[indent:].splitlines():
        if not line.startswith(" " * (start - indent)):
            break
        lines.append(line[start - indent:])
    return lines[0].removeprefix("$ "), "\n".join(lines[1:]) + "\n"


@pytest.fixture
def shell(tmp_path):
    """Runs a documented command line with bash, in a directory where ``.venv/bin/mr`` (and
    ``mr``, on the PATH) is this test's mr, ``handlers`` and ``tests`` the repository's, and
    ``mr run`` listens on a free port by default (MR_HTTP_PORT)."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "mr").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mr.cli.main "$@"\n')
    (bin_dir / "mr").chmod(0o755)
    for name in ("handlers", "tests"):
        (tmp_path / name).symlink_to(REPOSITORY / name)
    env = {**environment_without_settings(), "MR_HTTP_PORT": str(free_port()),
           "PYTHONPATH": str(REPOSITORY), "PATH": f"{bin_dir}:/usr/bin:/bin",
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    del env["MR_CONFIG_FILE"]
    servers = []

    def run(command: str, **options):
        return subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=60, **options)

    def serve(command: str) -> None:
        server = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=tmp_path, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        servers.append(server)
        assert "listening on" in server.stdout.readline()
    run.serve = serve
    run.config_file = tmp_path / "config" / "mr" / "config.toml"
    yield run
    for server in servers:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_the_readme_submits_a_job_as_written(shell):
    server, submission = readme_blocks()
    shell.serve(server)
    command, *shown = submission.splitlines()
    submitted = shell(command)
    assert (submitted.returncode, submitted.stderr) == (0, "")
    assert submitted.stdout.splitlines() == shown


def test_the_cli_doc_examples_print_what_they_show(shell):
    shell.serve("mr run handlers/wordcount tests/faults/workflow")
    command, shown = example("mr submit wordcount wordcount")
    assert shell(command).stdout == shown

    command, shown = example("mr submit faults explode")
    failed = shell(command)
    assert failed.returncode == 1
    request_id, invocation_id = IDS.findall(failed.stderr)[:2]
    assert failed.stderr.replace(request_id, "3f0c...").replace(invocation_id, "0b5c...") == \
        shown

    command, shown = example("mr workflow create foo")
    refused = shell(command)
    assert refused.returncode == 2
    assert refused.stderr == shown.replace("/home/me/.config/mr/config.toml",
                                           str(shell.config_file))
