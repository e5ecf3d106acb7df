"""mr.datasets.formats: records read from any byte range exactly once, and pairs written back."""
import gzip
import json
import random

import fsspec
import pytest
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from mr import codec
from mr.datasets.formats import (FORMATS, MAGIC, OUTPUT_FORMATS, WRITE_BUFFER_BYTES,
                                 DatasetError, open_writer, read_pairs)

PATH = "/data/input"


@pytest.fixture
def memfs():
    return fsspec.filesystem("memory", global_store=False, skip_instance_cache=True)


@pytest.fixture
def localfs():
    return fsspec.filesystem("file")


def typed(value):
    """``value`` with the type of every part spelled out (1, 1.0 and True are equal in Python),
    hashable."""
    if isinstance(value, (list, tuple)):
        return ("list", tuple(typed(item) for item in value))
    if isinstance(value, dict):
        return ("dict", tuple((typed(key), typed(item)) for key, item in value.items()))
    return (type(value).__name__, value)


def split_union(fs, path, fmt, split_bytes, size):
    """The pairs of consecutive splits of ``split_bytes`` covering a file of ``size`` bytes."""
    pairs = []
    for start in range(0, max(size, 1), split_bytes):
        end = start + split_bytes
        pairs.extend(read_pairs(fs, path, fmt, start, end if end < size else None))
    return pairs


def expected_text_pairs(path, data):
    """The text format's pairs, computed another way: split at "\\n", a "\\r" before it dropped."""
    lines = data.split(b"\n")
    pairs, offset = [], 0
    for index, line in enumerate(lines):
        ended = index < len(lines) - 1
        if not ended and not line:
            break
        text = line[:-1] if ended and line.endswith(b"\r") else line
        pairs.append([[path, offset], text.decode()])
        offset += len(line) + ended
    return pairs


PIECES = ["a", "bc", "é", "€", "𝄞", " ", "\t", "\r", "\n", "\n", "\r\n", "\n\n"]


def random_text(rng):
    parts = [rng.choice(PIECES) for _ in range(rng.randrange(0, 40))]
    if rng.random() < 0.5:  # a line longer than most split sizes tried
        parts.insert(rng.randrange(len(parts) + 1), "long" * rng.randrange(5, 15))
    return "".join(parts).encode()


@pytest.mark.parametrize("seed", range(30))
def test_text_splits_of_every_size_read_each_line_once_in_order(memfs, seed):
    data = random_text(random.Random(seed))
    memfs.pipe_file(PATH, data)
    whole = list(read_pairs(memfs, PATH, "text"))
    assert whole == expected_text_pairs(PATH, data)
    for split_bytes in range(1, len(data) + 3):
        assert split_union(memfs, PATH, "text", split_bytes, len(data)) == whole


def random_jsonl(rng):
    pairs, lines = [], []
    for _ in range(rng.randrange(0, 12)):
        if rng.random() < 0.2:
            lines.append(rng.choice(["", " ", "\t ", "\r"]))  # blank lines are skipped
            continue
        pair = [rng.choice(["k", "é€𝄞", 7, 2.5, None, ["a", 1]]),
                rng.choice(["v\nwith newline", "x" * rng.randrange(1, 40), {"n": [1, 2]}, True])]
        pairs.append(pair)
        lines.append(json.dumps(pair, ensure_ascii=False))
    ends = [rng.choice(["\n", "\r\n"]) for _ in lines]
    text = "".join(line + end for line, end in zip(lines, ends))
    if lines and rng.random() < 0.5:
        text = text[:-len(ends[-1])]  # no final line end
    return pairs, text.encode()


@pytest.mark.parametrize("seed", range(30))
def test_jsonl_splits_of_every_size_read_each_pair_once_in_order(memfs, seed):
    pairs, data = random_jsonl(random.Random(seed))
    memfs.pipe_file(PATH, data)
    whole = list(read_pairs(memfs, PATH, "jsonl"))
    assert typed(whole) == typed(pairs)
    for split_bytes in range(1, len(data) + 3):
        assert typed(split_union(memfs, PATH, "jsonl", split_bytes, len(data))) == typed(whole)


