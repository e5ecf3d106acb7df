"""The commands run as a user runs them: subprocesses (``python -m mr.cli.main`` and the installed
console scripts) against the session's real etcd, each test in a KV prefix of its own."""
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
WORDCOUNT = REPOSITORY / "handlers" / "wordcount"
#: Where the console scripts are: beside the interpreter running the tests (.venv/bin).
SCRIPTS = Path(sys.executable).parent


class Mr:
    """Runs ``mr`` (or a JobX script) with this test's settings and checks how it exited."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def run(self, *arguments: str, stdin: str | None = None,
            script: str | None = None) -> subprocess.CompletedProcess:
        command = ([str(SCRIPTS / script)] if script
                   else [sys.executable, "-m", "mr.cli.main"])
        stdin_option = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
        return subprocess.run([*command, *arguments], capture_output=True, text=True,
                              env=self.env, cwd=REPOSITORY, timeout=60, **stdin_option)

    def ok(self, *arguments: str, **options) -> str:
        """The command's stdout; it must succeed."""
        finished = self.run(*arguments, **options)
        assert finished.returncode == 0, finished.stderr
        return finished.stdout

    def json(self, *arguments: str, **options):
        return json.loads(self.ok(*arguments, "--json", **options))

    def fails(self, *arguments: str, **options) -> str:
        """The one-line error message of a command that must fail as a user error does."""
        finished = self.run(*arguments, **options)
        assert finished.returncode == 2, (finished.stdout, finished.stderr)
        assert "Traceback" not in finished.stderr
        lines = finished.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("mr: error: "), finished.stderr
        return lines[0].removeprefix("mr: error: ")


def etcd_settings(etcd_server) -> dict[str, str]:
    host, port = etcd_server.addresses["client"].rsplit("/", 1)[-1].split(":")
    return {"MR_KV_BACKEND": "etcd", "MR_ETCD_HOST": host, "MR_ETCD_PORT": port,
            "MR_KV_PREFIX": f"/test-cli-{uuid.uuid4().hex[:12]}"}


def environment_without_settings() -> dict[str, str]:
    """This process's environment without mr's settings, and with no settings file (not even
    one a ``mr cluster start`` of the developer's wrote)."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("MR_")}
    return {**environment, "MR_CONFIG_FILE": ""}


@pytest.fixture
def mr(etcd_server):
    return Mr({**environment_without_settings(), **etcd_settings(etcd_server)})


@pytest.fixture
def wordcount(mr):
    """The word count workflow of handlers/wordcount, loaded through ``mr workflow load``."""
    mr.ok("workflow", "load", str(WORDCOUNT))
    return "wordcount"
