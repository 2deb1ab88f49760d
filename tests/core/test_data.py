"""Tests of the field-table codec, amqp_core.data."""

from __future__ import annotations

import json
import math
import struct
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import IntEnum
from typing import Any

import pika.data
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amqp_core.data import (
    MAX_NESTING_DEPTH,
    FieldTable,
    FieldValue,
    Float32,
    Int8,
    Int16,
    Int32,
    Int64,
    LongString,
    Timestamp,
    UInt8,
    UInt16,
    UInt32,
    decode_short_string,
    decode_table,
    decode_value,
    encode_short_string,
    encode_table,
    encode_value,
    pack_array,
    pack_table,
    unpack_array,
    unpack_table,
)
from amqp_core.exceptions import (
    AMQPCodecError,
    AMQPEncodeError,
    InvalidFieldTypeException,
    ShortStringTooLong,
    UnsupportedAMQPFieldException,
)
from amqp_core.testing import strategies as amqp_st
from tests.fresh_interpreter import run_python

UTC = timezone.utc


def entry(key: str, tag: bytes, payload: bytes) -> bytes:
    raw = key.encode()
    return bytes([len(raw)]) + raw + tag + payload


def table(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack(">I", len(body)) + body


def longstr(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def decode(encoded: bytes) -> FieldTable:
    result, offset = unpack_table(encoded, 0, len(encoded))
    assert offset == len(encoded)
    return result


def decode_one(tag: bytes, payload: bytes) -> FieldValue:
    return decode(table(entry("k", tag, payload)))["k"]


def encode_one(value: Any) -> bytes:
    """The bytes of one value, type tag first, as encoded inside a table."""
    encoded = pack_table({"k": value})
    return encoded[4 + 2 :]


# ---------------------------------------------------------------------------------------------
# Decoding every type tag
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "payload", "expected", "expected_type"),
    [
        (b"t", b"\x01", True, bool),
        (b"t", b"\x00", False, bool),
        (b"t", b"\x02", True, bool),  # RabbitMQ: any non-zero octet is true
        (b"b", b"\x80", -128, Int8),
        (b"b", b"\x7f", 127, Int8),
        (b"B", b"\xff", 255, UInt8),
        (b"s", b"\x8a\xd0", -30000, Int16),
        (b"U", b"\x8a\xd0", -30000, Int16),  # the spec's letter, accepted leniently
        (b"u", b"\xff\xff", 65535, UInt16),
        (b"I", b"\xff\xff\x8a\xd0", -30000, int),
        (b"I", b"\x7f\xff\xff\xff", 2**31 - 1, int),
        (b"i", b"\xff\xff\xff\xff", 2**32 - 1, UInt32),
        (b"l", struct.pack(">q", -(2**63)), -(2**63), int),
        (b"l", struct.pack(">q", 2**63 - 1), 2**63 - 1, int),
        (b"l", struct.pack(">q", 5), 5, Int64),
        (b"L", struct.pack(">q", -1), -1, Int64),  # signed, as RabbitMQ reads it
        (b"L", struct.pack(">q", 2**40), 2**40, int),
        (b"f", struct.pack(">f", 1.5), 1.5, Float32),
        (b"d", struct.pack(">d", 1.5), 1.5, float),
        (b"d", struct.pack(">d", 1e300), 1e300, float),
        (b"D", b"\x02" + struct.pack(">i", 12345), Decimal("123.45"), Decimal),
        (b"D", b"\x00" + struct.pack(">i", -7), Decimal(-7), Decimal),
        (b"S", longstr("héllo".encode()), "héllo", str),
        (b"S", longstr(b""), "", str),
        (b"S", longstr(b"\xff\xfe"), b"\xff\xfe", LongString),
        (b"x", longstr(b"\x00\xff"), b"\x00\xff", bytes),
        (b"T", struct.pack(">Q", 0), datetime(1970, 1, 1, tzinfo=UTC), datetime),
        (b"V", b"", None, type(None)),
        (b"A", longstr(b"I\x00\x00\x00\x01Vt\x01"), [1, None, True], list),
        (b"F", table(entry("a", b"I", b"\x00\x00\x00\x02")), {"a": 2}, dict),
    ],
)
def test_decode_every_tag(tag: bytes, payload: bytes, expected: Any, expected_type: type) -> None:
    value = decode_one(tag, payload)
    assert value == expected
    assert type(value) is expected_type


def test_decimal_decodes_exactly() -> None:
    value = decode_one(b"D", b"\x02" + struct.pack(">i", 12345))
    assert str(value) == "123.45"
    value = decode_one(b"D", b"\x0a" + struct.pack(">i", 2**31 - 1))
    assert value == Decimal("0.2147483647")


