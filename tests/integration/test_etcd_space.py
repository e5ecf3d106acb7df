"""An etcd out of space (its NOSPACE alarm): the front end answers a clear 503 at once and reads
keep working; after ``mr etcd maintain`` the same running process writes again."""
import os

import gevent
import pytest

from mr import devservers
from mr.data.memory import MemoryDataStore
from mr.engine.engine import Engine
from mr.executor import ExecutorPool
from mr.kv.base import KVSpaceExceededError
from mr.models import EntityStore
from mr.queue.memory import MemoryQueue
from mr.settings import Settings
from mr.web.app import create_app
from mr.worker.worker import Worker
from tests.cli.conftest import Mr, etcd_settings
from tests.conftest import etcd_client
from tests.web.test_api import assert_error, post_job
from tests.web.workflow import WORKFLOW, populate

QUOTA_BYTES = 16 * 2 ** 20
#: Under etcd's request size limit (1.5 MiB); rewritten, each version stays in the history.
BALLAST = b"x" * 2 ** 19
#: A guard against a hang, far above what any of these answers takes.
HANG_GUARD_S = 30


@pytest.fixture
def small_etcd(tmp_path):
    server = devservers.etcd(tmp_path / "etcd", tie_to_parent=True,
                             quota_backend_bytes=QUOTA_BYTES).start()
    yield server
    server.stop()


@pytest.fixture
def front_end(small_etcd):
    """The front end and a worker in this process, over the small etcd."""
    settings = Settings.load({}).with_overrides(workflow_names=(WORKFLOW,), kv_prefix="/space")
    kv = etcd_client(small_etcd, timeout_s=1.0)
    populate(EntityStore(kv, settings.kv_prefix))
    queue = MemoryQueue(message_timeout_s=settings.message_timeout_s)
    executor = ExecutorPool(size=1)
    engine = Engine(settings, kv, queue, MemoryDataStore(), executor).serve()
    worker = Worker(engine).start()
    yield create_app(engine).test_client()
    worker.stop(timeout=2)
    executor.close()
    engine.stop()
    queue.close()
    kv.close()


def mr_with(settings: dict[str, str]) -> Mr:
    """``mr`` with these settings only, whatever MR_* variables the tests run with."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("MR_")}
    return Mr({**environment, **settings})


def fill(kv) -> None:
    """Write until etcd refuses: nothing is compacted yet, so every version takes space."""
    for number in range(4 * QUOTA_BYTES // len(BALLAST)):
        try:
            kv.put(f"/ballast/{number % 4}", BALLAST)
        except KVSpaceExceededError:
            return
    pytest.fail(f"etcd accepted {4 * QUOTA_BYTES} bytes with a quota of {QUOTA_BYTES}")


def test_out_of_space_is_a_clear_503_until_maintenance_frees_space(small_etcd, front_end):
    kv = etcd_client(small_etcd)
    try:
        kept = post_job(front_end, query="?blocking=false").get_json()["request_id"]
        with gevent.Timeout(HANG_GUARD_S):
            while front_end.get(f"/request/{WORKFLOW}/{kept}").get_json()["state"] != "done":
                gevent.sleep(0.05)
        fill(kv)
        assert [alarm.alarm for alarm in kv.alarms()] == ["NOSPACE"]

        with gevent.Timeout(HANG_GUARD_S):
            refused = post_job(front_end)
        assert_error(refused, 503, "ServiceUnavailable", "etcd is out of space",
                     "database space exceeded", "reads still work", "mr etcd maintain")
        assert refused.headers["Retry-After"] == "60"
        with gevent.Timeout(HANG_GUARD_S):
            described = front_end.get(f"/request/{WORKFLOW}/{kept}")
        assert described.status_code == 200 and described.get_json()["state"] == "done"

        kv.delete("/ballast/", prefix=True)  # deletes are allowed under the alarm
        with pytest.raises(KVSpaceExceededError):  # but space comes back only with maintenance
            kv.put("/after-delete", b"v")
        output = mr_with(etcd_settings(small_etcd)).ok("etcd", "maintain").splitlines()
        assert output[0].startswith("compacted the history to revision ")
        assert output[1].startswith(f"defragmented {small_etcd.addresses['client']}: database ")
        assert output[2].startswith("disarmed the NOSPACE alarm of member ")
        assert kv.alarms() == []
        assert kv.database_size() < QUOTA_BYTES // 4

        with gevent.Timeout(HANG_GUARD_S):
            answered = post_job(front_end)
        assert answered.status_code == 200, answered.get_json()
        assert answered.get_json()["result"]["pairs"] == [["a", 1]]
    finally:
        kv.close()


def test_an_unreachable_etcd_is_a_503_to_retry_soon(small_etcd, front_end):
    small_etcd.stop()
    with gevent.Timeout(HANG_GUARD_S):
        refused = post_job(front_end)
    assert_error(refused, 503, "ServiceUnavailable", "etcd")
    assert refused.headers["Retry-After"] == "5"


def test_maintain_when_nothing_is_wrong_says_so(small_etcd):
    output = mr_with(etcd_settings(small_etcd)).ok("etcd", "maintain")
    assert output.splitlines()[-1] == "no NOSPACE alarm was raised"


def test_maintain_needs_etcd():
    assert "set MR_KV_BACKEND=etcd" in mr_with({}).fails("etcd", "maintain")
