"""mr.datasets.shuffle: partitions stable across processes, one total order of keys, sorted runs
spilled from a bounded buffer and merged back into the groups of group_by_key."""
import json
import os
import random
import subprocess
import sys
import tracemalloc
import zlib

import fsspec
import pytest

from mr import codec
from mr.datasets.formats import DatasetError, open_writer, read_pairs
from mr.datasets.shuffle import Spiller, merged_groups, partition_of, sort_key
from mr.grouping import group_by_key
from tests.unit.test_datasets_formats import typed

KEYS = ["word", "", "é€𝄞", 0, 1, -7, 2**63 - 1, 1.0, 2.5, -0.5, True, False, b"", b"\x00key",
        None, [1, "a"], [], {"k": [1]}]


@pytest.fixture
def memfs():
    return fsspec.filesystem("memory", global_store=False, skip_instance_cache=True)


def test_partition_is_the_crc32_of_the_encoding():
    assert partition_of("word", 7) == zlib.crc32(codec.encode("word")) % 7
    assert all(0 <= partition_of(key, 3) < 3 for key in KEYS)


def test_partitions_are_the_same_in_another_process_with_another_hash_seed():
    program = ("import json; from mr.datasets.shuffle import partition_of; "
               f"print(json.dumps([partition_of(key, 1000) for key in {KEYS!r}]))")
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    output = subprocess.run([sys.executable, "-c", program], check=True, capture_output=True,
                            env={**os.environ, "PYTHONHASHSEED": seed}).stdout
    assert json.loads(output) == [partition_of(key, 1000) for key in KEYS]
    assert len(set(json.loads(output))) > 10  # keys are spread, not all in one partition


def test_sort_key_orders_mixed_keys_totally():
    keys = ["b", "a", "", 2, 1.5, 1, 1.0, True, False, b"x", b"", None, [1], [1, 2], {"a": 1},
            -1, float("nan"), float("inf"), -0.0, 0, 2**64 - 1]
    expected = ["", "a", "b", -1, 0, -0.0, 1, 1.0, 1.5, 2, 2**64 - 1, float("inf"),
                float("nan"), b"", b"x", False, True, {"a": 1}, [1], [1, 2], None]
    for seed in range(20):
        random.Random(seed).shuffle(keys)
        ordered = sorted(keys, key=sort_key)
        assert repr(ordered) == repr(expected)  # repr tells 1, 1.0 and True apart; NaN too
    for left in keys:
        for right in keys:
            outcomes = [sort_key(left) < sort_key(right), sort_key(left) == sort_key(right),
                        sort_key(left) > sort_key(right)]
            assert outcomes.count(True) == 1


def test_keys_equal_for_sort_key_are_the_keys_grouping_tells_apart():
    assert len({sort_key(key) for key in [1, 1.0, True]}) == 3
    assert sort_key((1, "a")) == sort_key([1, "a"])
    assert sort_key(float("nan")) == sort_key(float("nan"))
    assert sort_key(bytearray(b"k")) == sort_key(memoryview(b"k")) == sort_key(b"k")


def test_keys_that_decode_alike_are_one_key(memfs):
    spiller = Spiller(memfs, "/shuffle", 1, 10**6)
    spiller.add_all([(b"k", 1), (bytearray(b"k"), 2), (("t", 1), 3), (["t", 1], 4), (1, 5)])
    [runs] = spiller.finish()
    assert typed(list(merged_groups(memfs, runs))) == typed([[1, [5]], [b"k", [1, 2]],
                                                             [["t", 1], [3, 4]]])


def random_pairs(count, seed):
    rng = random.Random(seed)
    keys = [*[f"w{index}" for index in range(40)], *range(20), *[float(n) for n in range(10)],
            True, False, b"k1", b"k2", None, [1, "x"], ["a", [2]]]
    return [(rng.choice(keys), rng.randrange(1000)) for _ in range(count)]


def expected_groups(pairs, partition):
    return {typed(key): values for key, values in group_by_key(pairs)
            if partition_of(key, 3) == partition}


