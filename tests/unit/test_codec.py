"""mr.codec: msgpack round trips, and clear refusals instead of silent conversions."""
import datetime

import pytest

from mr.codec import CodecError, decode, encode


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