def test_a_line_starting_exactly_at_a_split_start_belongs_to_that_split(memfs):
    memfs.pipe_file(PATH, b"ab\ncd\nef")
    assert list(read_pairs(memfs, PATH, "text", 0, 3)) == [[[PATH, 0], "ab"]]
    assert list(read_pairs(memfs, PATH, "text", 3, 6)) == [[[PATH, 3], "cd"]]
    assert list(read_pairs(memfs, PATH, "text", 6)) == [[[PATH, 6], "ef"]]


def test_a_line_crossing_the_end_belongs_to_the_split_it_starts_in(memfs):
    memfs.pipe_file(PATH, b"abcdef\ngh\n")
    assert list(read_pairs(memfs, PATH, "text", 0, 1)) == [[[PATH, 0], "abcdef"]]
    assert list(read_pairs(memfs, PATH, "text", 1, 8)) == [[[PATH, 7], "gh"]]
    assert list(read_pairs(memfs, PATH, "text", 8, 10)) == []


def test_a_line_longer_than_the_read_buffer_is_skipped_by_the_next_split(memfs):
    memfs.pipe_file(PATH, b"x" * 5000 + b"\nnext\n")
    assert list(read_pairs(memfs, PATH, "text", 1, None, buffer_bytes=64)) == [
        [[PATH, 5001], "next"]]
    assert list(read_pairs(memfs, PATH, "text", 0, 1, buffer_bytes=64)) == [
        [[PATH, 0], "x" * 5000]]


class BlockFile(AbstractBufferedFile):
    """fsspec's generic file of remote stores (S3, GCS, HTTP): it fetches byte ranges."""

    def _fetch_range(self, start, end):
        self.fs.fetched += end - start
        return self.fs.files[self.path][start:end]


class BlockStore(AbstractFileSystem):
    protocol = "blockstore"

    def __init__(self, files, **options):
        super().__init__(**options)
        self.files, self.fetched = files, 0

    def _open(self, path, mode="rb", block_size=None, **options):
        return BlockFile(self, path, mode, block_size=block_size, size=len(self.files[path]))


def test_a_remote_file_is_fetched_once_and_a_split_only_around_its_range():
    data = b"".join(b"line %d\r\n" % index for index in range(20_000))
    store = BlockStore({PATH: data}, skip_instance_cache=True)
    pairs = list(read_pairs(store, PATH, "text", buffer_bytes=4096))
    assert pairs == expected_text_pairs(PATH, data) and store.fetched == len(data)
    store.fetched = 0
    split = list(read_pairs(store, PATH, "text", 100_000, 110_000, buffer_bytes=4096))
    assert split == [pair for pair in pairs if 100_000 <= pair[0][1] < 110_000]
    assert store.fetched <= 10_000 + 2 * 4096


def test_line_ends_are_dropped_but_a_lone_carriage_return_is_kept(memfs):
    memfs.pipe_file(PATH, b"a\r\nb\rc\n\r\nlast\r")
    assert [text for _, text in read_pairs(memfs, PATH, "text")] == ["a", "b\rc", "", "last\r"]


def test_a_byte_order_mark_at_the_start_is_not_part_of_the_first_record(memfs):
    memfs.pipe_file(PATH, b'\xef\xbb\xbf["k", 1]\n')
    assert list(read_pairs(memfs, PATH, "jsonl")) == [["k", 1]]
    assert list(read_pairs(memfs, PATH, "text")) == [[[PATH, 3], '["k", 1]']]


def test_a_line_that_is_not_utf8_is_refused_naming_the_file_and_offset(memfs):
    memfs.pipe_file(PATH, b"fine\nbad \xff here\n")
    with pytest.raises(DatasetError, match=rf"^{PATH}: the line at byte 5 is not UTF-8: "
                                           r"invalid start byte at byte 9$"):
        list(read_pairs(memfs, PATH, "text"))


@pytest.mark.parametrize("line, reason", [
    (b"not json", "is not JSON"),
    (b'{"k": 1}', r"is not a JSON \[key, value\] array"),
    (b"[1, 2, 3]", r"is not a JSON \[key, value\] array"),
    (b'"k"', r"is not a JSON \[key, value\] array"),
])
def test_a_jsonl_line_that_is_not_a_pair_is_refused_naming_its_offset(memfs, line, reason):
    memfs.pipe_file(PATH, b'["ok", 1]\n\n' + line + b"\n")
    with pytest.raises(DatasetError, match=f"^{PATH}: the line at byte 11 {reason}"):
        list(read_pairs(memfs, PATH, "jsonl"))


