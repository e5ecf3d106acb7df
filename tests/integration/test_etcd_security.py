"""mr over an etcd that requires TLS with client certificates, then authentication: the
certificates are made here (a CA, etcd's certificate, mr's client certificate, and another CA
that etcd does not trust), etcd is real, and a wrong certificate or password is a clear error
at once."""
import time

import gevent
import pytest

from mr import devservers
from mr.kv import create_kv
from mr.kv.base import KVError
from mr.queue.memory import MemoryQueue
from mr.settings import Settings
from tests.integration.total_request import run_total_request

ROOT_PASSWORD = "correct horse battery staple"
TOKEN_TTL_S = 1


@pytest.fixture(scope="module")
def secure_etcd(tmp_path_factory, pki):
    server = devservers.etcd(tmp_path_factory.mktemp("secure-etcd"), tie_to_parent=True,
                             tls=devservers.EtcdTls(str(pki / "server.pem"),
                                                    str(pki / "server-key.pem"),
                                                    str(pki / "ca.pem")))
    server.argv += ["--auth-token-ttl", str(TOKEN_TTL_S)]  # tokens expire during the tests
    server.start()
    yield server
    server.stop()


def settings_for(server, pki, client: str = "client", **more: str) -> Settings:
    host, port = server.addresses["client"].rsplit("/", 1)[-1].split(":")
    return Settings.load({
        "MR_KV_BACKEND": "etcd", "MR_ETCD_HOST": host, "MR_ETCD_PORT": port,
        "MR_ETCD_IS_SSL": "1", "MR_ETCD_CA_FILE": str(pki / "ca.pem"),
        "MR_ETCD_CERT_FILE": str(pki / f"{client}.pem"),
        "MR_ETCD_KEY_FILE": str(pki / f"{client}-key.pem"), "MR_ETCD_TIMEOUT_S": "3",
        "MR_KV_PREFIX": f"/secure-{time.monotonic_ns()}", **more})


def quickly_refused(settings: Settings, match: str) -> None:
    started = time.monotonic()
    with pytest.raises(KVError, match=match):
        with create_kv(settings) as kv:
            kv.put("/probe", b"x")
    assert time.monotonic() - started < 2.0  # refused, not retried until the deadline


def test_mr_talks_to_etcd_over_tls_with_its_client_certificate(secure_etcd, pki):
    assert secure_etcd.addresses["client"].startswith("https://")
    with create_kv(settings_for(secure_etcd, pki)) as kv:
        with kv.watch("/tls/", prefix=True) as watch:
            kv.put("/tls/a", b"1")
            event = watch.get(timeout=5)
        assert (event.type, event.kv.key, event.kv.value) == ("put", "/tls/a", b"1")
        assert kv.get("/tls/a").value == b"1"


@pytest.mark.parametrize("client, ca, match", [
    ("stranger", "ca", "TLS handshake failed"),  # a certificate etcd does not trust
    ("client", "stranger-ca", "TLS handshake failed"),  # etcd's certificate not trusted here
])
def test_a_wrong_certificate_is_a_clear_error_at_once(secure_etcd, pki, client, ca, match):
    quickly_refused(settings_for(secure_etcd, pki, client,
                                 MR_ETCD_CA_FILE=str(pki / f"{ca}.pem")), match)


def test_with_authentication_on_mr_needs_its_user_and_password(secure_etcd, pki):
    """Enabled here, at the end of the module's use of this etcd: it stays on."""
    with create_kv(settings_for(secure_etcd, pki)) as admin:
        admin.enable_authentication("root", ROOT_PASSWORD)
    quickly_refused(settings_for(secure_etcd, pki), "authentication is on; set MR_ETCD_USER")
    quickly_refused(settings_for(secure_etcd, pki, MR_ETCD_USER="root",
                                 MR_ETCD_PASSWORD="wrong"), "etcd refused user 'root'")
    settings = settings_for(secure_etcd, pki, MR_ETCD_USER="root", MR_ETCD_PASSWORD=ROOT_PASSWORD)
    run_total_request(settings, create_kv(settings), MemoryQueue())  # records, txns, watches
    with create_kv(settings) as kv:  # a token that expired is renewed, not an error
        kv.put("/renewed", b"1")
        gevent.sleep(TOKEN_TTL_S * 3)
        assert kv.get("/renewed").value == b"1"