def test_spills_of_a_small_buffer_merge_into_the_groups_of_group_by_key(memfs):
    pairs = random_pairs(5000, seed=1)
    spiller = Spiller(memfs, "/shuffle/map-0", 3, buffer_bytes=2000)
    spiller.add_all(pairs)
    runs = spiller.finish()
    assert all(len(partition_runs) > 5 for partition_runs in runs)
    assert runs[1][:2] == ["/shuffle/map-0/run-00000-p00001", "/shuffle/map-0/run-00001-p00001"]
    seen = set()
    for partition, partition_runs in enumerate(runs):
        groups = list(merged_groups(memfs, partition_runs))
        identities = [sort_key(key) for key, _ in groups]
        assert identities == sorted(set(identities))  # in key order, each key once
        assert {typed(key): values for key, values in groups} == expected_groups(pairs, partition)
        assert not seen & {typed(key) for key, _ in groups}
        seen |= {typed(key) for key, _ in groups}
    assert seen == {typed(key) for key, _ in pairs}


def test_every_run_is_sorted_by_key(memfs):
    spiller = Spiller(memfs, "/shuffle", 2, buffer_bytes=500)
    spiller.add_all(random_pairs(1000, seed=2))
    for path in sum(spiller.finish(), []):
        identities = [sort_key(key) for key, _ in read_pairs(memfs, path, "mr")]
        assert identities == sorted(identities)


def test_combine_is_applied_to_each_spill(memfs):
    pairs = random_pairs(3000, seed=3)
    calls = []

    def summed(groups):
        calls.append(len(groups))
        return [[key, [sum(values)]] for key, values in groups]
    spiller = Spiller(memfs, "/shuffle", 3, buffer_bytes=3000, combine=summed)
    spiller.add_all(pairs)
    runs = spiller.finish()
    spills = {path.rsplit("/", 1)[1][:9] for path in sum(runs, [])}
    assert len(calls) == len(spills) > 3
    for partition, partition_runs in enumerate(runs):
        groups = {typed(key): values for key, values in merged_groups(memfs, partition_runs)}
        expected = expected_groups(pairs, partition)
        assert {key: sum(values) for key, values in groups.items()} == \
            {key: sum(values) for key, values in expected.items()}
        assert all(len(groups[key]) <= len(spills) for key in groups)
        assert any(len(groups[key]) > 1 for key in groups)  # a sum per spill, not per key


def test_a_combiner_may_emit_keys_out_of_order_and_twice(memfs):
    pairs = random_pairs(2000, seed=4)

    def scattered(groups):
        return [[key, [value]] for key, values in reversed(groups) for value in values]
    plain, combined = Spiller(memfs, "/plain", 3, 700), Spiller(memfs, "/combined", 3, 700,
                                                                    combine=scattered)
    plain.add_all(pairs)
    combined.add_all(pairs)
    for plain_runs, combined_runs in zip(plain.finish(), combined.finish()):
        assert [typed(group) for group in merged_groups(memfs, combined_runs)] == \
            [typed(group) for group in merged_groups(memfs, plain_runs)]


def test_sort_values_sorts_each_keys_values_in_runs_and_merge(memfs):
    rng = random.Random(5)
    pairs = [(rng.choice(["a", "b", 3]), rng.choice([5, 1.5, "z", "y", b"b", None, 2, True]))
             for _ in range(600)]
    spiller = Spiller(memfs, "/shuffle", 1, buffer_bytes=400, sort_values=True)
    spiller.add_all(pairs)
    [runs] = spiller.finish()
    assert len(runs) > 3
    for path in runs:
        pairs_of_run = [(sort_key(key), sort_key(value))
                        for key, value in read_pairs(memfs, path, "mr")]
        assert pairs_of_run == sorted(pairs_of_run)
    for key, values in merged_groups(memfs, runs, sort_values=True):
        assert typed(values) == typed(sorted((v for k, v in pairs if typed(k) == typed(key)),
                                             key=sort_key))