def test_a_gzip_file_is_read_whole_with_offsets_in_its_uncompressed_bytes(localfs, tmp_path):
    data = "first\r\nsecond ✓\n\nlast".encode()
    path = str(tmp_path / "input.txt.gz")
    with gzip.open(path, "wb") as file:
        file.write(data)
    assert list(read_pairs(localfs, path, "text")) == expected_text_pairs(path, data)
    jsonl_path = str(tmp_path / "input.jsonl.gz")
    with gzip.open(jsonl_path, "wb") as file:
        file.write(b'["k", [1, 2]]\n["k", null]\n')
    assert list(read_pairs(localfs, jsonl_path, "jsonl")) == [["k", [1, 2]], ["k", None]]


def test_a_gzip_file_is_only_read_whole(memfs):
    memfs.pipe_file("/input.gz", gzip.compress(b"a\nb\n"))
    with pytest.raises(DatasetError, match="read whole, not from byte 1 to None"):
        read_pairs(memfs, "/input.gz", "text", 1)
    with pytest.raises(DatasetError, match="read whole, not from byte 0 to 2"):
        read_pairs(memfs, "/input.gz", "text", 0, 2)


def test_a_truncated_gzip_file_is_refused(memfs):
    memfs.pipe_file("/input.gz", gzip.compress(b"a line\n" * 1000)[:-10])
    with pytest.raises(DatasetError, match="^/input.gz: not a complete gzip file"):
        list(read_pairs(memfs, "/input.gz", "text"))


ENCODABLE_PAIRS = [
    [b"bytes key", "str value"], ["str key", b"bytes value"], [1, 1.0], [1.0, 1], [True, 1],
    [False, 0.0], [None, None], [["a", [1, [2.5, None]]], {"k": [b"x", True]}],
    [("tuple", 1), (2, (3,))], [-2**63, 2**64 - 1], ["", b""], [{1: "int key"}, float("inf")],
    ["é€𝄞", "\n\t"],
]


def test_mr_round_trip_keeps_every_type_and_the_codec_encoding(memfs):
    with open_writer(memfs, PATH, "mr") as writer:
        writer.write_all(ENCODABLE_PAIRS)
    assert writer.count == len(ENCODABLE_PAIRS)
    assert memfs.cat_file(PATH) == MAGIC + b"".join(codec.encode(list(pair))
                                                    for pair in ENCODABLE_PAIRS)
    expected = [codec.decode(codec.encode(list(pair))) for pair in ENCODABLE_PAIRS]
    assert typed(list(read_pairs(memfs, PATH, "mr"))) == typed(expected)
    assert typed(expected[0]) == typed([b"bytes key", "str value"])
    assert typed(expected[8]) == typed([["tuple", 1], [2, [3]]])


def test_mr_files_larger_than_every_buffer_stream_back_whole(localfs, tmp_path):
    path = str(tmp_path / "big.mr")
    pairs = [[f"key{index}", index] for index in range(50_000)]
    pairs.insert(1000, ["large", "v" * (3 * WRITE_BUFFER_BYTES)])
    with open_writer(localfs, path, "mr") as writer:
        writer.write_all(pairs)
    assert list(read_pairs(localfs, path, "mr", buffer_bytes=4096)) == pairs


def test_a_file_without_the_mr_header_is_refused(memfs):
    memfs.pipe_file(PATH, codec.encode(["k", "v"]))
    with pytest.raises(DatasetError, match=f"^{PATH}: not an mr dataset: it does not start with"):
        list(read_pairs(memfs, PATH, "mr"))


