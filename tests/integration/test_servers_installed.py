"""The servers the tests start are the versions scripts/install-servers pins."""
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
