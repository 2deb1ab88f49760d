"""The AMQP 0-9-1 field-table codec: header tables, arguments and client properties.

Field tables travel in message headers, in the ``arguments`` of queue/exchange/consumer
declarations and in the connection's client and server properties. This module turns them into
Python dicts and back, following the type tags RabbitMQ itself reads and writes (its
``rabbit_binary_parser`` / ``rabbit_binary_generator``), which differ from the letter of the
AMQP 0-9-1 specification; see ``docs/field-tables.md`` for the full mapping.

Two functions carry the hot path:

* :func:`pack_table` encodes a mapping into its wire form (4-byte length prefix included);
* :func:`unpack_table` decodes the table at an offset of a buffer (``bytes``, ``bytearray`` or a
  ``memoryview`` over the engine's receive buffer) without reading past the end of the frame
  that holds it, and raises :class:`~amqp_core.exceptions.AMQPCodecError` (502 SYNTAX_ERROR) for
  any malformed input.

Python values map to field types by their type (``str`` -> ``S``, ``int`` -> ``I`` or ``l``,
``float`` -> ``d`` ...). The wrapper types :class:`Int8` ... :class:`Int64`, :class:`Float32`,
:class:`Timestamp` and :class:`LongString` select any other field type explicitly; the decoder
returns them wherever a plain Python value would be re-encoded with another tag, so that
``pack_table(unpack_table(b)[0]) == b`` for every table RabbitMQ sends.

The pika-compatible functions :func:`encode_table`, :func:`encode_value`,
:func:`decode_table`, :func:`decode_value`, :func:`encode_short_string` and
:func:`decode_short_string` keep the signatures of ``pika.data``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeAlias

from amqp_core._types import Buffer
from amqp_core.exceptions import (
    AMQPCodecError,
    AMQPEncodeError,
    InvalidFieldTypeException,
    ShortStringTooLong,
    UnsupportedAMQPFieldException,
)

if TYPE_CHECKING:
    # Imported where a value needs them, not here: with ``calendar`` and ``numbers``, which
    # come along, the two modules weigh about 0.45 MiB, and most programs never send or
    # receive a timestamp or a decimal in a field table.
    from datetime import datetime
    from decimal import Decimal

__all__ = (
    "MAX_NESTING_DEPTH",
    "FieldArray",
    "FieldTable",
    "FieldValue",
    "Float32",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "LongString",
    "Timestamp",
    "UInt8",
    "UInt16",
    "UInt32",
    "decode_short_string",
    "decode_table",
    "decode_value",
    "encode_short_string",
    "encode_table",
    "encode_value",
    "pack_array",
    "pack_table",
    "unpack_array",
    "unpack_table",
    "unpack_table_entries",
)

#: How deeply tables and arrays may nest inside one another, counting the outermost table as
#: level 0. Deeper input is refused (AMQPCodecError on decode, AMQPEncodeError on encode) so that
#: a hostile or self-referential table can never exhaust the Python stack.
MAX_NESTING_DEPTH = 100

FieldValue: TypeAlias = (
    "bool | int | float | Decimal | str | bytes | bytearray | memoryview | datetime"
    " | Mapping[str, FieldValue] | list[FieldValue] | tuple[FieldValue, ...] | None"
)
"""A value a field table can hold (the wrapper types are subclasses of int, float and bytes)."""

FieldTable: TypeAlias = dict[str, FieldValue]
"""A decoded field table: what :func:`unpack_table` returns."""

FieldArray: TypeAlias = list[FieldValue]
"""A decoded field array: what :func:`unpack_array` returns."""

_SYNTAX_ERROR = 502

# Signed bounds of the integer field types.
_I32_MIN = -(2**31)
_I32_MAX = 2**31 - 1
_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1

_EMPTY_TABLE = b"\x00\x00\x00\x00"

# Decoders: each returns a 1-tuple, read straight out of the buffer at an offset.
_unpack_u32 = struct.Struct(">I").unpack_from
_unpack_i8 = struct.Struct(">b").unpack_from
_unpack_i16 = struct.Struct(">h").unpack_from
_unpack_u16 = struct.Struct(">H").unpack_from
_unpack_i32 = struct.Struct(">i").unpack_from
_unpack_i64 = struct.Struct(">q").unpack_from
_unpack_u64 = struct.Struct(">Q").unpack_from
_unpack_f32 = struct.Struct(">f").unpack_from
_unpack_f64 = struct.Struct(">d").unpack_from
_unpack_decimal = struct.Struct(">Bi").unpack_from

# Encoders: the type tag (as an int) is packed together with the value in one call.
_pack_u32 = struct.Struct(">I").pack
_pack_u8 = struct.Struct(">B").pack
_pack_tag_u32 = struct.Struct(">BI").pack
_pack_tag_i8 = struct.Struct(">Bb").pack
_pack_tag_u8 = struct.Struct(">BB").pack
_pack_tag_i16 = struct.Struct(">Bh").pack
_pack_tag_u16 = struct.Struct(">BH").pack
_pack_tag_i32 = struct.Struct(">Bi").pack
_pack_tag_i64 = struct.Struct(">Bq").pack
_pack_tag_u64 = struct.Struct(">BQ").pack
_pack_tag_f32 = struct.Struct(">Bf").pack
_pack_tag_f64 = struct.Struct(">Bd").pack
_pack_decimal = struct.Struct(">BBi").pack
_round_f32 = struct.Struct(">f")

_isfinite = math.isfinite
_new_int = int.__new__
_new_float = float.__new__
_new_bytes = bytes.__new__

# The last whole second a datetime can hold (9999-12-31T23:59:59Z), in seconds since the
# epoch; later timestamps decode as Timestamp instead.
_MAX_DATETIME_SECONDS = 253_402_300_799


# --------------------------------------------------------------------------------------------
# Explicit-type wrappers
# --------------------------------------------------------------------------------------------


class _BoundedInt(int):
    """An int that carries its AMQP field type; base of the integer wrappers."""

    __slots__ = ()
    _min = 0
    _max = 0
    _tag = ""

    def __new__(cls, value: int = 0) -> _BoundedInt:
        number = int.__new__(cls, value)
        if not cls._min <= number <= cls._max:
            raise AMQPEncodeError(
                f"{cls.__name__} holds {cls._min}..{cls._max} (field type {cls._tag!r}), "
                f"not {int(number)}"
            )
        return number

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self)})"

    # int's own str() would otherwise fall back to the repr above.
    __str__ = int.__repr__


class Int8(_BoundedInt):
    """An integer sent as field type ``b``: signed 8-bit, -128..127.

    Raises:
        AMQPEncodeError: (a ValueError) when the value is out of range.
    """

    __slots__ = ()
    _min, _max, _tag = -(2**7), 2**7 - 1, "b"


class UInt8(_BoundedInt):
    """An integer sent as field type ``B``: unsigned 8-bit, 0..255.

    Raises:
        AMQPEncodeError: (a ValueError) when the value is out of range.
    """

    __slots__ = ()
    _min, _max, _tag = 0, 2**8 - 1, "B"


class Int16(_BoundedInt):
    """An integer sent as field type ``s``: signed 16-bit, -32768..32767.

    Raises:
        AMQPEncodeError: (a ValueError) when the value is out of range.
    """

    __slots__ = ()
    _min, _max, _tag = -(2**15), 2**15 - 1, "s"


class UInt16(_BoundedInt):
    """An integer sent as field type ``u``: unsigned 16-bit, 0..65535.

    Raises:
        AMQPEncodeError: (a ValueError) when the value is out of range.
    """

    __slots__ = ()
    _min, _max, _tag = 0, 2**16 - 1, "u"


class Int32(_BoundedInt):
    """An integer sent as field type ``I``: signed 32-bit.

    A plain ``int`` in this range is sent as ``I`` anyway; the wrapper exists for symmetry and to
    fail early on values out of range.

    Raises:
        AMQPEncodeError: (a ValueError) when the value is out of range.
    """

    __slots__ = ()
    _min, _max, _tag = _I32_MIN, _I32_MAX, "I"


class UInt32(_BoundedInt):
    """An integer sent as field type ``i``: unsigned 32-bit, 0..4294967295.

    Raises:
        AMQPEncodeError: (a ValueError) when the value is out of range.
    """

    __slots__ = ()
    _min, _max, _tag = 0, 2**32 - 1, "i"


class Int64(_BoundedInt):
    """An integer sent as field type ``l``: signed 64-bit, even when it would fit in 32 bits.

    Raises:
        AMQPEncodeError: (a ValueError) when the value is out of range.
    """

    __slots__ = ()
    _min, _max, _tag = _I64_MIN, _I64_MAX, "l"


class Timestamp(_BoundedInt):
    """Seconds since the Unix epoch, sent as field type ``T`` (unsigned 64-bit).

    ``datetime`` values are sent as ``T`` too; this wrapper carries the timestamps a
    ``datetime`` cannot hold (after the year 9999), and is what the decoder returns for them.

    Raises:
        AMQPEncodeError: (a ValueError) when the value is outside 0..2**64-1.
    """

    __slots__ = ()
    _min, _max, _tag = 0, 2**64 - 1, "T"


class Float32(float):
    """A float sent as field type ``f`` (IEEE 754 single precision).

    The value is rounded to single precision when the wrapper is made, so that it equals what
    the peer receives: ``Float32(0.1) == 0.10000000149011612``. A plain ``float`` is always sent
    as the 64-bit ``d``.

    Raises:
        AMQPEncodeError: (a ValueError) when the value is too large for single precision.
    """

    __slots__ = ()

    def __new__(cls, value: float = 0.0) -> Float32:
        """Round ``value`` to single precision."""
        try:
            (rounded,) = _round_f32.unpack(_round_f32.pack(value))
        except (OverflowError, struct.error) as exc:
            raise AMQPEncodeError(f"Float32 cannot hold {value!r}: {exc}") from None
        return float.__new__(cls, rounded)

    def __repr__(self) -> str:
        return f"Float32({float(self)!r})"

    __str__ = float.__repr__


class LongString(bytes):
    """Bytes sent as a long string, field type ``S``, rather than as a byte array ``x``.

    RabbitMQ's long strings are binary; the decoder returns this type for an ``S`` value that is
    not valid UTF-8, so that it is sent back as ``S``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"LongString({bytes(self)!r})"

    __str__ = __repr__


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------