@pytest.mark.parametrize("body, message", [
    (codec.encode(["k", 1]) + codec.encode(["k", "value"])[:-2],
     "truncated: the record at byte 10 ends after the file, at 17"),
    (codec.encode(["k", 1]) + codec.encode([["k", [1, {"a": "b"}]], 1])[:-1],
     "truncated: the record at byte 10 ends after the file, at 21"),
    (codec.encode(["k", 1]) + b"\xc1", "the record at byte 10 is corrupt"),
    (codec.encode(["k", 1]) + codec.encode([1, 2, 3]), r"the record at byte 10 is not a \[key"),
    (codec.encode("k"), r"the record at byte 6 is not a \[key"),
])
def test_a_damaged_mr_file_is_refused_naming_where(memfs, body, message):
    memfs.pipe_file(PATH, MAGIC + body)
    with pytest.raises(DatasetError, match=f"^{PATH}: {message}"):
        list(read_pairs(memfs, PATH, "mr"))


def test_mr_files_are_only_read_whole(memfs):
    memfs.pipe_file(PATH, MAGIC)
    assert list(read_pairs(memfs, PATH, "mr")) == []
    with pytest.raises(DatasetError, match="read whole, not from byte 6 to None"):
        read_pairs(memfs, PATH, "mr", 6)


@pytest.mark.parametrize("start, end", [(-1, None), (5, 4)])
def test_a_range_that_is_not_one_is_refused(memfs, start, end):
    with pytest.raises(DatasetError, match=f"not a byte range: {start} to {end}"):
        read_pairs(memfs, PATH, "text", start, end)


def test_unknown_formats_are_refused_naming_the_known_ones(memfs):
    with pytest.raises(DatasetError,
                       match="unknown dataset format 'csv': use one of text, jsonl, mr"):
        read_pairs(memfs, PATH, "csv")
    with pytest.raises(DatasetError, match="unknown dataset format 'text': use one of jsonl, tsv"):
        open_writer(memfs, PATH, "text")
    assert FORMATS == ("text", "jsonl", "mr") and OUTPUT_FORMATS == ("jsonl", "tsv", "mr")


JSON_PAIRS = [["k", 1], [("tuple", 2), {"x": "é\t\n"}], [None, 1.5], [["a"], [True, False]]]


def test_jsonl_writer_writes_one_json_array_per_line(localfs, tmp_path):
    path = str(tmp_path / "out.jsonl")
    with open_writer(localfs, path, "jsonl") as writer:
        writer.write_all(JSON_PAIRS)
    assert writer.count == 4
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == "".join(
        json.dumps(list(pair), ensure_ascii=False) + "\n" for pair in JSON_PAIRS)
    assert list(read_pairs(localfs, path, "jsonl")) == json.loads(json.dumps(JSON_PAIRS))


def test_tsv_writer_writes_two_json_fields_so_tabs_and_newlines_stay_escaped(localfs, tmp_path):
    path = str(tmp_path / "out.tsv")
    with open_writer(localfs, path, "tsv") as writer:
        for key, value in JSON_PAIRS:
            writer.write(key, value)
    lines = (tmp_path / "out.tsv").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == len(JSON_PAIRS) + 1
    assert [[json.loads(field) for field in line.split("\t")] for line in lines[:-1]] == \
        json.loads(json.dumps(JSON_PAIRS))
    assert lines[1] == '["tuple", 2]\t{"x": "é\\t\\n"}'


@pytest.mark.parametrize("fmt", ["jsonl", "tsv"])
@pytest.mark.parametrize("key, value, named", [
    (b"raw", 1, "b'raw'"), ("k", b"raw", "'k'"), ("k", {1, 2}, "'k'"), ("k", "\ud800", "'k'"),
])
def test_json_writers_refuse_what_json_cannot_hold_naming_the_key(memfs, fmt, key, value, named):
    with open_writer(memfs, PATH, fmt) as writer:
        with pytest.raises(DatasetError, match=rf"^{PATH}: cannot write the pair of key {named} "
                                               "as JSON"):
            writer.write(key, value)
        assert writer.count == 0


@pytest.mark.parametrize("value, message", [
    ({1, 2}, "cannot encode a value of type set"), (2**64, "does not fit in 64 bits"),
])
def test_mr_writer_refuses_what_the_codec_refuses(memfs, value, message):
    with open_writer(memfs, PATH, "mr") as writer:
        writer.write("good", 1)
        with pytest.raises(codec.CodecError, match=message):
            writer.write("k", [value])
        writer.write("after", 2)  # a refusal leaves the writer usable
    assert list(read_pairs(memfs, PATH, "mr")) == [["good", 1], ["after", 2]]
