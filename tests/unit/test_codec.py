"""mr.codec: msgpack round trips, and clear refusals instead of silent conversions."""
import datetime

import gevent
import msgpack
import pytest

from mr.codec import OFFLOAD_BYTES, CodecError, decode, encode


@pytest.mark.parametrize("value", [
    None, True, False, 0, -1, 2**63 - 1, -2**63, 2**64 - 1, 1.5, float("inf"), "", "wörd ✓",
    b"", bytes(range(256)), [], {}, [1, "a", None, [2.5, {"k": b"v"}]],
    {"nested": {"list": [1, 2, {"deep": True}]}, "bytes": b"\x00\xff"},
    {1: "int keys survive", 2: ["x"]},
])
def test_round_trip_returns_an_equal_value(value):
    assert decode(encode(value)) == value


def test_bytes_and_str_stay_distinct():
    assert type(decode(encode(b"abc"))) is bytes
    assert type(decode(encode("abc"))) is str


def test_tuples_come_back_as_lists():
    assert decode(encode(("k", (1, 2)))) == ["k", [1, 2]]


def test_encoding_is_msgpack():
    assert encode({"a": 1}) == b"\x81\xa1a\x01"
    assert encode(b"x") == b"\xc4\x01x"  # bin type, not raw str


@pytest.mark.parametrize("value, type_name", [
    ({1, 2}, "set"),
    (object(), "object"),
    ({"key": [1, frozenset([3])]}, "frozenset"),
    (datetime.date(2024, 1, 1), "date"),
])
def test_unencodable_values_are_refused_naming_their_type(value, type_name):
    with pytest.raises(CodecError, match=f"type {type_name}\\b"):
        encode(value)


def test_int_beyond_64_bits_is_refused():
    with pytest.raises(CodecError, match="does not fit in 64 bits"):
        encode([2**64])


def test_self_containing_value_is_refused():
    looped = []
    looped.append(looped)
    with pytest.raises(CodecError):
        encode(looped)


def test_codec_error_is_a_value_error():
    with pytest.raises(ValueError):
        encode({1, 2})


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01", encode(1) + encode(2)])
def test_malformed_data_is_refused(data):
    with pytest.raises(CodecError, match=f"cannot decode {len(data)} bytes"):
        decode(data)


def test_decoding_text_is_refused():
    with pytest.raises(CodecError, match="can only decode bytes, got str"):
        decode("\x81\xa1a\x01")


# Large values: made and read beside the event loop, in pieces, as plain msgpack.

def _dataset() -> list:
    return [[f"key-{number:06d}", [number, None, b"\0" * (number % 5)]]
            for number in range(40_000)]


#: Built by each test that uses them, so that the session does not keep them alive.
LARGE_VALUES = {
    "dataset": _dataset,
    "grouped dataset": lambda: [["hot", list(range(200_000))], ["cold", [1.5]]],
    "map": lambda: {f"key-{number}": [number, "value"] for number in range(40_000)},
    "int keys": lambda: {number: b"x" * 10 for number in range(60_000)},
    "tuples": lambda: tuple((number, str(number)) for number in range(60_000)),
    "empty items": lambda: [[[], {}, "x" * 40] for _ in range(15_000)],
    "task message": lambda: {"task": {"inputs": [["word", list(range(200_000))]],
                                      "session": {}}, "stdout_path": "/tmp/out"},
    "deeper than walked": lambda: [[[[[[[list(range(200_000))]]]]]]],
    "one string": lambda: "x" * (OFFLOAD_BYTES + 1),
}


@pytest.mark.parametrize("build", LARGE_VALUES.values(), ids=LARGE_VALUES)
def test_a_large_value_is_plain_msgpack_and_round_trips(build):
    value = build()
    encoded = encode(value)
    assert len(encoded) > OFFLOAD_BYTES
    assert encoded == msgpack.packb(value, use_bin_type=True)  # any msgpack reader reads it
    assert decode(encoded) == msgpack.unpackb(encoded, raw=False, strict_map_key=False)


def test_empty_collections_round_trip():
    for empty in ([], {}, [[]] * 20, [{}] * 20):
        assert decode(encode(empty)) == empty
    assert encode([]) == b"\x90"


def test_a_huge_dataset_round_trips():
    pairs = [[f"{number:09d}", "v" * 20] for number in range(300_000)]  # about 10 MB
    assert decode(encode(pairs)) == pairs


def _large_with_last_byte(last: bytes) -> bytes:
    return encode([1] * (OFFLOAD_BYTES + 1))[:-1] + last  # one byte per item


@pytest.mark.parametrize("data", [
    encode(_dataset())[:-1],
    encode(_dataset()) + b"\x01",
    _large_with_last_byte(b"\xc1"),  # a type byte that msgpack never uses
    b"\xdd\xff\xff\xff\xff" + b"\x01" * OFFLOAD_BYTES,  # more items announced than given
    b"\x81\x91\x01" + encode("x" * OFFLOAD_BYTES),  # a list as a map key
    b"\xd9\x0a" + b"\xff" * OFFLOAD_BYTES,  # not UTF-8
], ids=["truncated", "extra data", "bad type", "missing items", "list key", "bad utf-8"])
def test_a_large_malformed_encoding_is_refused(data):
    with pytest.raises(CodecError, match=f"cannot decode {len(data)} bytes"):
        decode(data)


@pytest.mark.parametrize("culprit, message", [({1, 2}, "type set"), (2**64, "64 bits")])
def test_an_unencodable_item_deep_in_a_large_value_is_refused(culprit, message):
    with pytest.raises(CodecError, match=message):
        encode(_dataset() + [["last", [culprit]]])


def _greenlet_ran_during(work) -> bool:
    """Whether another greenlet got to run while ``work()`` ran in this one."""
    ran = gevent.spawn(lambda: True)
    try:
        work()
        return ran.ready()
    finally:
        ran.kill()


def test_large_values_are_encoded_and_decoded_beside_the_event_loop():
    value = _dataset()
    encoded = encode(value)
    assert _greenlet_ran_during(lambda: encode(value))
    assert _greenlet_ran_during(lambda: decode(encoded))


def test_small_values_are_encoded_and_decoded_inline():
    value = [["key", "value"]] * 1000
    encoded = encode(value)
    assert len(encoded) < OFFLOAD_BYTES
    assert not _greenlet_ran_during(lambda: encode(value))
    assert not _greenlet_ran_during(lambda: decode(encoded))


@pytest.mark.parametrize("work", [encode, decode])
def test_the_event_loop_keeps_turning_while_a_thread_works_on_a_large_value(work):
    """The thread gives the GIL back between pieces: one msgpack call over the whole value
    would let the loop turn once before and once after, not throughout."""
    pairs = [[f"{number:09d}", number] for number in range(800_000)]
    value = pairs if work is encode else encode(pairs)
    turns = []

    def turn_forever():
        while True:
            turns.append(True)
            gevent.sleep(0.001)

    turner = gevent.spawn(turn_forever)
    try:
        gevent.sleep(0)
        turns.clear()
        work(value)
    finally:
        turner.kill()
    assert len(turns) >= 3