# Encoded keys (length octet + UTF-8), by key: header names repeat from one message to the
# next, so most keys skip the encode and the length check. Bounded; once full, new keys are
# encoded every time.
_KEY_CACHE: dict[str, bytes] = {}
_KEY_CACHE_SIZE = 1024

_Encoder: TypeAlias = Callable[[object, int], bytes]


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _encode_key(key: object) -> bytes:
    """Return the short-string form of a table key (not cached)."""
    if not isinstance(key, str):
        raise UnsupportedAMQPFieldException(
            f"field table keys must be str, not {type(key).__name__}: {key!r}"
        )
    try:
        raw = key.encode()
    except UnicodeEncodeError as exc:
        raise AMQPEncodeError(
            f"field table key {key!r} cannot be encoded as UTF-8: {exc}"
        ) from None
    # amqp0-9-1 4.2.5.3: a short string holds at most 255 octets. A longer key is refused, never
    # truncated (a truncated key could also cut a UTF-8 sequence in half).
    if len(raw) > 255:
        raise ShortStringTooLong(
            f"field table key {key[:32]!r}... is {len(raw)} bytes long in UTF-8; the limit is 255"
        )
    encoded = _pack_u8(len(raw)) + raw
    if type(key) is str and len(_KEY_CACHE) < _KEY_CACHE_SIZE:
        _KEY_CACHE[key] = encoded
    return encoded


