"""mr.datasets.splits: which files a URL names, and splits planned from metadata alone."""
import gzip
import random
import re
import uuid

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.registry import known_implementations

from mr import codec
from mr.datasets.formats import DatasetError, open_writer, read_pairs
from mr.datasets.splits import Split, list_files, plan_splits


@pytest.fixture
def tree(tmp_path):
    """A job's output directory as Hadoop leaves it, with hidden files beside the parts."""
    root = tmp_path / "data"
    files = {
        "part-0": b"a\nb\n", "sub/part-1.txt": b"ccc\n", "top.txt": b"dd", "empty.txt": b"",
        "_SUCCESS": b"", ".part-2.partial": b"x\n", "_temporary/0/part-9": b"y\n",
        "sub/.hidden.txt": b"z\n", "_logs.txt": b"w\n",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.fixture
def memory_root():
    """A fresh directory on fsspec's shared memory filesystem, which memory:// URLs reach."""
    root = f"/{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_a_directory_lists_its_visible_files_recursively(tree):
    assert list_files(str(tree)) == [
        (f"{tree}/empty.txt", 0), (f"{tree}/part-0", 4), (f"{tree}/sub/part-1.txt", 4),
        (f"{tree}/top.txt", 2)]
    assert list_files(f"file://{tree}/") == list_files(str(tree))


def test_a_glob_lists_its_visible_matches_and_the_files_of_matched_directories(tree):
    assert list_files(f"{tree}/*.txt") == [(f"{tree}/empty.txt", 0), (f"{tree}/top.txt", 2)]
    assert list_files(f"{tree}/su?") == [(f"{tree}/sub/part-1.txt", 4)]
    assert list_files(f"{tree}/[p]art-*") == [(f"{tree}/part-0", 4)]


def test_a_file_lists_itself_even_when_its_name_is_hidden(tree):
    assert list_files(f"{tree}/sub/part-1.txt") == [(f"{tree}/sub/part-1.txt", 4)]
    assert list_files(f"{tree}/_SUCCESS") == [(f"{tree}/_SUCCESS", 0)]


@pytest.mark.parametrize("name", ["missing", "missing/*.txt", "*.csv", "_*"])
def test_nothing_to_read_is_an_error_naming_the_url(tree, name):
    with pytest.raises(DatasetError, match=f"^no input files at {re.escape(f'{tree}/{name}')}$"):
        list_files(f"{tree}/{name}")


def test_a_directory_of_hidden_files_only_has_no_input_files(tmp_path):
    (tmp_path / "_temporary").mkdir()
    (tmp_path / "_temporary" / "part-0").write_bytes(b"x\n")
    (tmp_path / "_SUCCESS").write_bytes(b"")
    with pytest.raises(DatasetError, match=f"^no input files at {tmp_path}$"):
        list_files(str(tmp_path))
    assert list_files(f"{tmp_path}/_temporary") == [(f"{tmp_path}/_temporary/part-0", 2)]


def test_an_unknown_protocol_is_an_error_naming_the_url():
    with pytest.raises(DatasetError, match="^cannot open nosuch://bucket/data: Protocol not known"):
        list_files("nosuch://bucket/data")


def test_a_protocol_whose_package_is_missing_is_an_error_naming_the_url(monkeypatch):
    monkeypatch.setitem(known_implementations, "absent",
                        {"class": "no_such_package.FileSystem", "err": "install no_such_package"})
    with pytest.raises(DatasetError, match="^cannot open absent://data: install no_such_package"):
        list_files("absent://data")


def test_a_failing_listing_is_an_error_naming_the_url(memory_root, monkeypatch):
    def refuse(self, path, **kwargs):
        raise PermissionError(f"access denied to {path}")
    monkeypatch.setattr(MemoryFileSystem, "info", refuse)
    with pytest.raises(DatasetError, match=f"^cannot list memory://{memory_root}: access denied"):
        list_files(f"memory://{memory_root}")


def test_memory_urls_keep_their_protocol_so_another_process_can_open_them(memory_root):
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"{memory_root}/in/a.txt", b"one\ntwo\n")
    fs.pipe_file(f"{memory_root}/in/_SUCCESS", b"")
    assert list_files(f"memory://{memory_root}/in") == [(f"memory://{memory_root}/in/a.txt", 8)]
    [split] = plan_splits(f"memory://{memory_root}/in", "text", 100)
    assert list(split.open_pairs()) == [[[f"{memory_root}/in/a.txt", 0], "one"],
                                        [[f"{memory_root}/in/a.txt", 4], "two"]]


