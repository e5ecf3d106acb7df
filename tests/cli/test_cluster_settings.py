"""No exports needed, and no work stored where it vanishes: ``mr cluster start`` writes its
settings to the file every ``mr`` command reads and ``stop`` removes them; KV commands refuse the
embedded KV; ``mr run`` on a busy port is one line."""
import os
import shlex
import socket
import subprocess
import sys

import pytest

from mr.devservers import LOOPBACK
from mr.settings import Settings
from tests.cli.conftest import REPOSITORY, WORDCOUNT, Mr, environment_without_settings

README = (REPOSITORY / "README.rst").read_text()


@pytest.fixture
def config_home(tmp_path):
    """An ``XDG_CONFIG_HOME`` of the test's own, where the default settings file goes."""
    return tmp_path / "config"


@pytest.fixture
def user(config_home):
    """``mr`` as a user runs it: no MR_* setting, no MR_CONFIG_FILE, the default file under
    ``config_home`` (the servers' binaries where the test session has them)."""
    environment = environment_without_settings()
    del environment["MR_CONFIG_FILE"]
    tools = {"MR_TOOLS_DIR": os.environ["MR_TOOLS_DIR"]} if "MR_TOOLS_DIR" in os.environ else {}
    return Mr({**environment, **tools, "XDG_CONFIG_HOME": str(config_home),
               "MR_EXECUTOR_PROCESSES": "1"})


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "secure"])
def test_the_cluster_settings_reach_every_command_until_the_cluster_stops(user, config_home,
                                                                         tmp_path, secure):
    """With --secure too: the file then holds the certificates and etcd's password, which
    every command needs, readable by its owner only."""
    data_dir = tmp_path / "cluster"
    settings_file = config_home / "mr" / "config.toml"
    started = user.run("cluster", "start", str(WORDCOUNT), "--workers", "1",
                       "--data-dir", str(data_dir), *(["--secure"] if secure else []))
    try:
        assert started.returncode == 0, started.stderr
        assert (f"mr commands find this cluster through {settings_file}, which mr cluster stop "
                f"removes") in started.stdout
        url = started.stdout.split("mr is serving every workflow in its etcd at ")[1].split()[0]
        written = Settings.load({"MR_CONFIG_FILE": str(settings_file)})
        assert (written.kv_backend, written.queue_backend, written.url) == ("etcd", "nsq", url)
        assert written.data_store_url == str(data_dir / "data")
        assert (written.etcd_is_ssl, written.nsqd_tls, bool(written.etcd_password)) == (
            secure, secure, secure)
        assert settings_file.stat().st_mode & 0o777 == 0o600
        # The front end asks for a token: the admin token the cluster made, in the file.
        assert written.token.startswith("mrt_admin.")
        assert f"admin token (every workflow; mr commands send it): {written.token}" in \
            started.stdout
        assert user.ok("workflow", "list").startswith("wordcount\t")
        assert user.ok("submit", "wordcount", "wordcount", "--arg", "a=the cat the") == \
            '["cat", 1]\n["the", 2]\n'
        run_the_readme_trace_commands(user, tmp_path / "tree.svg")
    finally:
        stopped = user.run("cluster", "stop", "--data-dir", str(data_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.splitlines()[-1] == f"removed its settings, {settings_file}"
    assert not settings_file.exists()
    assert user.fails("workflow", "list").startswith("no KV store is configured")


def run_the_readme_trace_commands(user, drawing) -> None:
    """README.rst's "See what a request did", as written but for where the drawing goes."""
    section = README[README.index("See what a request did\n"):
                     README.index("Write your first handler\n")]
    commands = [shlex.split(line.strip())[1:] for line in section.splitlines()
                if line.strip().startswith(".venv/bin/mr ")]
    submitted, tree, trace = commands
    request_id = user.ok(*submitted).split()[0]  # then its status URL
    user.ok("request", "wait", "wordcount", request_id)
    printed = user.ok(*(request_id if part == "REQUEST_ID" else part for part in tree))
    assert request_id in printed and "done" in printed
    trace = [request_id if part == "REQUEST_ID" else part for part in trace]
    user.ok(*trace[:trace.index("-o") + 1], str(drawing))
    assert drawing.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_start_leaves_settings_it_did_not_write_alone(user, config_home, tmp_path):
    settings_file = config_home / "mr" / "config.toml"
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text('log_level = "debug"\n')
    assert user.fails("cluster", "start", "--data-dir", str(tmp_path / "cluster")) == (
        f"{settings_file} holds settings mr cluster start did not write; move it away, or "
        f"start with MR_CONFIG_FILE naming another file (empty: none)")
    assert settings_file.read_text() == 'log_level = "debug"\n'
    assert not (tmp_path / "cluster").exists()


def test_the_default_settings_file_and_mr_config_file(tmp_path):
    (tmp_path / "xdg" / "mr").mkdir(parents=True)
    (tmp_path / "xdg" / "mr" / "config.toml").write_text('url = "http://xdg"\n')
    (tmp_path / ".config" / "mr").mkdir(parents=True)
    (tmp_path / ".config" / "mr" / "config.toml").write_text('url = "http://home"\n')
    (tmp_path / "other.toml").write_text('url = "http://other"\n')
    home = {"HOME": str(tmp_path)}
    assert Settings.load(home).url == "http://home"
    assert Settings.load({**home, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}).url == "http://xdg"
    assert Settings.load({**home, "MR_CONFIG_FILE": str(tmp_path / "other.toml")}).url == \
        "http://other"
    assert Settings.load({**home, "MR_CONFIG_FILE": ""}).url == ""
    assert Settings.load({**home, "MR_URL": "http://env"}).url == "http://env"
    assert Settings.load({"HOME": str(tmp_path / "nowhere")}).url == ""


@pytest.mark.parametrize("arguments", [
    ["workflow", "create", "foo"],
    ["workflow", "load", str(WORDCOUNT)],
    ["job", "list", "foo"],
    ["handlers", "sync", "foo", str(WORDCOUNT)],
    ["request", "cleanup", "foo", "0" * 32],
])
def test_kv_commands_refuse_the_embedded_kv(user, config_home, arguments):
    message = user.fails(*arguments)
    assert message == (
        "no KV store is configured (MR_KV_BACKEND is memory, a store private to this command): "
        f"start a cluster with mr cluster start, which writes its settings to "
        f"{config_home / 'mr' / 'config.toml'}, or set MR_KV_BACKEND=etcd, MR_ETCD_HOST and "
        f"MR_ETCD_PORT")


def test_mr_run_on_a_busy_port_is_one_line():
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = subprocess.run(
            [sys.executable, "-m", "mr.cli.main", "run", str(WORDCOUNT), "--port", str(port)],
            cwd=REPOSITORY, env=environment_without_settings(), capture_output=True, text=True,
            timeout=60)
    assert finished.returncode == 2 and finished.stdout == ""
    assert finished.stderr == (
        f"mr: error: cannot listen on 127.0.0.1:{port}: Address already in use; another process "
        f"listens there (another mr run?): choose another port with --port or MR_HTTP_PORT\n")
