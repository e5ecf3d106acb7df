"""Fixtures shared by every test: real servers on loopback, and each backend of each interface.

The session starts one private etcd and one private nsqd on free ports, and an S3 server once a
test asks for a bucket (stopped by pid at the end, and tied to this process so that they die with
it). Tests that restart or kill a server start their own. ``kv`` and ``queue`` are parametrized
over both implementations, so every contract test runs against the embedded backend and the real
server.
"""
from gevent import monkey

if not monkey.is_module_patched("socket"):  # scripts/test patches before pytest starts
    monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from typing import Callable, NamedTuple  # noqa: E402

import pytest  # noqa: E402

from mr import devservers  # noqa: E402
from mr.kv.etcd import EtcdKV  # noqa: E402
from mr.kv.memory import MemoryKV  # noqa: E402
from mr.queue.memory import MemoryQueue  # noqa: E402
from mr.queue.nsq import NsqQueue  # noqa: E402
from mr.settings import Settings  # noqa: E402

# The suite never reads a developer's settings file (mr cluster start writes one); many
# fixtures strip every MR_* variable, so the default file's directory is moved instead.
os.environ.pop("MR_CONFIG_FILE", None)
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="mr-test-config-")

#: Short, so that redelivery after a message timeout is observable quickly in tests.
TEST_MESSAGE_TIMEOUT_S = 1.0


def pytest_report_header(config):
    return [f"etcd: {devservers.binary_version('etcd')}",
            f"nsqd: {devservers.binary_version('nsqd')}"]


#: ``SECURE_TEST_SERVERS=1``: the session's etcd and nsqd take TLS clients with a certificate
#: made for the session, and only those; etcd's authentication is on; the engines of the
#: engine tests sign their messages. ``scripts/test`` runs the engine and contract tests so too.
SECURE = os.environ.get("SECURE_TEST_SERVERS") == "1"
#: The root user's password of a secure session's etcd.
ETCD_PASSWORD = uuid.uuid4().hex


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    from mr.devcerts import make_pki  # cryptography is a test dependency, not mr's
    return make_pki(tmp_path_factory.mktemp("pki"))


def _server_tls(pki, tls_class):
    return tls_class(str(pki / "server.pem"), str(pki / "server-key.pem"), str(pki / "ca.pem"))


def _client_files(pki) -> dict[str, str]:
    return {"ca_file": str(pki / "ca.pem"), "cert_file": str(pki / "client.pem"),
            "key_file": str(pki / "client-key.pem")}


@pytest.fixture(scope="session")
def etcd_server(request, tmp_path_factory):
    pki = request.getfixturevalue("pki") if SECURE else None
    server = devservers.etcd(tmp_path_factory.mktemp("etcd"), tie_to_parent=True,
                             tls=pki and _server_tls(pki, devservers.EtcdTls)).start()
    if SECURE:
        server.client_options = {"ssl": True, **_client_files(pki)}
        with etcd_client(server) as kv:
            kv.enable_authentication("root", ETCD_PASSWORD)
        server.client_options.update(user="root", password=ETCD_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nsqd_server(request, tmp_path_factory):
    pki = request.getfixturevalue("pki") if SECURE else None
    server = devservers.nsqd(
        tmp_path_factory.mktemp("nsqd"), tie_to_parent=True,
        tls=pki and _server_tls(pki, devservers.NsqdTls), **devservers.nsqd_timeouts(
            Settings.load({}).with_overrides(message_timeout_s=TEST_MESSAGE_TIMEOUT_S))).start()
    if SECURE:
        server.client_options = {"tls": True, **_client_files(pki)}
    yield server
    server.stop()


class S3Bucket(NamedTuple):
    #: ``s3://bucket/prefix``: a prefix of this session's own.
    url: str
    #: s3fs's options for the same server and identity (what the environment already says).
    storage_options: dict


@pytest.fixture(scope="session")
def s3_bucket(tmp_path_factory):
    """A bucket on a private S3 server (moto), started on first use. The server's endpoint
    and credentials are put in this process's environment (``AWS_*``), as a deployment gives
    them to every mr process, so that ``FsspecDataStore(url)`` needs nothing else."""
    data_dir = tmp_path_factory.mktemp("s3")
    server = devservers.s3_server(data_dir, tie_to_parent=True).start()
    with pytest.MonkeyPatch.context() as environment:
        for name, value in server.client_env.items():
            environment.setenv(name, value)
        yield S3Bucket(f"s3://{server.bucket}/test-{uuid.uuid4().hex[:12]}",
                       {"endpoint_url": server.endpoint_url, "key": server.access_key,
                        "secret": server.secret_key})
    server.stop()
    shutil.rmtree(data_dir)


def etcd_client(server: devservers.ServerProcess, **options) -> EtcdKV:
    """A client of ``server``, with the certificate and credentials it asks for, if any."""
    host, port = server.addresses["client"].rsplit("/", 1)[-1].split(":")
    return EtcdKV(host, int(port), **{**getattr(server, "client_options", {}), **options})


def nsq_client(server: devservers.ServerProcess, **options) -> NsqQueue:
    """A client of ``server`` over TLS when it asks for it."""
    return NsqQueue([server.addresses["tcp"]],
                    **{**getattr(server, "client_options", {}), **options})


def delete_topics(server: devservers.ServerProcess, chosen: Callable[[str], bool]) -> None:
    """Delete the chosen topics of the session's nsqd, once their test is over.

    nsqd looks for timed-out and deferred messages in 20 channels drawn at random every 100 ms,
    so a channel waits longer for its turn the more channels the server holds: left in place,
    the topics of every earlier test would make the timing tests' messages late.
    """
    http = f"http://{server.addresses['http']}"
    with urllib.request.urlopen(f"{http}/stats?format=json") as answer:
        names = [topic["topic_name"] for topic in json.load(answer)["topics"]]
    for name in filter(chosen, names):
        urllib.request.urlopen(urllib.request.Request(
            f"{http}/topic/delete?topic={name}", method="POST")).read()


@pytest.fixture(params=["memory", "etcd"])
def kv(request):
    if request.param == "memory":
        store = MemoryKV()
    else:
        store = etcd_client(request.getfixturevalue("etcd_server"))
    yield store
    store.close()


@pytest.fixture
def kv_prefix():
    """A key space of this test's own: the shared etcd outlives every test."""
    return f"/test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["memory", "nsq"])
def queue(request):
    if request.param == "memory":
        backend = MemoryQueue(message_timeout_s=TEST_MESSAGE_TIMEOUT_S)
    else:
        backend = nsq_client(request.getfixturevalue("nsqd_server"))
    yield backend
    backend.close()
    if request.param == "nsq":
        delete_topics(request.getfixturevalue("nsqd_server"),
                      lambda name: name.startswith(TOPIC_PREFIX))


#: The names of the topics that the ``topic`` fixture gives.
TOPIC_PREFIX = "test_"


@pytest.fixture
def topic():
    """A topic of this test's own on the shared nsqd (deleted by ``queue`` after the test)."""
    return f"{TOPIC_PREFIX}{uuid.uuid4().hex[:16]}"