def test_splits_cover_each_file_in_ranges_the_last_open_ended(tree):
    assert plan_splits(str(tree), "text", 3) == [
        Split(f"{tree}/part-0", 0, 3, "text"), Split(f"{tree}/part-0", 3, None, "text"),
        Split(f"{tree}/sub/part-1.txt", 0, 3, "text"),
        Split(f"{tree}/sub/part-1.txt", 3, None, "text"),
        Split(f"{tree}/top.txt", 0, None, "text")]  # empty.txt: no split
    assert plan_splits(str(tree), "jsonl", 4)[0] == Split(f"{tree}/part-0", 0, None, "jsonl")


def test_gzip_and_mr_files_are_one_split_each(tmp_path):
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"x\n" * 100))
    assert plan_splits(str(tmp_path / "a.txt.gz"), "text", 2) == [
        Split(str(tmp_path / "a.txt.gz"), 0, None, "text")]
    fs = fsspec.filesystem("file")
    with open_writer(fs, str(tmp_path / "b.mr"), "mr") as writer:
        writer.write_all([["k", index] for index in range(100)])
    assert plan_splits(str(tmp_path / "b.mr"), "mr", 2) == [
        Split(str(tmp_path / "b.mr"), 0, None, "mr")]


@pytest.mark.parametrize("fmt, split_bytes, message", [
    ("csv", 10, "unknown dataset format 'csv'"),
    ("text", 0, "split size must be at least 1 byte, not 0"),
])
def test_plan_splits_refuses_what_cannot_be_planned(tree, fmt, split_bytes, message):
    with pytest.raises(DatasetError, match=message):
        plan_splits(str(tree), fmt, split_bytes)


def test_planning_opens_no_file_and_reading_does(memory_root, monkeypatch):
    fs = fsspec.filesystem("memory")
    for index in range(5):
        fs.pipe_file(f"{memory_root}/in/part-{index}", b"line\n" * 1000)
    opened = []
    original_open = MemoryFileSystem._open

    def counted_open(self, path, *args, **kwargs):
        opened.append(path)
        return original_open(self, path, *args, **kwargs)
    monkeypatch.setattr(MemoryFileSystem, "_open", counted_open)
    splits = plan_splits(f"memory://{memory_root}/in", "text", 1000)
    assert len(splits) == 25 and opened == []
    assert len(list(splits[0].open_pairs())) == 200 and len(opened) == 1


def test_the_splits_of_a_directory_read_every_line_once(tmp_path):
    rng = random.Random(7)
    expected = []
    for index in range(4):
        path = tmp_path / f"part-{index}"
        lines = ["".join(rng.choice("ab é€\r") for _ in range(rng.randrange(0, 30)))
                 for _ in range(rng.randrange(0, 50))]
        data = "".join(line + rng.choice(["\n", "\r\n"]) for line in lines).encode()
        path.write_bytes(data)
        expected.extend(read_pairs(fsspec.filesystem("file"), str(path), "text"))
    for split_bytes in (1, 5, 64, 10_000):
        splits = plan_splits(str(tmp_path), "text", split_bytes)
        assert [pair for split in splits for pair in split.open_pairs()] == expected


def test_a_split_travels_as_a_message():
    split = Split("memory:///in/a.txt", 10, 20, "text")
    assert Split.from_message(codec.decode(codec.encode(split.to_message()))) == split
    assert split.size == 10 and Split("/in/a.txt", 10, None, "text").size is None
    with pytest.raises(DatasetError, match=r"^not a split: \['memory:///in/a.txt', 10\]"):
        Split.from_message(["memory:///in/a.txt", 10])