def _encode_str(value: object, depth: int) -> bytes:
    raw: bytes = value.encode()  # type: ignore[attr-defined]
    return _pack_tag_u32(83, len(raw)) + raw


def _encode_int(value: object, depth: int) -> bytes:
    if _I32_MIN <= value <= _I32_MAX:  # type: ignore[operator]
        return _pack_tag_i32(73, value)
    if _I64_MIN <= value <= _I64_MAX:  # type: ignore[operator]
        return _pack_tag_i64(108, value)
    # RabbitMQ has no unsigned 64-bit type (its 'L' is signed too), so nothing larger travels.
    raise AMQPEncodeError(f"integer {value} is outside the signed 64-bit range of field type 'l'")


def _encode_bool(value: object, depth: int) -> bytes:
    return b"t\x01" if value else b"t\x00"


def _encode_float(value: object, depth: int) -> bytes:
    # RabbitMQ cannot parse a NaN or an infinity and closes the whole connection (541).
    if not _isfinite(value):  # type: ignore[arg-type]
        raise AMQPEncodeError(f"{value!r} cannot be sent: RabbitMQ refuses NaN and infinities")
    return _pack_tag_f64(100, value)


def _encode_float32(value: object, depth: int) -> bytes:
    if not _isfinite(value):  # type: ignore[arg-type]
        raise AMQPEncodeError(f"{value!r} cannot be sent: RabbitMQ refuses NaN and infinities")
    return _pack_tag_f32(102, value)


def _encode_decimal(value: object, depth: int) -> bytes:
    from decimal import Decimal

    assert isinstance(value, Decimal)
    if not value.is_finite():
        raise AMQPEncodeError(f"{value!r} cannot be sent: field type 'D' has no NaN or infinity")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    unscaled = 0
    for digit in digits:
        unscaled = unscaled * 10 + digit
    if sign:
        unscaled = -unscaled
    if exponent > 0:
        unscaled *= 10**exponent
        exponent = 0
    scale = -exponent
    # Trailing zeros cost range and scale without changing the value: drop them only when the
    # value would not fit otherwise, so that a decoded Decimal re-encodes to the same bytes.
    while (
        scale > 0 and (scale > 255 or not _I32_MIN <= unscaled <= _I32_MAX) and unscaled % 10 == 0
    ):
        unscaled //= 10
        scale -= 1
    if scale > 255 or not _I32_MIN <= unscaled <= _I32_MAX:
        raise AMQPEncodeError(
            f"{value!r} does not fit field type 'D' (a scale of 0..255 digits and a signed "
            "32-bit unscaled value)"
        )
    return _pack_decimal(68, scale, unscaled)