def test_nan_decodes_leniently() -> None:
    value = decode_one(b"d", struct.pack(">d", math.nan))
    assert isinstance(value, float)
    assert math.isnan(value)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (2**32, datetime(2106, 2, 7, 6, 28, 16, tzinfo=UTC)),  # legal; not milliseconds
        (253402300799, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        (253402300800, Timestamp(253402300800)),
        (2**64 - 1, Timestamp(2**64 - 1)),
    ],
)
def test_decode_timestamps(seconds: int, expected: datetime | Timestamp) -> None:
    encoded = table(entry("k", b"T", struct.pack(">Q", seconds)))
    value = decode(encoded)["k"]
    assert value == expected
    assert type(value) is type(expected)
    assert pack_table({"k": value}) == encoded


# ---------------------------------------------------------------------------------------------
# Encoding: default mapping and wrappers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, b"t\x01"),
        (False, b"t\x00"),
        (0, b"I\x00\x00\x00\x00"),
        (-30000, b"I\xff\xff\x8a\xd0"),  # x-delay: must stay signed
        (2**31 - 1, b"I\x7f\xff\xff\xff"),
        (-(2**31), b"I\x80\x00\x00\x00"),
        (2**31, b"l" + struct.pack(">q", 2**31)),
        (-(2**31) - 1, b"l" + struct.pack(">q", -(2**31) - 1)),
        (-(2**63), b"l\x80" + b"\x00" * 7),
        (2**63 - 1, b"l\x7f" + b"\xff" * 7),
        (1.5, b"d" + struct.pack(">d", 1.5)),
        (0.1, b"d" + struct.pack(">d", 0.1)),
        (-0.0, b"d\x80" + b"\x00" * 7),
        (1e300, b"d" + struct.pack(">d", 1e300)),
        (Decimal("123.45"), b"D\x02" + struct.pack(">i", 12345)),
        (Decimal("-1.50"), b"D\x02" + struct.pack(">i", -150)),
        (Decimal("1E+3"), b"D\x00" + struct.pack(">i", 1000)),
        (Decimal("-0"), b"D\x00\x00\x00\x00\x00"),
        ("", b"S\x00\x00\x00\x00"),
        ("héllo", b"S" + longstr("héllo".encode())),
        (b"\x00\xff", b"x" + longstr(b"\x00\xff")),
        (bytearray(b"ab"), b"x" + longstr(b"ab")),
        (memoryview(b"ab"), b"x" + longstr(b"ab")),
        (LongString(b"\xff"), b"S" + longstr(b"\xff")),
        (datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), b"T" + struct.pack(">Q", 1)),
        (datetime(1970, 1, 1, 0, 0, 1), b"T" + struct.pack(">Q", 1)),  # naive is UTC
        (  # converted to UTC; the fraction of a second is dropped
            datetime(1970, 1, 1, 1, 0, 1, 999999, tzinfo=timezone(timedelta(hours=1))),
            b"T" + struct.pack(">Q", 1),
        ),
        (datetime(2106, 2, 7, 6, 28, 16, tzinfo=UTC), b"T" + struct.pack(">Q", 2**32)),
        (None, b"V"),
        ({}, b"F\x00\x00\x00\x00"),
        ({"a": None}, b"F\x00\x00\x00\x03\x01aV"),
        ([], b"A\x00\x00\x00\x00"),
        ([1, "a"], b"A\x00\x00\x00\x0bI\x00\x00\x00\x01S\x00\x00\x00\x01a"),
        ((True,), b"A\x00\x00\x00\x02t\x01"),
        (Int8(-128), b"b\x80"),
        (Int8(127), b"b\x7f"),
        (UInt8(255), b"B\xff"),
        (Int16(-30000), b"s\x8a\xd0"),
        (UInt16(65535), b"u\xff\xff"),
        (Int32(-1), b"I\xff\xff\xff\xff"),
        (UInt32(2**32 - 1), b"i\xff\xff\xff\xff"),
        (Int64(5), b"l" + struct.pack(">q", 5)),
        (Float32(1.5), b"f" + struct.pack(">f", 1.5)),
        (Timestamp(2**64 - 1), b"T" + b"\xff" * 8),
    ],
)
def test_encode_value(value: Any, expected: bytes) -> None:
    assert encode_one(value) == expected
    pieces: list[bytes] = []
    assert encode_value(pieces, value) == len(expected)
    assert pieces == [expected]


