"""Fixtures shared by every test: real servers on loopback, and each backend of each interface.

The session starts one private etcd and one private nsqd on free ports (stopped by pid at the
end, and tied to this process so that they die with it). Tests that restart or kill a server
start their own. ``kv`` and ``queue`` are parametrized over both implementations, so every
contract test runs against the embedded backend and the real server.
"""
from gevent import monkey

if not monkey.is_module_patched("socket"):  # scripts/test patches before pytest starts
    monkey.patch_all()

import uuid  # noqa: E402

import pytest  # noqa: E402

from mr import devservers  # noqa: E402
from mr.kv.etcd import EtcdKV  # noqa: E402
from mr.kv.memory import MemoryKV  # noqa: E402
from mr.queue.memory import MemoryQueue  # noqa: E402
from mr.queue.nsq import NsqQueue  # noqa: E402
from mr.settings import Settings  # noqa: E402

#: Short, so that redelivery after a message timeout is observable quickly in tests.
TEST_MESSAGE_TIMEOUT_S = 1.0


def pytest_report_header(config):
    return [f"etcd: {devservers.binary_version('etcd')}",
            f"nsqd: {devservers.binary_version('nsqd')}"]


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory):
    server = devservers.etcd(tmp_path_factory.mktemp("etcd"), tie_to_parent=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nsqd_server(tmp_path_factory):
    server = devservers.nsqd(
        tmp_path_factory.mktemp("nsqd"), tie_to_parent=True, **devservers.nsqd_timeouts(
            Settings.load({}).with_overrides(message_timeout_s=TEST_MESSAGE_TIMEOUT_S))).start()
    yield server
    server.stop()


def etcd_client(server: devservers.ServerProcess, **options) -> EtcdKV:
    host, port = server.addresses["client"].rsplit("/", 1)[-1].split(":")
    return EtcdKV(host, int(port), **options)


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
        backend = NsqQueue([request.getfixturevalue("nsqd_server").addresses["tcp"]])
    yield backend
    backend.close()


@pytest.fixture
def topic():
    """A topic of this test's own on the shared nsqd."""
    return f"test_{uuid.uuid4().hex[:16]}"