def _seconds_since_epoch(value: datetime) -> int:
    """Whole seconds from 1970-01-01T00:00:00Z to ``value``, as AMQP timestamps count them.

    A naive datetime is taken as UTC; the part of a second is dropped (rounded down).
    """
    from datetime import datetime, timedelta, timezone

    if value.utcoffset() is None:
        epoch = datetime(1970, 1, 1)
    else:
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (value - epoch) // timedelta(seconds=1)


def _datetime_at(seconds: int) -> datetime:
    """The UTC datetime ``seconds`` after the epoch (at most :data:`_MAX_DATETIME_SECONDS`)."""
    from datetime import datetime, timedelta, timezone

    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds)


def _encode_datetime(value: object, depth: int) -> bytes:
    from datetime import datetime

    assert isinstance(value, datetime)
    # 'T' is whole seconds: the part of a second is dropped.
    seconds = _seconds_since_epoch(value)
    if seconds < 0:
        raise AMQPEncodeError(
            f"{value!r} is before 1970: field type 'T' is unsigned seconds since the epoch"
        )
    return _pack_tag_u64(84, seconds)


def _encode_bytes(value: object, depth: int) -> bytes:
    raw = value.tobytes() if isinstance(value, memoryview) else value
    return _pack_tag_u32(120, len(raw)) + raw  # type: ignore[arg-type, operator]


def _encode_long_string(value: object, depth: int) -> bytes:
    return _pack_tag_u32(83, len(value)) + value  # type: ignore[arg-type, operator]


def _encode_table(value: object, depth: int) -> bytes:
    return b"F" + _pack_table(value, depth + 1)


def _encode_array(value: object, depth: int) -> bytes:
    return b"A" + _pack_array(value, depth + 1)


def _encode_none(value: object, depth: int) -> bytes:
    return b"V"


def _make_int_encoder(pack: Callable[[int, int], bytes], tag: str) -> _Encoder:
    code = ord(tag)

    def encode(value: object, depth: int) -> bytes:
        return pack(code, value)  # type: ignore[arg-type]

    return encode


# By exact type first; subclasses are resolved along their MRO (see _encode_value).
_ENCODERS: dict[type, _Encoder] = {
    str: _encode_str,
    int: _encode_int,
    bool: _encode_bool,
    float: _encode_float,
    bytes: _encode_bytes,
    bytearray: _encode_bytes,
    memoryview: _encode_bytes,
    dict: _encode_table,
    list: _encode_array,
    tuple: _encode_array,
    type(None): _encode_none,
    Int8: _make_int_encoder(_pack_tag_i8, "b"),
    UInt8: _make_int_encoder(_pack_tag_u8, "B"),
    Int16: _make_int_encoder(_pack_tag_i16, "s"),
    UInt16: _make_int_encoder(_pack_tag_u16, "u"),
    Int32: _make_int_encoder(_pack_tag_i32, "I"),
    UInt32: _make_int_encoder(_pack_tag_u32, "i"),
    Int64: _make_int_encoder(_pack_tag_i64, "l"),
    Timestamp: _make_int_encoder(_pack_tag_u64, "T"),
    Float32: _encode_float32,
    LongString: _encode_long_string,
}


def _encode_value(value: object, depth: int) -> bytes:
    """Encode one value with its type tag, choosing the field type by the value's type."""
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        # Subclasses (IntEnum, StrEnum, OrderedDict, a user's Int8 subclass ...) take the
        # encoder of their nearest registered base.
        for base in type(value).__mro__:
            encoder = _ENCODERS.get(base)
            if encoder is not None:
                break
        else:
            encoder = _encode_table if isinstance(value, Mapping) else _stdlib_encoder(value)
            if encoder is None:
                raise UnsupportedAMQPFieldException(
                    f"no AMQP field type for a value of type {type(value).__name__}: {value!r}"
                )
    return encoder(value, depth)


def _stdlib_encoder(value: object) -> _Encoder | None:
    """The encoder of a ``datetime`` or ``Decimal`` (subclasses included), else ``None``.

    Not in ``_ENCODERS``, so that this module need not import ``datetime`` and ``decimal``.
    """
    from datetime import datetime
    from decimal import Decimal

    if isinstance(value, datetime):
        return _encode_datetime
    if isinstance(value, Decimal):
        return _encode_decimal
    return None