def test_encode_subclasses_by_nearest_base() -> None:
    class Colour(IntEnum):
        RED = 1

    class MyInt8(Int8):
        __slots__ = ()

    assert encode_one(Colour.RED) == b"I\x00\x00\x00\x01"
    assert encode_one(MyInt8(-1)) == b"b\xff"
    assert encode_one(OrderedDict(a=True)) == b"F\x00\x00\x00\x04\x01at\x01"


def test_encode_mapping_that_is_not_a_dict() -> None:
    from types import MappingProxyType

    assert encode_one(MappingProxyType({"a": True})) == b"F\x00\x00\x00\x04\x01at\x01"
    assert pack_table(MappingProxyType({"a": True})) == b"\x00\x00\x00\x04\x01at\x01"


def test_empty_tables() -> None:
    assert pack_table(None) == b"\x00\x00\x00\x00"
    assert pack_table({}) == b"\x00\x00\x00\x00"
    assert pack_array(None) == b"\x00\x00\x00\x00"
    assert unpack_table(b"\x00\x00\x00\x00", 0, 4) == ({}, 4)


def test_table_layout_and_order() -> None:
    encoded = pack_table({"x-delay": -30000, "s": "v", "flag": True})
    assert encoded == table(
        entry("x-delay", b"I", struct.pack(">i", -30000)),
        entry("s", b"S", longstr(b"v")),
        entry("flag", b"t", b"\x01"),
    )


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (2**63, AMQPEncodeError),
        (-(2**63) - 1, AMQPEncodeError),
        (math.nan, AMQPEncodeError),
        (math.inf, AMQPEncodeError),
        (-math.inf, AMQPEncodeError),
        (Float32(math.nan), AMQPEncodeError),
        (Decimal("NaN"), AMQPEncodeError),
        (Decimal("Infinity"), AMQPEncodeError),
        (Decimal("1E-256"), AMQPEncodeError),
        (Decimal(2**31), AMQPEncodeError),
        (Decimal("1.23456789012"), AMQPEncodeError),
        (datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), AMQPEncodeError),
        ("\ud800", AMQPEncodeError),  # a lone surrogate is not UTF-8
        (object(), UnsupportedAMQPFieldException),
        ({1, 2}, UnsupportedAMQPFieldException),
        ({"a": {"b": object()}}, UnsupportedAMQPFieldException),
        ([2**64], AMQPEncodeError),
    ],
)
def test_encode_refuses(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        pack_table({"key": value})
    assert isinstance(info.value, AMQPEncodeError)


def test_encode_error_names_the_key() -> None:
    with pytest.raises(AMQPEncodeError, match="x-big"):
        pack_table({"x-big": 2**64})


def test_unsupported_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        pack_table({"k": object()})  # type: ignore[dict-item]


def test_decimal_trailing_zeros_dropped_only_when_needed() -> None:
    # 2147483647.000 does not fit at scale 3, but does at scale 0.
    assert encode_one(Decimal("2147483647.000")) == b"D\x00" + struct.pack(">i", 2**31 - 1)
    # Only as many zeros as needed go: scale 300 -> 9 (10**9 fits a signed 32-bit int).
    assert encode_one(Decimal("1." + "0" * 300)) == b"D\x09" + struct.pack(">i", 10**9)
    assert encode_one(Decimal("1.50")) == b"D\x02" + struct.pack(">i", 150)


@pytest.mark.parametrize(
    ("cls", "low", "high"),
    [
        (Int8, -128, 127),
        (UInt8, 0, 255),
        (Int16, -(2**15), 2**15 - 1),
        (UInt16, 0, 2**16 - 1),
        (Int32, -(2**31), 2**31 - 1),
        (UInt32, 0, 2**32 - 1),
        (Int64, -(2**63), 2**63 - 1),
        (Timestamp, 0, 2**64 - 1),
    ],
)
def test_int_wrappers_are_range_checked(cls: type[int], low: int, high: int) -> None:
    assert cls(low) == low
    assert cls(high) == high
    with pytest.raises(ValueError, match=cls.__name__):
        cls(low - 1)
    with pytest.raises(ValueError, match=cls.__name__):
        cls(high + 1)


def test_wrappers_behave_as_their_base() -> None:
    assert Int8(5) == 5
    assert hash(Int8(5)) == hash(5)
    assert str(Int8(5)) == "5"
    assert f"{UInt16(7)}" == "7"
    assert repr(Int8(5)) == "Int8(5)"
    assert type(Int8(5) + 1) is int
    assert Float32(0.1) == struct.unpack(">f", struct.pack(">f", 0.1))[0]
    assert repr(Float32(1.5)) == "Float32(1.5)"
    assert str(Float32(1.5)) == "1.5"
    assert LongString(b"a") == b"a"
    with pytest.raises(ValueError, match="Float32"):
        Float32(1e300)


def test_float_precision_is_kept() -> None:
    for value in (0.1, 1e300, -0.0, 1.5, 5e-324, -1.7976931348623157e308):
        decoded = decode(pack_table({"k": value}))["k"]
        assert type(decoded) is float
        assert decoded == value
        assert math.copysign(1.0, decoded) == math.copysign(1.0, value)


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------


def test_key_of_255_bytes_is_accepted() -> None:
    key = "k" * 255
    assert decode(pack_table({key: 1})) == {key: 1}


def test_key_of_256_bytes_is_refused_never_truncated() -> None:
    with pytest.raises(ShortStringTooLong):
        pack_table({"k" * 256: 1})


def test_key_length_is_counted_in_utf8_bytes() -> None:
    fits = "é" * 127 + "k"  # 255 bytes, 128 characters
    assert decode(pack_table({fits: 1})) == {fits: 1}
    with pytest.raises(ShortStringTooLong):
        pack_table({"é" * 128: 1})  # 128 characters, 256 bytes


@pytest.mark.parametrize("key", [1, b"bytes", None, (1, 2)])
def test_non_str_keys_are_refused(key: Any) -> None:
    with pytest.raises(UnsupportedAMQPFieldException):
        pack_table({key: 1})


def test_unhashable_key_in_a_custom_mapping() -> None:
    class Pairs(dict[str, Any]):
        def items(self) -> Any:
            return [(["unhashable"], 1)]

    with pytest.raises(UnsupportedAMQPFieldException):
        pack_table(Pairs(a=1))


def test_not_a_mapping() -> None:
    with pytest.raises(UnsupportedAMQPFieldException):
        pack_table([("a", 1)])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Buffers, offsets and ends
# ---------------------------------------------------------------------------------------------


def test_offset_and_end_in_a_larger_frame() -> None:
    encoded = pack_table({"a": "b", "n": 1, "nested": {"x": [1, 2]}})
    frame = b"\x01\x02\x03" + encoded + b"\xce"
    stop = 3 + len(encoded)
    expected = {"a": "b", "n": 1, "nested": {"x": [1, 2]}}
    for buf in (frame, bytearray(frame), memoryview(frame), memoryview(bytearray(frame))):
        assert unpack_table(buf, 3, stop) == (expected, stop)
        assert unpack_table(buf, 3, len(frame)) == (expected, stop)


def test_memoryview_of_another_format() -> None:
    encoded = pack_table({"a": "bc"})  # 11 bytes
    padded = encoded + b"\x00"
    view = memoryview(padded).cast("H")
    assert unpack_table(view, 0, len(encoded)) == ({"a": "bc"}, len(encoded))


def test_end_before_buffer_end_is_respected() -> None:
    encoded = pack_table({"a": 1})
    with pytest.raises(AMQPCodecError, match="overruns"):
        unpack_table(encoded + b"more", 0, len(encoded) - 1)


def test_arrays() -> None:
    encoded = pack_array([1, "a", [None]])
    assert unpack_array(encoded, 0, len(encoded)) == ([1, "a", [None]], len(encoded))
    view = memoryview(bytearray(b"\x00" + encoded))
    assert unpack_array(view, 1, len(view)) == ([1, "a", [None]], len(view))
    assert unpack_array(b"\x00\x00\x00\x00", 0, 4) == ([], 4)


# ---------------------------------------------------------------------------------------------
# Malformed input
# ---------------------------------------------------------------------------------------------

SAMPLE: dict[str, Any] = {
    "s": "text",
    "i": -30000,
    "l": 2**40,
    "t": True,
    "b": Int8(-1),
    "B": UInt8(1),
    "sh": Int16(-2),
    "u": UInt16(2),
    "ui": UInt32(3),
    "f": Float32(1.5),
    "d": 0.1,
    "D": Decimal("1.23"),
    "T": datetime(2020, 1, 1, tzinfo=UTC),
    "x": b"\x00\x01",
    "V": None,
    "A": [1, "two", [3.0], {"k": "v"}],
    "F": {"inner": {"deeper": "yes"}, "empty": {}},
    "bin": LongString(b"\xff"),
}


def test_sample_round_trips() -> None:
    encoded = pack_table(SAMPLE)
    assert decode(encoded) == SAMPLE
    assert pack_table(decode(encoded)) == encoded


def test_truncated_at_every_byte() -> None:
    encoded = pack_table(SAMPLE)
    for cut in range(len(encoded)):
        for buf in (encoded[:cut], encoded, memoryview(bytearray(encoded))):
            with pytest.raises(AMQPCodecError) as info:
                unpack_table(buf, 0, cut)
            assert info.value.reply_code == 502


def test_truncated_inner_length_at_every_byte() -> None:
    """A table whose length prefix is right but whose contents are cut short."""
    encoded = pack_table(SAMPLE)
    body = encoded[4:]
    for cut in range(len(body)):
        bad = struct.pack(">I", cut) + body[:cut]
        reply_code = None
        try:
            result, offset = unpack_table(bad + b"\xce" * 16, 0, len(bad))
        except AMQPCodecError as exc:
            reply_code = exc.reply_code
        else:
            # Cutting between entries leaves a valid, shorter table.
            assert offset == len(bad)
            assert pack_table(result) == bad
        assert reply_code in (None, 502)


def test_unknown_type_tag() -> None:
    encoded = table(entry("key", b"q", b"\x00\x00"))
    with pytest.raises(InvalidFieldTypeException, match="'q'") as info:
        decode(encoded)
    assert info.value.reply_code == 502
    assert "key" in info.value.reason


def test_unknown_type_tag_in_array() -> None:
    with pytest.raises(InvalidFieldTypeException, match="'Z'"):
        decode(table(entry("a", b"A", longstr(b"Z"))))


def test_table_length_larger_than_the_buffer() -> None:
    encoded = b"\x00\x00\x10\x00" + pack_table({"a": 1})[4:]
    with pytest.raises(AMQPCodecError, match="overruns the frame") as info:
        unpack_table(encoded, 0, len(encoded))
    assert info.value.reply_code == 502
    # A caller-given end past the buffer is caught too.
    with pytest.raises(AMQPCodecError, match="truncated"):
        unpack_table(encoded, 0, 10_000)


def test_length_prefix_truncated() -> None:
    with pytest.raises(AMQPCodecError, match="length truncated"):
        unpack_table(b"\x00\x00", 0, 2)
    with pytest.raises(AMQPCodecError, match="length truncated"):
        unpack_table(b"\x00\x00", 0, 4)
    with pytest.raises(AMQPCodecError, match="negative"):
        unpack_table(b"\x00\x00\x00\x00", -4, 4)


def test_string_length_overruns_the_table() -> None:
    bad = table(entry("k", b"S", b"\x00\x00\x01\x00abc"))
    with pytest.raises(AMQPCodecError, match="long string") as info:
        decode(bad)
    assert info.value.reply_code == 502
    bad = table(entry("k", b"x", b"\xff\xff\xff\xffabc"))
    with pytest.raises(AMQPCodecError, match="byte array"):
        decode(bad)


def test_nested_length_overruns_its_container() -> None:
    inner = b"\x00\x00\x00\x05\x01aV"  # claims 5 bytes, holds 3
    bad = table(entry("k", b"F", inner)) + b"\x00\x00"
    with pytest.raises(AMQPCodecError, match="nested table"):
        unpack_table(bad, 0, len(bad))


def test_key_runs_past_the_table() -> None:
    with pytest.raises(AMQPCodecError, match="key"):
        decode(b"\x00\x00\x00\x02\x05a")


def test_invalid_utf8_key() -> None:
    bad = table(b"\x02\xc3\x28" + b"V")
    with pytest.raises(AMQPCodecError, match="not valid UTF-8") as info:
        decode(bad)
    assert info.value.reply_code == 502


def nested_tables(levels: int) -> bytes:
    """A table holding `levels` tables nested one in another."""
    encoded = b"\x00\x00\x00\x00"
    for _ in range(levels):
        encoded = table(b"\x01kF" + encoded)
    return encoded


def nested_arrays(levels: int) -> bytes:
    encoded = b"\x00\x00\x00\x00"
    for _ in range(levels - 1):
        encoded = longstr(b"A" + encoded)
    return table(b"\x01kA" + encoded)


def test_nesting_depth_limit_on_decode() -> None:
    assert decode(nested_tables(MAX_NESTING_DEPTH))
    with pytest.raises(AMQPCodecError, match="nest deeper") as info:
        decode(nested_tables(MAX_NESTING_DEPTH + 1))
    assert info.value.reply_code == 502
    assert decode(nested_arrays(MAX_NESTING_DEPTH))
    with pytest.raises(AMQPCodecError, match="nest deeper"):
        decode(nested_arrays(MAX_NESTING_DEPTH + 1))
    with pytest.raises(AMQPCodecError, match="nest deeper"):
        decode(nested_tables(5000))


def test_nesting_depth_limit_on_encode() -> None:
    value: dict[str, Any] = {}
    for _ in range(MAX_NESTING_DEPTH):
        value = {"k": value}
    assert pack_table(value) == nested_tables(MAX_NESTING_DEPTH)
    with pytest.raises(AMQPEncodeError, match="nest deeper"):
        pack_table({"k": value})
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(AMQPEncodeError, match="nest deeper"):
        pack_table(loop)
    items: list[Any] = []
    items.append(items)
    with pytest.raises(AMQPEncodeError, match="nest deeper"):
        pack_table({"k": items})


# ---------------------------------------------------------------------------------------------
# pika.data-compatible functions
# ---------------------------------------------------------------------------------------------


def test_pika_style_functions() -> None:
    pieces: list[bytes] = [b"prefix"]
    size = encode_table(pieces, {"a": 1})
    assert pieces[1] == pack_table({"a": 1})
    assert size == len(pieces[1])
    assert encode_table(pieces, None) == 4

    encoded = b"xx" + pack_table({"a": 1})
    assert decode_table(encoded, 2) == ({"a": 1}, len(encoded))
    assert decode_value(b"..I\x00\x00\x00\x07", 2) == (7, 7)
    assert decode_value(memoryview(b"t\x01"), 0) == (True, 2)
    with pytest.raises(AMQPCodecError, match="truncated"):
        decode_value(b"I\x00\x00", 0)
    with pytest.raises(AMQPCodecError, match="past the end"):
        decode_value(b"S\x00\x00\x00\x09abc", 0)
    with pytest.raises(AMQPCodecError, match="truncated"):
        decode_value(b"", 0)

    pieces = []
    assert encode_short_string(pieces, "héllo") == 7
    assert b"".join(pieces) == b"\x06h\xc3\xa9llo"
    assert decode_short_string(b"\x06h\xc3\xa9llo", 0) == ("héllo", 7)
    assert encode_short_string(pieces, b"raw") == 4
    with pytest.raises(ShortStringTooLong):
        encode_short_string([], "x" * 256)
    with pytest.raises(AMQPCodecError, match="past the end"):
        decode_short_string(b"\x05abc", 0)
    with pytest.raises(AMQPCodecError, match="UTF-8"):
        decode_short_string(b"\x01\xff", 0)
    with pytest.raises(AMQPCodecError, match="truncated"):
        decode_short_string(b"", 0)


# ---------------------------------------------------------------------------------------------
# Hypothesis
# ---------------------------------------------------------------------------------------------

default_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).filter(
        lambda d: -(2**31) <= d.scaleb(3) < 2**31
    ),
    st.text(st.characters(exclude_categories=["Cs"])),
    st.binary(),
    st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC)).map(
        lambda d: d.replace(microsecond=0)
    ),
    st.none(),
)


