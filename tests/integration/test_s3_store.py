"""mr's data on S3 (s3fs, against the session's moto server): the data store, and a word count
whose input, shuffle and output are on the bucket. Configured as a deployment configures every
mr process: ``MR_DATA_STORE_URL`` names the bucket, the ``AWS_*`` environment the endpoint and
the credentials; nothing S3-specific in mr's own settings.

The load test runs this module as a program (``python -m tests.integration.test_s3_store``): a
fresh gevent process, patched first like every mr process, whose store calls go through the
offload thread pool while a greenlet beside them must keep getting the event loop.
"""
from gevent import monkey

if __name__ == "__main__":
    monkey.patch_all()

import importlib.metadata  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import posixpath  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import fsspec  # noqa: E402
import gevent  # noqa: E402

from mr.data import create_data_store  # noqa: E402
from mr.data.fsspec_store import FsspecDataStore  # noqa: E402
from mr.datasets import read_pairs  # noqa: E402
from mr.engine.engine import Engine  # noqa: E402
from mr.executor import ExecutorPool  # noqa: E402
from mr.kv.memory import MemoryKV  # noqa: E402
from mr.queue.memory import MemoryQueue  # noqa: E402
from mr.settings import Settings  # noqa: E402
from mr.worker.worker import Worker  # noqa: E402
from tests.engine.conftest import Cluster  # noqa: E402
from tests.engine.test_shuffle import TEXT, count_job, expected_counts  # noqa: E402

WRITERS = 40
ROUNDS = 10
LARGE_WRITERS = 2
LARGE_VALUE_BYTES = 16 << 20
TICK_S = 0.005
#: A liveness bound, not a speed target: a hundred ticks, far below a stalled or blocked loop.
MAX_TICK_GAP_S = 0.5
#: The whole load, process start to exit: a deadlock fails the test instead of hanging it.
LOAD_TIMEOUT_S = 180

_native_thread_id = monkey.get_original("_thread", "get_ident")


def test_the_settings_name_an_s3_store_and_the_environment_reaches_it(s3_bucket):
    url = f"{s3_bucket.url}/{uuid.uuid4().hex}"
    store = create_data_store(Settings.load({"MR_DATA_STORE_URL": url}))
    assert isinstance(store, FsspecDataStore)
    store.put("req/1/args", b"through the environment")
    bucket = fsspec.filesystem("s3", **s3_bucket.storage_options)
    assert bucket.cat_file(f"{url}/req/1/args") == b"through the environment"
    assert store.delete_tree("req") == 1 and not bucket.exists(f"{url}/req/1/args")


def test_the_s3_extra_installs_s3fs():
    assert "s3" in importlib.metadata.metadata("mr").get_all("Provides-Extra")
    requirements = importlib.metadata.requires("mr")
    assert any(line.startswith("s3fs") and 'extra == "s3"' in line for line in requirements)
    assert importlib.metadata.version("s3fs")


def test_greenlets_share_the_store_through_the_offload_pool_and_the_loop_stays_live(s3_bucket):
    environment = {**os.environ, "MR_DATA_STORE_URL": f"{s3_bucket.url}/{uuid.uuid4().hex}"}
    finished = subprocess.run([sys.executable, "-m", "tests.integration.test_s3_store"],
                              cwd=Path(__file__).parents[2], env=environment,
                              capture_output=True, text=True, timeout=LOAD_TIMEOUT_S)
    assert finished.returncode == 0, finished.stderr[-5000:]
    report = json.loads(finished.stdout.splitlines()[-1])
    assert report["listings"] == [[f"load/{writer}/{slot}" for slot in range(3)]
                                  for writer in range(WRITERS)]
    assert report["large_values_read"] == LARGE_WRITERS * 2
    assert report["backend_threads"] >= 2 and not report["backend_on_loop_thread"]
    assert report["longest_tick_gap_s"] < MAX_TICK_GAP_S, report


