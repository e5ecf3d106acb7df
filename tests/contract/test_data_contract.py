"""The data store contract: every test runs against the embedded store, a local directory,
fsspec's in-memory filesystem (a URL backend without a native rename) and a bucket of a real S3
server through s3fs (objects only: no directories, no rename)."""
import time
import uuid

import fsspec
import gevent
import gevent.monkey
import pytest

from mr.data import create_data_store
from mr.data.base import DataError, DataNotFoundError
from mr.data.fsspec_store import FsspecDataStore
from mr.data.memory import MemoryDataStore
from mr.settings import Settings

_real_sleep = gevent.monkey.get_original("time", "sleep")


@pytest.fixture(params=["memory", "directory", "memory-url", "s3"])
def store(request, tmp_path):
    if request.param == "memory":
        data_store = MemoryDataStore()
    elif request.param == "directory":
        data_store = FsspecDataStore(str(tmp_path / "data"))
    else:
        root, filesystem = _url_root(request)
        data_store = FsspecDataStore(root)
        request.addfinalizer(lambda: _remove(filesystem, root))
    yield data_store
    data_store.close()


def _url_root(request) -> tuple[str, fsspec.AbstractFileSystem]:
    """A root URL of this test's own for a URL store, and the filesystem it is on."""
    if request.param == "memory-url":
        return f"memory://mr-test-{uuid.uuid4().hex}", fsspec.filesystem("memory")
    bucket = request.getfixturevalue("s3_bucket")
    return f"{bucket.url}/{uuid.uuid4().hex}", fsspec.filesystem("s3", **bucket.storage_options)


def _remove(filesystem: fsspec.AbstractFileSystem, root: str) -> None:
    if filesystem.exists(root):  # an object store has nothing there once the objects are gone
        filesystem.rm(root, recursive=True)


@pytest.mark.parametrize("value", [bytes(range(256)) * 4, b"", b"\0\r\n\xff"],
                         ids=["all-bytes", "empty", "control"])
def test_put_then_get_round_trips_bytes(store, value):
    store.put("req/abc/args", value)
    assert store.get("req/abc/args") == value