def _pack_table(table: object, depth: int) -> bytes:
    """Encode a mapping as a field table, length prefix included."""
    if depth > MAX_NESTING_DEPTH:
        raise AMQPEncodeError(
            f"field tables and arrays nest deeper than {MAX_NESTING_DEPTH} levels "
            "(is a table contained in itself?)"
        )
    try:
        items = table.items()  # type: ignore[attr-defined]
    except AttributeError:
        raise UnsupportedAMQPFieldException(
            f"a field table must be a mapping, not {type(table).__name__}"
        ) from None
    parts: list[bytes] = []
    append = parts.append
    cache = _KEY_CACHE
    key: object = None
    try:
        for key, value in items:
            try:
                encoded_key = cache[key]  # type: ignore[index]
            except KeyError:
                encoded_key = _encode_key(key)
            # The common header values are inlined (a str, a small int, a bool); every piece is
            # appended and joined once (measured faster than concatenating per entry).
            kind = type(value)
            if kind is str:
                raw = value.encode()
                append(encoded_key)
                append(_pack_tag_u32(83, len(raw)))
                append(raw)
            elif kind is int and _I32_MIN <= value <= _I32_MAX:
                append(encoded_key)
                append(_pack_tag_i32(73, value))
            elif kind is bool:
                append(encoded_key)
                append(b"t\x01" if value else b"t\x00")
            else:
                append(encoded_key)
                append(_encode_value(value, depth))
    except AMQPEncodeError as exc:
        # Name the field (the path, for nested tables) in errors about its value.
        reason = str(exc)
        if reason.startswith("field table key"):
            raise
        raise type(exc)(f"field {_short_repr(key)}: {reason}") from None
    except TypeError:
        # An unhashable key fails the cache lookup before it can be named as not a str.
        if not isinstance(key, str):
            raise UnsupportedAMQPFieldException(
                f"field table keys must be str, not {type(key).__name__}: {key!r}"
            ) from None
        raise
    except (UnicodeEncodeError, struct.error, OverflowError) as exc:
        raise AMQPEncodeError(f"cannot encode the value of field {key!r}: {exc}") from None
    body = b"".join(parts)
    return _pack_u32(len(body)) + body


def _pack_array(array: object, depth: int) -> bytes:
    """Encode a list or tuple as a field array, length prefix included."""
    if depth > MAX_NESTING_DEPTH:
        raise AMQPEncodeError(
            f"field tables and arrays nest deeper than {MAX_NESTING_DEPTH} levels "
            "(is an array contained in itself?)"
        )
    if not isinstance(array, (list, tuple)):
        raise UnsupportedAMQPFieldException(
            f"a field array must be a list or tuple, not {type(array).__name__}"
        )
    try:
        body = b"".join([_encode_value(item, depth) for item in array])
    except (UnicodeEncodeError, struct.error, OverflowError) as exc:
        raise AMQPEncodeError(f"cannot encode an item of a field array: {exc}") from None
    return _pack_u32(len(body)) + body


def pack_table(table: Mapping[str, FieldValue] | None) -> bytes:
    """Encode a field table.

    Args:
        table: the table; ``None`` and ``{}`` both give the empty table.

    Returns:
        The 4-byte big-endian length followed by the encoded entries.

    Raises:
        UnsupportedAMQPFieldException: a key is not a ``str``, or a value has a type with no
            field type (also a ``TypeError``).
        ShortStringTooLong: a key is longer than 255 bytes in UTF-8.
        AMQPEncodeError: a value is out of the range of its field type (an int beyond signed
            64-bit, a NaN or infinite float, a Decimal that does not fit ``D``, a datetime
            before 1970), or tables nest deeper than :data:`MAX_NESTING_DEPTH`.
    """
    if not table:
        return _EMPTY_TABLE
    return _pack_table(table, 0)


def pack_array(array: list[FieldValue] | tuple[FieldValue, ...] | None) -> bytes:
    """Encode a field array (the body of an ``A`` value).

    Args:
        array: the items; ``None`` gives the empty array.

    Returns:
        The 4-byte big-endian length followed by the encoded items.

    Raises:
        UnsupportedAMQPFieldException: an item has a type with no field type.
        AMQPEncodeError: an item is out of the range of its field type.
    """
    if not array:
        return _EMPTY_TABLE
    return _pack_array(array, 0)


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def _error(reason: str) -> AMQPCodecError:
    return AMQPCodecError(reason, _SYNTAX_ERROR)


