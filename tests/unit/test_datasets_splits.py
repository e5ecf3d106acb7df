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
    [[split]] = plan_splits(f"memory://{memory_root}/in", "text", 100)
    assert list(split.open_pairs()) == [[[f"{memory_root}/in/a.txt", 0], "one"],
                                        [[f"{memory_root}/in/a.txt", 4], "two"]]


def test_files_are_cut_into_equal_ranges_the_last_open_ended(tree):
    """10 bytes in 3-byte parts: 4 parts of at most 3 bytes; a 4-byte file in 2 ranges."""
    assert flat(plan_splits(str(tree), "text", 3)) == [
        Split(f"{tree}/part-0", 0, 2, "text"), Split(f"{tree}/part-0", 2, None, "text"),
        Split(f"{tree}/sub/part-1.txt", 0, 2, "text"),
        Split(f"{tree}/sub/part-1.txt", 2, None, "text"),
        Split(f"{tree}/top.txt", 0, None, "text")]  # empty.txt: no split
    assert plan_splits(str(tree), "jsonl", 10) == [[
        Split(f"{tree}/part-0", 0, None, "jsonl"), Split(f"{tree}/sub/part-1.txt", 0, None, "jsonl"),
        Split(f"{tree}/top.txt", 0, None, "jsonl")]]  # small files share one map invocation


def flat(inputs: list[list[Split]]) -> list[Split]:
    return sorted((split for splits in inputs for split in splits),
                  key=lambda split: (split.url, split.start))


def sizes(inputs: list[list[Split]], files: dict[str, int]) -> list[int]:
    return [sum((split.end or files[split.url]) - split.start for split in splits)
            for splits in inputs]


def test_small_files_are_dealt_out_to_a_multiple_of_the_parallelism_in_equal_parts(tmp_path):
    files = {}
    for index, size in enumerate([900, 500, 400, 300, 300, 200, 100, 100, 100, 100]):
        path = tmp_path / f"f-{index:02d}.txt"
        path.write_bytes(b"x" * (size - 1) + b"\n")
        files[str(path)] = size
    inputs = plan_splits(str(tmp_path), "text", 10_000, parallelism=2)
    assert sorted(sizes(inputs, files)) == [1500, 1500]  # no file cut: none exceeds a part
    assert all(split.start == 0 and split.end is None for split in flat(inputs))
    inputs = plan_splits(str(tmp_path), "text", 1000, parallelism=2)
    assert len(inputs) == 4 and max(sizes(inputs, files)) <= 1000  # 3,000 bytes, 2 × 2 parts
    assert flat(inputs)[0] == Split(f"{tmp_path}/f-00.txt", 0, 450, "text")  # 900 > 750: cut
    for splits in inputs:
        assert splits == sorted(splits, key=lambda split: (split.url, split.start))


def test_one_large_file_is_mapped_by_every_child(tmp_path):
    (tmp_path / "big.txt").write_bytes(b"line\n" * 2000)  # 10,000 bytes
    assert plan_splits(str(tmp_path), "text", 64 << 20, parallelism=4) == [
        [Split(f"{tmp_path}/big.txt", start, start + 2500 if start < 7500 else None, "text")]
        for start in (0, 2500, 5000, 7500)]


def test_an_unsplittable_file_larger_than_a_part_is_one_split(tmp_path):
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"x\n" * 100_000))
    (tmp_path / "b.txt").write_bytes(b"y\n" * 10)
    inputs = plan_splits(str(tmp_path), "text", 100, parallelism=2)
    assert [Split(f"{tmp_path}/a.txt.gz", 0, None, "text")] in inputs
    assert len(flat(inputs)) == 2


def test_gzip_and_mr_files_are_one_split_each(tmp_path):
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"x\n" * 100))
    assert plan_splits(str(tmp_path / "a.txt.gz"), "text", 2) == [
        [Split(str(tmp_path / "a.txt.gz"), 0, None, "text")]]
    fs = fsspec.filesystem("file")
    with open_writer(fs, str(tmp_path / "b.mr"), "mr") as writer:
        writer.write_all([["k", index] for index in range(100)])
    assert plan_splits(str(tmp_path / "b.mr"), "mr", 2) == [
        [Split(str(tmp_path / "b.mr"), 0, None, "mr")]]


@pytest.mark.parametrize("fmt, split_bytes, message", [
    ("csv", 10, "unknown dataset format 'csv'"),
    ("text", 0, "split size and parallelism must be at least 1, not 0 and 1"),
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
    splits = flat(plan_splits(f"memory://{memory_root}/in", "text", 1000))
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
        for parallelism in (1, 3):
            splits = flat(plan_splits(str(tmp_path), "text", split_bytes, parallelism))
            assert [pair for split in splits for pair in split.open_pairs()] == expected


def test_a_split_travels_as_a_message():
    split = Split("memory:///in/a.txt", 10, 20, "text")
    assert Split.from_message(codec.decode(codec.encode(split.to_message()))) == split
    assert split.size == 10 and Split("/in/a.txt", 10, None, "text").size is None
    with pytest.raises(DatasetError, match=r"^not a split: \['memory:///in/a.txt', 10\]"):
        Split.from_message(["memory:///in/a.txt", 10])
