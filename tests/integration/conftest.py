"""Fixtures of the integration tests beyond the session's servers."""
import pytest

from mr.devcerts import make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A CA and certificates for the TLS tests (tests/pki.py)."""
    return make_pki(tmp_path_factory.mktemp("pki"))