def test_merge_keeps_a_keys_values_in_run_order(memfs):
    for index, values in enumerate([[1, 2], [3], [4, 5]]):
        with open_writer(memfs, f"/run-{index}", "mr") as run:
            run.write_all([["a", 0], *[["k", value] for value in values]])
    assert list(merged_groups(memfs, ["/run-0", "/run-1", "/run-2"])) == [
        ["a", [0, 0, 0]], ["k", [1, 2, 3, 4, 5]]]
    assert list(merged_groups(memfs, ["/run-2", "/run-0"])) == [["a", [0, 0]], ["k", [4, 5, 1, 2]]]


def test_merging_runs_out_of_order_is_an_error(memfs):
    with open_writer(memfs, "/run", "mr") as run:
        run.write_all([["b", 1], ["a", 2]])
    with pytest.raises(DatasetError,
                       match=r"runs not sorted by key: \('a',\) comes after \('b',\)"):
        list(merged_groups(memfs, ["/run"]))


def test_a_custom_partitioner_places_keys(memfs):
    spiller = Spiller(memfs, "/shuffle", 2, 10**6, partitioner=lambda key, n: int(key >= "m"))
    spiller.add_all([("zebra", 1), ("apple", 2), ("mango", 3)])
    low, high = spiller.finish()
    assert list(merged_groups(memfs, low)) == [["apple", [2]]]
    assert list(merged_groups(memfs, high)) == [["mango", [3]], ["zebra", [1]]]


@pytest.mark.parametrize("partition", [2, -1, "0", None])
def test_a_partitioner_out_of_range_is_an_error(memfs, partition):
    spiller = Spiller(memfs, "/shuffle", 2, 10**6, partitioner=lambda key, n: partition)
    spiller.add("k", 1)
    with pytest.raises(DatasetError, match=rf"the partitioner gave {partition!r} for key 'k': "
                                           "not a partition from 0 to 1"):
        spiller.finish()


def test_nothing_added_spills_nothing(memfs):
    assert Spiller(memfs, "/shuffle", 3, 100).finish() == [[], [], []]
    assert not memfs.exists("/shuffle")
    assert list(merged_groups(memfs, [])) == []


def test_a_value_the_codec_refuses_is_refused_when_added(memfs):
    spiller = Spiller(memfs, "/shuffle", 1, 100)
    with pytest.raises(codec.CodecError, match="type set"):
        spiller.add("k", {1})


@pytest.mark.parametrize("partitions, buffer_bytes", [(0, 100), (1, 0)])
def test_a_shuffle_without_partitions_or_buffer_is_refused(memfs, partitions, buffer_bytes):
    with pytest.raises(DatasetError, match="at least 1 partition and a buffer of at least 1 byte"):
        Spiller(memfs, "/shuffle", partitions, buffer_bytes)


def peak_bytes(work):
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_spilling_memory_is_bounded_by_the_buffer_not_the_input(tmp_path):
    fs = fsspec.filesystem("file")
    spiller = Spiller(fs, str(tmp_path / "shuffle"), 4, buffer_bytes=256 * 1024)
    pairs = ((f"key-{index % 50_000}", index) for index in range(200_000))  # 30 MB as objects
    runs = []

    def spill_all():
        spiller.add_all(pairs)
        runs.extend(spiller.finish())
    assert peak_bytes(spill_all) < 5 * 1024 * 1024
    assert all(len(partition_runs) >= 10 for partition_runs in runs)


def test_merging_many_runs_holds_one_buffer_per_run_and_one_group(tmp_path):
    fs = fsspec.filesystem("file")
    spiller = Spiller(fs, str(tmp_path / "shuffle"), 1, buffer_bytes=256 * 1024)
    spiller.add_all((f"key-{index:07d}", "v" * 16) for index in range(360_000))
    [runs] = spiller.finish()
    data_bytes = sum(fs.size(path) for path in runs)
    assert len(runs) > 40 and data_bytes > 10 * 1024 * 1024
    counted = []
    peak = peak_bytes(lambda: counted.append(sum(1 for _ in merged_groups(fs, runs))))
    assert counted == [360_000]
    assert peak < 4 * 1024 * 1024