def test_a_word_count_reads_spills_and_writes_on_the_bucket_from_the_executor_children(
        s3_bucket):
    """Input files, shuffle and file writer on S3, in an embedded mr: the engine plans the
    splits and commits the output; the executor children read the splits, spill and write the
    parts themselves, their S3 settings inherited with the environment they are started in."""
    root = f"{s3_bucket.url}/{uuid.uuid4().hex}"
    bucket = fsspec.filesystem("s3", **s3_bucket.storage_options)
    texts = {"a.txt": TEXT[:500], "b.txt": TEXT[-300:]}
    for name, text in texts.items():
        bucket.pipe_file(f"{root}/in/{name}", text.encode())
    settings = Settings.load({"MR_DATA_STORE_URL": f"{root}/data", "MR_SPLIT_BYTES": "100",
                              "MR_WORKFLOW_NAMES": "s3_words"})
    with ExecutorPool(size=2, default_timeout_s=30) as pool:
        engine = Engine(settings, MemoryKV(), MemoryQueue(), create_data_store(settings),
                        pool).serve()
        cluster = Cluster(engine, Worker(engine).start())
        try:
            count_job(cluster, partitions=3)
            request = cluster.run("wordcount", {}, input={"url": f"{root}/in"},
                                  output={"url": f"{root}/out", "format": "mr"})
            spilled = engine.shuffle_store.list_tree(f"{request.workflow}/{request.request_id}")
        finally:
            cluster.worker.stop(timeout=2)
            engine.stop()
    assert request.state == "done", request.error
    spills = {posixpath.dirname(path) for path in spilled if "/runs-" in path}
    assert len(spills) > 1, spilled  # the map invocations of several splits
    assert request.output_parts == [f"{root}/out/part-{part:05d}" for part in range(3)]
    assert bucket.exists(f"{root}/out/_SUCCESS")
    pairs = [pair for url in request.output_parts for pair in read_pairs(bucket, url, "mr")]
    assert dict(pairs) == expected_counts(*texts.values())
    assert len(pairs) == len(expected_counts(*texts.values()))


def run_load() -> dict:
    """Writers and readers on this process's data store, a greenlet ticking beside them; what
    each saw, and the longest the ticking greenlet waited for the event loop."""
    store = create_data_store(Settings.load())
    backend_threads = set()

    def recorded(method):
        def run(*args):
            backend_threads.add(_native_thread_id())
            return method(*args)
        return run

    store._put, store._get = recorded(store._put), recorded(store._get)
    longest_gap = [0.0]

    def tick():
        last = time.monotonic()
        while True:
            gevent.sleep(TICK_S)
            now = time.monotonic()
            longest_gap[0] = max(longest_gap[0], now - last)
            last = now

    def write_and_read(writer: int) -> list[str]:
        for round_ in range(ROUNDS):
            value = os.urandom(1024 * (1 + (writer * ROUNDS + round_) * 37 % 256))
            path = f"load/{writer}/{round_ % 3}"
            store.put(path, value)
            if store.get(path) != value:
                raise AssertionError(f"{path} did not read back what was written")
        return store.list_tree(f"load/{writer}")

    def write_and_read_large(writer: int) -> int:
        read = 0
        for round_ in range(2):
            value = os.urandom(LARGE_VALUE_BYTES)
            store.put(f"large/{writer}", value)
            read += store.get(f"large/{writer}") == value
        return read

    ticker = gevent.spawn(tick)
    writers = [gevent.spawn(write_and_read, writer) for writer in range(WRITERS)]
    large_writers = [gevent.spawn(write_and_read_large, writer) for writer in range(LARGE_WRITERS)]
    gevent.joinall(writers + large_writers, raise_error=True)
    ticker.kill()
    store.delete_tree("load")
    store.delete_tree("large")
    return {"listings": [writer.value for writer in writers],
            "large_values_read": sum(writer.value for writer in large_writers),
            "backend_threads": len(backend_threads),
            "backend_on_loop_thread": _native_thread_id() in backend_threads,
            "longest_tick_gap_s": longest_gap[0]}


if __name__ == "__main__":
    print(json.dumps(run_load()), flush=True)
