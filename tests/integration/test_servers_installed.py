"""The servers the tests start are the versions scripts/install-servers pins, started as
mr starts them."""
import os
import re
from pathlib import Path

import pytest

from mr import devservers

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-servers"


def _pinned(variable: str) -> str:
    match = re.search(rf'{variable}="\$\{{MR_{variable}:-(v[\d.]+)\}}"', SCRIPT.read_text())
    assert match, f"{variable} is not pinned in {SCRIPT}"
    return os.environ.get(f"MR_{variable}", match.group(1))


@pytest.mark.parametrize("binary, variable, version_pattern", [
    ("etcd", "ETCD_VERSION", r"etcd Version: (\S+)"),
    ("nsqd", "NSQ_VERSION", r"nsqd (v\S+)")])
def test_the_pinned_server_is_the_one_started(binary, variable, version_pattern):
    reported = re.search(version_pattern, devservers.binary_version(binary))
    assert reported, devservers.binary_version(binary)
    assert reported.group(1).lstrip("v") == _pinned(variable).lstrip("v")


@pytest.mark.parametrize("start", [devservers.etcd, devservers.nsqd, devservers.nsqlookupd])
def test_a_go_server_is_started_with_its_share_of_the_cores(start, tmp_path, monkeypatch):
    monkeypatch.delenv("GOMAXPROCS", raising=False)
    server = start(tmp_path, tie_to_parent=True).start()
    try:
        environment = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
        assert f"GOMAXPROCS={devservers.go_scheduler_env()['GOMAXPROCS']}".encode() in environment
    finally:
        server.stop()