def test_large_value_round_trips(store):
    value = uuid.uuid4().bytes * (60 * 1024 * 1024 // 16)
    store.put("big/value", value)
    assert store.get("big/value") == value


def test_bytearray_and_memoryview_are_stored_as_bytes(store):
    store.put("a/array", bytearray(b"xy"))
    store.put("a/view", memoryview(b"zw"))
    assert (store.get("a/array"), store.get("a/view")) == (b"xy", b"zw")
    with pytest.raises(TypeError):
        store.put("a/text", "not bytes")


def test_put_overwrites(store):
    store.put("o/x", b"first, longer value")
    store.put("o/x", b"second")
    assert store.get("o/x") == b"second"
    assert store.list_tree("o") == ["o/x"]


def test_get_of_missing_object_names_the_path(store):
    store.put("present/x", b"1")
    for missing in ["absent", "present/y", "present", "present/x/below"]:
        with pytest.raises(DataNotFoundError, match=missing) as caught:
            store.get(missing)
        assert isinstance(caught.value, KeyError) and caught.value.path == missing


def test_list_tree_is_sorted_and_respects_the_prefix_boundary(store):
    for path in ["a/2", "a/1", "a/sub/3", "ab/4", "b"]:
        store.put(path, path.encode())
    assert store.list_tree("a") == ["a/1", "a/2", "a/sub/3"]
    assert store.list_tree("a/sub") == ["a/sub/3"]
    assert store.list_tree() == ["a/1", "a/2", "a/sub/3", "ab/4", "b"]
    assert store.list_tree("missing") == []
    assert store.list_tree("b") == []  # an object, not a tree


def test_delete_tree_removes_only_that_prefix(store):
    for path in ["a/1", "a/sub/2", "ab/3", "b"]:
        store.put(path, b"x")
    assert store.delete_tree("a") == 2
    assert store.list_tree() == ["ab/3", "b"]
    assert store.get("ab/3") == b"x"
    with pytest.raises(DataNotFoundError):
        store.get("a/1")
    assert store.delete_tree("a") == 0
    assert store.delete_tree("b") == 0 and store.get("b") == b"x"


def test_delete_trees_removes_each_and_says_how_each_went(store, monkeypatch):
    for path in ["a/1", "b/2", "c/3", "d/4"]:
        store.put(path, b"x")
    assert store.delete_trees(["a", "missing", "c"]) == [None, None, None]
    assert store.list_tree() == ["b/2", "d/4"]
    delete_tree = store._delete_tree

    def refusing_b(prefix):
        if prefix == "b":
            raise OSError("refused")
        return delete_tree(prefix)

    monkeypatch.setattr(store, "_delete_tree", refusing_b)
    refused, removed = store.delete_trees(["b", "d"])
    assert (type(refused), str(refused), removed) == (OSError, "refused", None)
    assert store.list_tree() == ["b/2"]


def test_a_tree_can_be_written_again_after_deletion(store):
    store.put("r/1", b"old")
    store.delete_tree("r")
    store.put("r/1", b"new")
    assert store.get("r/1") == b"new"


def test_pairs_round_trip_typed(store):
    pairs = [["word", 3], [b"\xffkey", [1.5, None]], [7, {"nested": True}]]
    store.put_pairs("d/pairs", pairs)
    assert store.get_pairs("d/pairs") == pairs
    store.put_pairs("d/empty", [])
    assert store.get_pairs("d/empty") == []


def test_large_datasets_round_trip(store):
    pairs = [[f"key-{number:06d}", ["value", number, b"\0" * (number % 3)]]
             for number in range(50_000)]  # about 1.5 MB: encoded and decoded off the loop
    store.put_pairs("d/large", pairs)
    assert store.get_pairs("d/large") == pairs


def test_only_a_store_that_waits_for_io_lets_other_greenlets_run_meanwhile(store):
    """fsspec stores read and write files (a disk, NFS, a network): in a thread, while the event
    loop serves other greenlets. The embedded store never yields: its puts are atomic."""
    for operation in [lambda: store.put("x/y", b"1"), lambda: store.get("x/y"),
                      lambda: store.list_tree("x"), lambda: store.delete_tree("x")]:
        other = gevent.spawn(lambda: None)
        operation()
        assert other.dead == isinstance(store, FsspecDataStore)
        other.kill()


@pytest.mark.parametrize("path", ["", "/abs", "a//b", "a/", "./a", "a/..", "../a", "a/.hidden"])
def test_invalid_paths_are_rejected(store, path):
    with pytest.raises(ValueError):
        store.put(path, b"x")
    with pytest.raises(ValueError):
        store.get(path)
    with pytest.raises(ValueError):
        store.delete_tree(path)
    if path:  # the empty prefix lists everything
        with pytest.raises(ValueError):
            store.list_tree(path)
    assert store.list_tree() == []


def test_concurrent_puts_from_greenlets(store):
    def write(index):
        for round_ in range(5):
            store.put(f"c/{index}", f"{index}:{round_}".encode() * 1000)
            store.put("c/shared", f"{index}".encode() * 1000)

    gevent.joinall([gevent.spawn(write, index) for index in range(20)], raise_error=True)
    assert store.list_tree("c") == sorted([f"c/{index}" for index in range(20)] + ["c/shared"])
    for index in range(20):
        assert store.get(f"c/{index}") == f"{index}:4".encode() * 1000
    shared = store.get("c/shared")
    assert len(shared) in range(1000, 3000) and shared == shared[: len(shared) // 1000] * 1000


def test_a_reader_in_another_thread_sees_whole_values_only(store):
    values = [b"a" * 3_000_000, b"b" * 6_000_000]
    store.put("atomic/x", values[0])
    reads, writing = [], [True]

    def read_until_writes_end():
        while writing[0]:
            reads.append(store.get("atomic/x"))

    reader = gevent.get_hub().threadpool.spawn(read_until_writes_end)  # a real OS thread
    for value in values * 15:
        store.put("atomic/x", value)
        _wait_for_more(reads)  # the embedded stores never release the GIL while writing
    writing[0] = False
    reader.get()
    assert len(reads) >= 30 and all(read in values for read in reads)


def _wait_for_more(items: list, timeout_s: float = 5.0) -> None:
    """Block this OS thread (not just the greenlet) until ``items`` grows."""
    count, deadline = len(items), time.monotonic() + timeout_s
    while len(items) == count and time.monotonic() < deadline:
        _real_sleep(0.0005)


def test_directory_store_leaves_no_partial_files(tmp_path):
    FsspecDataStore(str(tmp_path / "new" / "root")).put("x/y", b"1")
    assert [p.name for p in (tmp_path / "new" / "root" / "x").iterdir()] == ["y"]


def test_directory_store_is_shared_by_instances_on_the_same_url(tmp_path):
    url = f"file://{tmp_path}/shared"
    FsspecDataStore(url).put("req/1", b"from one node")
    assert FsspecDataStore(url).get("req/1") == b"from one node"


def test_unusable_url_is_a_data_error(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(DataError, match="cannot open data store"):
        FsspecDataStore(str(tmp_path / "file" / "below"))
    with pytest.raises(DataError, match="cannot open data store"):
        FsspecDataStore("no-such-protocol://x")


def test_factory_builds_the_store_the_settings_name(tmp_path):
    assert isinstance(create_data_store(Settings.load({})), MemoryDataStore)
    settings = Settings.load({"MR_DATA_STORE_URL": str(tmp_path)})
    directory_store = create_data_store(settings)
    assert isinstance(directory_store, FsspecDataStore)
    directory_store.put("x", b"1")
    assert (tmp_path / "x").read_bytes() == b"1"


def test_two_removals_of_one_tree_at_once_both_succeed(store):
    """Two processes cleaning up the same finished request must not fail each other."""
    for trial in range(10):
        for number in range(100):
            store.put(f"race{trial}/inv{number % 10}/part{number}", b"x")
        removals = [gevent.spawn(store.delete_tree, f"race{trial}") for _ in range(2)]
        gevent.joinall(removals, raise_error=True)
        assert store.list_tree(f"race{trial}") == []
