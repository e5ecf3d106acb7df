"""mr over an nsqd that accepts TCP clients over TLS only, with a client certificate signed by
the CA it trusts: messages flow, and a client without TLS or with another CA's certificate
cannot publish. With signed messages (MR_MESSAGE_SECRET) a request runs end to end over it."""
import gevent
import pytest

from mr import devservers
from mr.kv.memory import MemoryKV
from mr.queue import create_queue
from mr.queue.base import QueueError
from mr.settings import Settings
from tests.integration.total_request import run_total_request


@pytest.fixture(scope="module")
def secure_nsqd(tmp_path_factory, pki):
    server = devservers.nsqd(tmp_path_factory.mktemp("secure-nsqd"), tie_to_parent=True,
                             tls=devservers.NsqdTls(str(pki / "server.pem"),
                                                    str(pki / "server-key.pem"),
                                                    str(pki / "ca.pem"))).start()
    yield server
    server.stop()


def settings_for(server, pki, client: str = "client", **more: str) -> Settings:
    return Settings.load({
        "MR_QUEUE_BACKEND": "nsq", "MR_NSQD_HOSTS": server.addresses["tcp"],
        "MR_NSQD_TLS": "1", "MR_NSQD_CA_FILE": str(pki / "ca.pem"),
        "MR_NSQD_CERT_FILE": str(pki / f"{client}.pem"),
        "MR_NSQD_KEY_FILE": str(pki / f"{client}-key.pem"), **more})


def test_messages_flow_over_tls(secure_nsqd, pki):
    queue = create_queue(settings_for(secure_nsqd, pki))
    received = gevent.event.AsyncResult()
    try:
        queue.consume("tls_topic", "tls_channel", lambda message: received.set(message.body))
        queue.publish("tls_topic", b"over tls")
        assert received.get(timeout=10) == b"over tls"
    finally:
        queue.close()


@pytest.mark.parametrize("overrides", [
    {"MR_NSQD_TLS": "0"},  # a plain client: nsqd requires TLS
    {"MR_NSQD_CERT_FILE": "stranger.pem", "MR_NSQD_KEY_FILE": "stranger-key.pem"},
], ids=["plain", "untrusted certificate"])
def test_a_client_nsqd_does_not_accept_cannot_publish(secure_nsqd, pki, overrides):
    settings = settings_for(secure_nsqd, pki, **{
        name: str(pki / value) if value.endswith(".pem") else value
        for name, value in overrides.items()})
    queue = create_queue(settings)
    queue._publish_timeout_s = 2.0
    try:
        with pytest.raises(QueueError, match="cannot publish to 'refused'"):
            queue.publish("refused", b"x")
    finally:
        queue.close()


def test_a_request_runs_over_tls_with_signed_messages(secure_nsqd, pki):
    settings = settings_for(secure_nsqd, pki, MR_MESSAGE_SECRET="cluster secret")
    run_total_request(settings, MemoryKV(), create_queue(settings))