def _decode_entries(data: bytes, offset: int, limit: int, depth: int = 0) -> FieldTable:
    """Decode the entries of a table occupying ``data[offset:limit]``.

    ``data`` may continue past ``limit`` (the rest of the frame): every read is checked against
    ``limit`` before its result is used.
    """
    result: FieldTable = {}
    key = ""
    tag = 0
    try:
        while offset < limit:
            key_start = offset + 1
            offset = key_start + data[offset]
            # A key must be followed by at least its value's type tag.
            if offset >= limit:
                raise _error(
                    f"field table key of {offset - key_start} bytes at offset {key_start - 1} "
                    "runs past the end of the table"
                )
            try:
                key = data[key_start:offset].decode()
            except UnicodeDecodeError:
                raise _error(
                    f"field table key {data[key_start:offset]!r} is not valid UTF-8"
                ) from None
            tag = data[offset]
            offset += 1
            if tag == 83:  # 'S'
                value_start = offset + 4
                offset = value_start + _unpack_u32(data, offset)[0]
                if offset > limit:
                    raise _error(
                        f"long string of field {key!r} is {offset - value_start} bytes long, "
                        f"past the end of the table by {offset - limit} bytes"
                    )
                raw = data[value_start:offset]
                try:
                    result[key] = raw.decode()
                except UnicodeDecodeError:
                    result[key] = _new_bytes(LongString, raw)
            elif tag == 73:  # 'I'
                result[key] = _unpack_i32(data, offset)[0]
                offset += 4
            elif tag == 116:  # 't'
                result[key] = data[offset] != 0
                offset += 1
            elif tag == 108:  # 'l'
                number = _unpack_i64(data, offset)[0]
                # A small 'l' decoded as a plain int would come back as 'I'.
                result[key] = _new_int(Int64, number) if _I32_MIN <= number <= _I32_MAX else number
                offset += 8
            else:
                result[key], offset = _decode_tagged(data, tag, offset, limit, depth, key)
            if offset > limit:
                raise _error(
                    f"value of field {key!r} (type {chr(tag)!r}) runs past the end of the table"
                )
    except (struct.error, IndexError):
        # Only reachable at the very end of the buffer; past-the-table reads within the buffer
        # are caught by the checks above.
        raise _error(
            f"field table truncated in field {key!r} (type {chr(tag)!r})"
            if tag
            else "field table truncated in a key"
        ) from None
    return result


#: Decode the entries of a table whose body (after the 4-byte length) is ``data[offset:limit]``:
#: ``unpack_table_entries(data, offset, limit) -> dict``. ``data`` must be ``bytes`` and
#: ``0 <= offset <= limit <= len(data)``; nothing outside the bounds is used. The fast path of
#: the generated property decoders; raises :class:`~amqp_core.exceptions.AMQPCodecError` as
#: :func:`unpack_table` does.
unpack_table_entries: Callable[..., FieldTable] = _decode_entries


def _decode_items(data: bytes, offset: int, limit: int, depth: int) -> FieldArray:
    """Decode the items of an array occupying ``data[offset:limit]``."""
    result: FieldArray = []
    append = result.append
    tag = 0
    try:
        while offset < limit:
            tag = data[offset]
            value, offset = _decode_tagged(data, tag, offset + 1, limit, depth, None)
            if offset > limit:
                raise _error(f"array item of type {chr(tag)!r} runs past the end of the array")
            append(value)
    except (struct.error, IndexError):
        raise _error(f"field array truncated in an item of type {chr(tag)!r}") from None
    return result


def _decode_tagged(
    data: bytes, tag: int, offset: int, limit: int, depth: int, key: str | None
) -> tuple[FieldValue, int]:
    """Decode the value of type ``tag`` starting at ``offset`` (just after the tag).

    May return an offset past ``limit``; the caller checks.
    """
    if tag == 83:  # 'S' long string: UTF-8 text, or binary when it is not UTF-8
        start = offset + 4
        end = start + _unpack_u32(data, offset)[0]
        if end > limit:
            raise _error(f"long string of {end - start} bytes runs past the end of its container")
        raw = data[start:end]
        try:
            return raw.decode(), end
        except UnicodeDecodeError:
            return _new_bytes(LongString, raw), end
    if tag == 73:  # 'I' signed 32
        return _unpack_i32(data, offset)[0], offset + 4
    if tag == 116:  # 't'
        return data[offset] != 0, offset + 1
    if tag == 108 or tag == 76:  # 'l' signed 64; 'L' is signed too in RabbitMQ
        number = _unpack_i64(data, offset)[0]
        if _I32_MIN <= number <= _I32_MAX:
            return _new_int(Int64, number), offset + 8
        return number, offset + 8
    if tag == 70 or tag == 65:  # 'F' table, 'A' array
        start = offset + 4
        end = start + _unpack_u32(data, offset)[0]
        if end > limit:
            kind = "table" if tag == 70 else "array"
            raise _error(f"nested {kind} of {end - start} bytes runs past the end of its container")
        if depth >= MAX_NESTING_DEPTH:
            raise _error(f"field tables and arrays nest deeper than {MAX_NESTING_DEPTH} levels")
        if tag == 70:
            return _decode_entries(data, start, end, depth + 1), end
        return _decode_items(data, start, end, depth + 1), end
    if tag == 100:  # 'd'
        return _unpack_f64(data, offset)[0], offset + 8
    if tag == 86:  # 'V'
        return None, offset
    if tag == 120:  # 'x' byte array
        start = offset + 4
        end = start + _unpack_u32(data, offset)[0]
        if end > limit:
            raise _error(f"byte array of {end - start} bytes runs past the end of its container")
        return data[start:end], end
    if tag == 84:  # 'T' unsigned 64-bit seconds; never guessed to be milliseconds
        seconds = _unpack_u64(data, offset)[0]
        if seconds <= _MAX_DATETIME_SECONDS:
            return _datetime_at(seconds), offset + 8
        return _new_int(Timestamp, seconds), offset + 8
    if tag == 68:  # 'D' scale octet, then the unscaled value as a signed 32-bit int
        scale, unscaled = _unpack_decimal(data, offset)
        from decimal import Decimal

        # Built from text: exact whatever the current decimal context's precision.
        return Decimal(f"{unscaled}E-{scale}"), offset + 5
    if tag == 98:  # 'b' signed 8
        return _new_int(Int8, _unpack_i8(data, offset)[0]), offset + 1
    if tag == 66:  # 'B' unsigned 8
        return _new_int(UInt8, data[offset]), offset + 1
    if tag == 115 or tag == 85:  # 's' signed 16 (RabbitMQ); 'U' is the spec's name for it
        return _new_int(Int16, _unpack_i16(data, offset)[0]), offset + 2
    if tag == 117:  # 'u' unsigned 16
        return _new_int(UInt16, _unpack_u16(data, offset)[0]), offset + 2
    if tag == 105:  # 'i' unsigned 32
        return _new_int(UInt32, _unpack_u32(data, offset)[0]), offset + 4
    if tag == 102:  # 'f'
        return _new_float(Float32, _unpack_f32(data, offset)[0]), offset + 4
    where = f" of field {key!r}" if key is not None else " in a field array"
    raise InvalidFieldTypeException(f"unknown field type tag {chr(tag)!r}{where}", _SYNTAX_ERROR)


