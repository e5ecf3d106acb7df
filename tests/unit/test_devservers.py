"""Which server binary the scripts and tests start: the one scripts/install-servers built into
$MR_TOOLS_DIR/bin comes before any on the PATH."""
import stat

import pytest

from mr import devservers


def _executable(path, text="#!/bin/sh\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_the_built_binary_comes_before_the_path(tmp_path, monkeypatch):
    built = _executable(tmp_path / "tools" / "bin" / "etcd")
    _executable(tmp_path / "system" / "etcd")
    monkeypatch.setenv("MR_TOOLS_DIR", str(tmp_path / "tools"))
    monkeypatch.setenv("PATH", str(tmp_path / "system"))
    assert devservers.find_binary("etcd") == built


def test_the_path_serves_when_nothing_was_built(tmp_path, monkeypatch):
    on_path = _executable(tmp_path / "system" / "redis-server")
    monkeypatch.setenv("MR_TOOLS_DIR", str(tmp_path / "tools"))
    monkeypatch.setenv("PATH", str(tmp_path / "system"))
    assert devservers.find_binary("redis-server") == on_path


def test_a_missing_binary_names_the_script_that_installs_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MR_TOOLS_DIR", str(tmp_path / "tools"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(devservers.ServerError, match="scripts/install-servers"):
        devservers.find_binary("etcd")


def test_a_go_server_runs_on_a_quarter_of_the_cores_unless_the_environment_says(monkeypatch):
    monkeypatch.delenv("GOMAXPROCS", raising=False)
    for cores, threads in ((1, "1"), (2, "1"), (7, "1"), (8, "2"), (64, "16")):
        monkeypatch.setattr(devservers.os, "sched_getaffinity", lambda _pid: set(range(cores)))
        assert devservers.go_scheduler_env() == {"GOMAXPROCS": threads}
    monkeypatch.setenv("GOMAXPROCS", "3")
    assert devservers.go_scheduler_env() == {}  # the server inherits the 3