def tables_of(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Tables of these scalars, in lists and tables nested up to 4 levels (the outer included).

    The shapes and keys come from the shipped strategies (amqp_core.testing.strategies); the
    scalars stay local, since each test here is about one particular set of Python types.
    """
    return amqp_st.field_tables(max_depth=4, scalars=scalars, wire_exact=True)


wrapped_scalars = st.one_of(
    default_scalars,
    st.integers(-(2**7), 2**7 - 1).map(Int8),
    st.integers(0, 2**8 - 1).map(UInt8),
    st.integers(-(2**15), 2**15 - 1).map(Int16),
    st.integers(0, 2**16 - 1).map(UInt16),
    st.integers(-(2**31), 2**31 - 1).map(Int32),
    st.integers(0, 2**32 - 1).map(UInt32),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    # Timestamps a datetime can hold decode as datetimes (same bytes, see test_decode_timestamps).
    st.integers(253402300800, 2**64 - 1).map(Timestamp),
    st.floats(width=32, allow_nan=False, allow_infinity=False).map(Float32),
    # A valid UTF-8 'S' decodes as str (same bytes); \xff is never valid UTF-8.
    st.binary().map(lambda raw: LongString(b"\xff" + raw)),
)


@given(tables_of(default_scalars))
def test_decode_of_encode_is_identity(value: dict[str, Any]) -> None:
    assert decode(pack_table(value)) == value


@given(tables_of(wrapped_scalars))
def test_encode_of_decode_is_identity(value: dict[str, Any]) -> None:
    encoded = pack_table(value)
    decoded = decode(encoded)
    assert decoded == value
    assert pack_table(decoded) == encoded


@given(st.binary(max_size=200))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_give_a_table_or_a_codec_error(raw: bytes) -> None:
    for candidate in (raw, struct.pack(">I", len(raw)) + raw):
        reply_code = None
        try:
            result, offset = unpack_table(candidate, 0, len(candidate))
        except AMQPCodecError as exc:
            reply_code = exc.reply_code
        else:
            assert isinstance(result, dict)
            assert offset <= len(candidate)
        assert reply_code in (None, 502)


@given(tables_of(wrapped_scalars), st.binary(min_size=1, max_size=8), st.data())
def test_mutated_tables_give_a_table_or_a_codec_error(
    value: dict[str, Any], noise: bytes, data: st.DataObject
) -> None:
    encoded = bytearray(pack_table(value))
    position = data.draw(st.integers(0, len(encoded)))
    encoded[position : position + len(noise)] = noise
    try:
        result, _ = unpack_table(memoryview(encoded), 0, len(encoded))
    except AMQPCodecError:
        pass
    else:
        assert isinstance(result, dict)


# ---------------------------------------------------------------------------------------------
# Cross-check with pika 1.4.4
# ---------------------------------------------------------------------------------------------

pika_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(st.characters(exclude_categories=["Cs"])),
    st.binary(),
    st.none(),
)


def pika_encode(value: dict[str, Any]) -> bytes:
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, value)
    return b"".join(pieces)


@given(tables_of(pika_scalars))
def test_pika_reads_what_we_write(value: dict[str, Any]) -> None:
    encoded = pack_table(value)
    decoded, offset = pika.data.decode_table(encoded, 0)
    assert offset == len(encoded)
    # pika 1.4.4 returns 64-bit ints as its `long` (an int subclass): equal all the same.
    assert decoded == value


@given(tables_of(pika_scalars))
def test_we_read_what_pika_writes(value: dict[str, Any]) -> None:
    encoded = pika_encode(value)
    assert encoded == pack_table(value)
    assert decode(encoded) == value


def test_pika_known_differences() -> None:
    # pika 1.4.4 cannot encode floats at all, and truncates decoded 'd' and 'f' values to
    # integers (a known bug fixed after 1.4.4); we send and read them exactly.
    with pytest.raises(pika.exceptions.UnsupportedAMQPFieldException):
        pika_encode({"k": 1.5})
    assert pika.data.decode_table(pack_table({"k": 1.5}), 0)[0] == {"k": 1}
    assert decode(pack_table({"k": 1.5})) == {"k": 1.5}
    # pika decodes a non-UTF-8 'S' as bytes too; ours is a LongString, which is bytes.
    encoded = table(entry("k", b"S", longstr(b"\xff")))
    assert pika.data.decode_table(encoded, 0)[0] == decode(encoded) == {"k": b"\xff"}
    # Timestamps: both decode to an aware UTC datetime.
    stamp = datetime(2020, 5, 1, 12, 0, tzinfo=UTC)
    assert pika.data.decode_table(pack_table({"k": stamp}), 0)[0] == {"k": stamp}
    assert decode(pika_encode({"k": stamp})) == {"k": stamp}
    # Decimals: pika normalises before sending, so the wire scale may differ; values are equal.
    assert decode(pika_encode({"k": Decimal("1.50")})) == {"k": Decimal("1.5")}
    assert pika.data.decode_table(pack_table({"k": Decimal("1.50")}), 0)[0] == {"k": Decimal("1.5")}


def test_malformed_arrays() -> None:
    # An item that runs past the array's own length, inside a longer table.
    bad = table(entry("k", b"A", b"\x00\x00\x00\x03I\x00\x00\x00\x01"))
    with pytest.raises(AMQPCodecError, match="past the end of the array"):
        decode(bad)
    # An item cut short by the end of the buffer.
    with pytest.raises(AMQPCodecError, match="truncated"):
        unpack_array(b"\x00\x00\x00\x03I\x00\x00", 0, 7)
    with pytest.raises(AMQPCodecError, match="overruns"):
        unpack_array(b"\x00\x00\x00\x09I\x00\x00", 0, 7)
    with pytest.raises(AMQPCodecError, match="truncated"):
        unpack_array(memoryview(b"\x00\x00\x00\x09I\x00\x00"), 0, 13)
    with pytest.raises(UnsupportedAMQPFieldException):
        pack_array({"not": "a list"})  # type: ignore[arg-type]
    with pytest.raises(AMQPEncodeError, match="surrogates not allowed"):
        pack_array(["\ud800"])


# ---------------------------------------------------------------------------------------------
# Edge cases of the pika-style functions and of the decoder at the end of the buffer
# ---------------------------------------------------------------------------------------------


def test_long_string_repr_says_what_it_is() -> None:
    value = LongString(b"\xff\x00")
    assert repr(value) == "LongString(b'\\xff\\x00')"
    assert str(value) == repr(value)


def test_key_that_is_not_utf8_encodable() -> None:
    with pytest.raises(AMQPEncodeError, match="field table key") as info:
        pack_table({"\ud800": 1})
    assert type(info.value) is AMQPEncodeError
    assert "UTF-8" in str(info.value)


def test_type_error_from_the_callers_mapping_is_not_disguised() -> None:
    # A TypeError raised by the mapping itself (not by a bad key) reaches the caller as it is.
    class Broken(OrderedDict[str, Any]):
        def items(self) -> Any:
            yield "a", 1
            raise TypeError("broken mapping")

    with pytest.raises(TypeError, match="broken mapping") as info:
        pack_table(Broken(a=1))
    assert not isinstance(info.value, UnsupportedAMQPFieldException)


@pytest.mark.parametrize(
    ("body", "tag"),
    [(b"\x01aS\x00", "S"), (b"\x01aI\x00", "I"), (b"\x01al\x00\x00", "l"), (b"\x01at", "t")],
)
def test_value_truncated_at_the_very_end_of_the_buffer(body: bytes, tag: str) -> None:
    # The table's length is right, but its last value needs bytes the buffer does not have.
    wire = struct.pack(">I", len(body)) + body
    for buf in (wire, bytearray(wire), memoryview(wire)):
        with pytest.raises(AMQPCodecError) as info:
            unpack_table(buf, 0, len(wire))
        assert type(info.value) is AMQPCodecError
        assert info.value.reply_code == 502
        assert f"field table truncated in field 'a' (type '{tag}')" in info.value.reason


def test_encode_value_names_a_value_it_cannot_encode() -> None:
    with pytest.raises(AMQPEncodeError, match="cannot encode") as info:
        encode_value([], "\ud800")
    assert "UTF-8" in str(info.value) or "utf-8" in str(info.value)
    pieces: list[bytes] = []
    with pytest.raises(AMQPEncodeError):
        encode_value(pieces, 2**64)
    assert pieces == []


def test_decode_value_refuses_a_negative_offset() -> None:
    with pytest.raises(AMQPCodecError, match="negative") as info:
        decode_value(b"I\x00\x00\x00\x01", -1)
    assert info.value.reply_code == 502


def test_encode_short_string_refuses_what_it_cannot_encode() -> None:
    pieces: list[bytes] = []
    with pytest.raises(AMQPEncodeError, match="UTF-8") as info:
        encode_short_string(pieces, "\ud800")
    assert type(info.value) is AMQPEncodeError
    with pytest.raises(UnsupportedAMQPFieldException, match="str or bytes, not int"):
        encode_short_string(pieces, 5)  # type: ignore[arg-type]
    assert pieces == []
    assert encode_short_string(pieces, b"ab") == 3
    assert pieces == [b"\x02", b"ab"]


def test_decode_short_string_from_a_memoryview_of_another_format() -> None:
    raw = bytearray(b"\x00\x03abc\x00")  # 6 bytes: three unsigned shorts
    view = memoryview(raw).cast("H")
    assert decode_short_string(view, 1) == ("abc", 5)


def test_datetime_and_decimal_are_imported_only_when_a_value_needs_them() -> None:
    # They weigh about 0.45 MiB with calendar and numbers, and most programs never send one.
    script = (
        "import json, sys\n"
        "import amqp_core, amqp_core.connection, amqp_core.engine, amqp_core.parameters\n"
        "from amqp_core import spec\n"
        "from amqp_core.data import pack_table, unpack_table\n"
        "heavy = ('datetime', 'decimal', 'calendar', 'numbers')\n"
        "before = [m for m in heavy if m in sys.modules]\n"
        "plain = pack_table({'s': 'x', 'i': 1, 'f': 1.5, 'l': [b'y', None, True]})\n"
        "assert unpack_table(plain, 0, len(plain))[0]['s'] == 'x'\n"
        "spec.BasicProperties(timestamp=5, headers={'n': 2}).encode()\n"
        "after_plain = [m for m in heavy if m in sys.modules]\n"
        "from datetime import datetime, timezone\n"
        "from decimal import Decimal\n"
        "when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)\n"
        "packed = pack_table({'t': when, 'd': Decimal('1.25')})\n"
        "table = unpack_table(packed, 0, len(packed))[0]\n"
        "assert table == {'t': when, 'd': Decimal('1.25')}, table\n"
        "stamp = spec.BasicProperties(timestamp=when).encode()\n"
        "assert stamp == spec.BasicProperties(timestamp=int(when.timestamp())).encode()\n"
        "print(json.dumps([before, after_plain]))\n"
    )
    assert json.loads(run_python(script)) == [[], []]