def _as_bytes(buf: Buffer, start: int, stop: int) -> bytes:
    """Return ``buf[start:stop]`` as bytes (a memoryview is read as raw bytes)."""
    if type(buf) is memoryview:
        if buf.itemsize != 1:
            buf = buf.cast("B")
        return buf[start:stop].tobytes()
    return bytes(buf[start:stop])


def _read_length(buf: Buffer, offset: int, end: int, what: str) -> tuple[int, int]:
    """Read the 4-byte length in front of a table or array; return (start, stop) of its body."""
    if offset < 0:
        raise _error(f"{what} offset {offset} is negative")
    start = offset + 4
    if start > end:
        raise _error(
            f"{what} length truncated: 4 bytes needed at offset {offset}, the frame ends at {end}"
        )
    try:
        stop = start + _unpack_u32(buf, offset)[0]
    except struct.error:
        raise _error(f"{what} length truncated: the buffer ends before offset {start}") from None
    if stop > end:
        raise _error(
            f"{what} length {stop - start} overruns the frame by {stop - end} bytes "
            f"(it starts at offset {start}, the frame ends at {end})"
        )
    return start, stop


def unpack_table(buf: Buffer, offset: int, end: int) -> tuple[FieldTable, int]:
    """Decode the field table at ``offset``.

    Args:
        buf: the buffer holding the table, typically a ``memoryview`` over a receive buffer.
        offset: where the table's 4-byte length prefix starts.
        end: the end of the enclosing frame or payload; nothing at or beyond it is used.

    Returns:
        The table as a dict, and the offset just after the table.

    Raises:
        InvalidFieldTypeException: a value has an unknown type tag (502).
        AMQPCodecError: any other malformation (502): a length running past ``end`` or past the
            enclosing table, a key that is not UTF-8, tables nested deeper than
            :data:`MAX_NESTING_DEPTH`.
    """
    # The common case inline; _read_length reports what went wrong otherwise.
    start = offset + 4
    try:
        stop = start + _unpack_u32(buf, offset)[0]
    except struct.error:
        stop = -1
    if offset < 0 or start > end or stop > end or stop < 0:
        start, stop = _read_length(buf, offset, end, "field table")
    if start == stop:
        return {}, stop
    if type(buf) is bytes and stop <= len(buf):
        # Decoded in place: reads that land past the table are detected before being used.
        return _decode_entries(buf, start, stop, 0), stop
    # One copy of the table out of a receive buffer: slicing bytes is cheaper than slicing a
    # memoryview for every key and string.
    if type(buf) is memoryview and buf.itemsize == 1:
        data = buf[start:stop].tobytes()
    else:
        data = _as_bytes(buf, start, stop)
    size = stop - start
    if len(data) != size:
        raise _error(f"field table truncated: the buffer ends before offset {stop}")
    return _decode_entries(data, 0, size, 0), stop


def unpack_array(buf: Buffer, offset: int, end: int) -> tuple[FieldArray, int]:
    """Decode the field array (the body of an ``A`` value) at ``offset``.

    Args:
        buf: the buffer holding the array.
        offset: where the array's 4-byte length prefix starts.
        end: the end of the enclosing frame or payload; nothing at or beyond it is used.

    Returns:
        The items as a list, and the offset just after the array.

    Raises:
        AMQPCodecError: as for :func:`unpack_table`.
    """
    start, stop = _read_length(buf, offset, end, "field array")
    if start == stop:
        return [], stop
    data = buf if type(buf) is bytes else _as_bytes(buf, start, stop)
    base = start if data is buf else 0
    if len(data) - base < stop - start:
        raise _error(f"field array truncated: the buffer ends before offset {stop}")
    return _decode_items(data, base, base + stop - start, 0), stop


# --------------------------------------------------------------------------------------------
# pika.data compatibility
# --------------------------------------------------------------------------------------------


def encode_table(pieces: list[bytes], table: Mapping[str, FieldValue] | None) -> int:
    """Append the encoded table to ``pieces`` (pika's signature).

    Args:
        pieces: the list the encoded table is appended to.
        table: the table; ``None`` gives the empty table.

    Returns:
        The number of bytes appended, length prefix included.

    Raises:
        AMQPEncodeError: as for :func:`pack_table`.
    """
    encoded = pack_table(table)
    pieces.append(encoded)
    return len(encoded)


def encode_value(pieces: list[bytes], value: FieldValue) -> int:
    """Append one value, type tag first, to ``pieces`` (pika's signature).

    Args:
        pieces: the list the encoded value is appended to.
        value: the value.

    Returns:
        The number of bytes appended.

    Raises:
        AMQPEncodeError: as for :func:`pack_table`.
    """
    try:
        encoded = _encode_value(value, 0)
    except (UnicodeEncodeError, struct.error, OverflowError) as exc:
        raise AMQPEncodeError(f"cannot encode {value!r}: {exc}") from None
    pieces.append(encoded)
    return len(encoded)


def decode_table(encoded: Buffer, offset: int) -> tuple[FieldTable, int]:
    """Decode the table at ``offset``, which may run to the end of ``encoded`` (pika's signature).

    Args:
        encoded: the buffer.
        offset: where the table's length prefix starts.

    Returns:
        The table, and the offset just after it.

    Raises:
        AMQPCodecError: as for :func:`unpack_table`.
    """
    return unpack_table(encoded, offset, len(encoded))


def decode_value(encoded: Buffer, offset: int) -> tuple[FieldValue, int]:
    """Decode one value, type tag first, at ``offset`` (pika's signature).

    Args:
        encoded: the buffer.
        offset: where the value's type tag is.

    Returns:
        The value, and the offset just after it.

    Raises:
        AMQPCodecError: as for :func:`unpack_table`.
    """
    if offset < 0:
        raise _error(f"field value offset {offset} is negative")
    data = encoded if type(encoded) is bytes else _as_bytes(encoded, 0, len(encoded))
    limit = len(data)
    if offset >= limit:
        raise _error(f"field value truncated: no type tag at offset {offset}")
    tag = data[offset]
    try:
        value, end = _decode_tagged(data, tag, offset + 1, limit, 0, None)
    except (struct.error, IndexError):
        end = limit + 1
    if end > limit:
        raise _error(f"field value of type {chr(tag)!r} is truncated")
    return value, end


def encode_short_string(pieces: list[bytes], value: str | bytes) -> int:
    """Append a short string (length octet + UTF-8) to ``pieces`` (pika's signature).

    Args:
        pieces: the list the encoded string is appended to.
        value: the string; ``bytes`` are sent as they are.

    Returns:
        The number of bytes appended.

    Raises:
        ShortStringTooLong: the string is longer than 255 bytes in UTF-8 (never truncated).
        AMQPEncodeError: the string cannot be encoded as UTF-8.
    """
    if isinstance(value, str):
        try:
            raw = value.encode()
        except UnicodeEncodeError as exc:
            raise AMQPEncodeError(f"{value!r} cannot be encoded as UTF-8: {exc}") from None
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        raise UnsupportedAMQPFieldException(
            f"a short string must be str or bytes, not {type(value).__name__}"
        )
    if len(raw) > 255:
        raise ShortStringTooLong(f"short string is {len(raw)} bytes long; the limit is 255")
    pieces.append(_pack_u8(len(raw)))
    pieces.append(raw)
    return 1 + len(raw)


def decode_short_string(encoded: Buffer, offset: int) -> tuple[str, int]:
    """Decode the short string at ``offset`` (pika's signature).

    Args:
        encoded: the buffer.
        offset: where the length octet is.

    Returns:
        The string, and the offset just after it.

    Raises:
        AMQPCodecError: the string runs past the end of ``encoded`` or is not UTF-8 (502).
    """
    if type(encoded) is memoryview and encoded.format != "B":
        encoded = encoded.cast("B")
    if not 0 <= offset < len(encoded):
        raise _error(f"short string truncated: no length octet at offset {offset}")
    start = offset + 1
    stop = start + encoded[offset]
    if stop > len(encoded):
        raise _error(
            f"short string of {stop - start} bytes runs past the end of the buffer "
            f"by {stop - len(encoded)} bytes"
        )
    raw = _as_bytes(encoded, start, stop)
    try:
        return raw.decode(), stop
    except UnicodeDecodeError:
        raise _error(f"short string {raw!r} is not valid UTF-8") from None
