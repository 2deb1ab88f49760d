"""Hypothesis strategies for AMQP 0-9-1: field values, methods, properties, frames and streams.

For property-based tests and fuzzing of code that produces or consumes AMQP: a codec, an engine,
a broker stub, a message router. Install with ``pip install 'amqp-core[testing]'``, which brings
in hypothesis; ``import amqp_core`` itself never needs it. ``docs/fuzzing.md`` has a runnable
example of each strategy.

The strategies come in layers:

* values: :func:`short_strings`, :func:`long_strings`, :func:`table_keys`,
  :func:`scalar_field_values`, :func:`field_values`, :func:`field_tables`,
  :func:`field_arrays`, :func:`argument_values`;
* protocol objects: :func:`method`, :func:`methods`, :func:`basic_properties`;
* frames: :func:`channel_numbers`, :func:`method_frames`, :func:`header_frames`,
  :func:`body_frames`, :func:`heartbeat_frames`, :func:`frames`, :func:`message_bodies`,
  :func:`messages`, :func:`frame_sequences`, :func:`frame_bytes`;
* byte streams, for robustness: :func:`chunkings` and :func:`chunked` (a stream split into
  arbitrary consecutive pieces, as a socket delivers it), :func:`mutations` and :func:`mutated`
  (valid bytes with bits flipped, bytes overwritten, inserted or deleted, or cut short) and
  :func:`framed_garbage` (a well-formed frame envelope around garbage).

Every value strategy can produce values that come back from a trip over the wire exactly
(``wire_exact=True``): what generated methods, properties and frames carry, so that
``decode(encode(x)) == x`` holds for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from itertools import pairwise
from typing import Any, TypeVar

try:
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "amqp_core.testing.strategies needs hypothesis, which is not installed: "
        "install it with the testing extra, pip install 'amqp-core[testing]'"
    ) from exc

from amqp_core import spec
from amqp_core.amqp_object import Method
from amqp_core.data import (
    FieldArray,
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
)
from amqp_core.frame import FRAME_OVERHEAD, Body, Frame, Header, Heartbeat
from amqp_core.frame import Method as MethodFrame

__all__ = (
    "ARGUMENT_KINDS",
    "FIELD_TYPES",
    "argument_values",
    "basic_properties",
    "body_frames",
    "channel_numbers",
    "chunked",
    "chunkings",
    "field_arrays",
    "field_tables",
    "field_values",
    "frame_bytes",
    "frame_sequences",
    "framed_garbage",
    "frames",
    "header_frames",
    "heartbeat_frames",
    "long_strings",
    "message_bodies",
    "messages",
    "method",
    "method_frames",
    "methods",
    "mutated",
    "mutations",
    "scalar_field_values",
    "short_strings",
    "table_keys",
)

_M = TypeVar("_M", bound=Method)

#: The field-table type tags the strategies can generate, as RabbitMQ writes them (see
#: ``docs/field-tables.md``): every tag :mod:`amqp_core.data` encodes. ``A`` and ``F`` are the
#: containers (arrays and tables); the others are scalars.
FIELD_TYPES = "tbBsuIilfdDSxTAFV"

#: The AMQP domain types of method arguments and properties (spec section 4.2.5), as they
#: appear in the ``_ARGUMENTS`` and ``_PROPERTIES`` of the generated spec classes.
ARGUMENT_KINDS = (
    "bit",
    "octet",
    "short",
    "long",
    "longlong",
    "timestamp",
    "shortstr",
    "longstr",
    "table",
)

_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_UTC = timezone.utc
_EPOCH_NAIVE = datetime(1970, 1, 1)
# The last whole second a datetime holds; 'T' values after it decode as Timestamp.
_LAST_DATETIME = datetime(9999, 12, 31, 23, 59, 59)
_LAST_DATETIME_SECONDS = int((_LAST_DATETIME - _EPOCH_NAIVE).total_seconds())
# Octets that never occur in UTF-8, whatever surrounds them.
_NEVER_UTF8 = (0xC0, 0xC1, *range(0xF5, 0x100))
# The bytes a mutation inserts or writes most often: boundaries of lengths and type octets, and
# the frame-end octet, which tends to make a damaged frame look whole.
_INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xCE, 0xFF)

# Class id, weight and body size, in front of the property flags of a content header.
_CONTENT_HEADER_SIZE = 12

_CONTENT_METHODS = tuple(
    cls for cls in sorted(spec.methods.values(), key=lambda cls: cls.INDEX) if cls.HAS_CONTENT
)
_ALL_METHODS = tuple(sorted(spec.methods.values(), key=lambda cls: cls.INDEX))


# --------------------------------------------------------------------------------------------
# Strings
# --------------------------------------------------------------------------------------------


def _cut_utf8(text: str, limit: int) -> str:
    """Return the longest prefix of ``text`` whose UTF-8 form has at most ``limit`` bytes."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    # Dropping the bytes of a character cut in half keeps the prefix valid UTF-8.
    return raw[:limit].decode(errors="ignore")


def short_strings(
    *, min_size: int = 0, max_size: int = 255, alphabet: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[str]:
    """Generate AMQP short strings: text whose UTF-8 form is ``min_size..max_size`` bytes long.

    Short strings (exchange and queue names, routing keys, consumer tags, table keys) are
    limited to 255 bytes, counted in UTF-8 bytes, not characters. Any Unicode character but a
    lone surrogate (which UTF-8 cannot encode) may appear, including NUL.

    Args:
        min_size: the fewest UTF-8 bytes.
        max_size: the most UTF-8 bytes, at most 255.
        alphabet: a strategy for single characters, to narrow the text (for example
            ``st.characters(codec="ascii")``); every character must be encodable as UTF-8.

    Returns:
        A strategy of ``str``.
    """
    if not 0 <= min_size <= max_size <= 255:
        raise InvalidArgument(
            f"short strings hold 0..255 bytes; got min_size={min_size}, max_size={max_size}"
        )
    characters = st.characters(codec="utf-8") if alphabet is None else alphabet
    text = st.text(characters, min_size=min_size, max_size=max_size).map(
        lambda value: _cut_utf8(value, max_size)
    )
    if min_size:
        # Cutting a long multi-byte text can, rarely, take it below min_size.
        text = text.filter(lambda value: len(value.encode()) >= min_size)
    return text


def long_strings(*, min_size: int = 0, max_size: int | None = 1024) -> st.SearchStrategy[bytes]:
    """Generate AMQP long strings as arbitrary ``bytes`` (method arguments of type ``longstr``).

    Long strings are binary (SASL responses, mechanism lists); the spec module decodes them as
    ``bytes``.

    Args:
        min_size: the fewest bytes.
        max_size: the most bytes, or None for no limit.

    Returns:
        A strategy of ``bytes``.
    """
    return st.binary(min_size=min_size, max_size=max_size)


def table_keys(*, max_size: int = 255) -> st.SearchStrategy[str]:
    """Generate field-table keys: short strings of at most ``max_size`` UTF-8 bytes.

    Args:
        max_size: the most UTF-8 bytes of a key, at most 255 (the limit of the wire format).

    Returns:
        A strategy of ``str``.
    """
    return short_strings(max_size=max_size)


# --------------------------------------------------------------------------------------------
# Field values
# --------------------------------------------------------------------------------------------


def _check_types(types: Iterable[str] | None) -> str:
    if types is None:
        return FIELD_TYPES
    chosen = "".join(types)
    unknown = sorted(set(chosen) - set(FIELD_TYPES))
    if unknown:
        raise InvalidArgument(
            f"unknown field type tag(s) {''.join(unknown)!r}; the tags are {FIELD_TYPES!r}"
        )
    return chosen


def _non_utf8_bytes() -> st.SearchStrategy[LongString]:
    """Bytes that are not valid UTF-8: an octet UTF-8 never uses, inserted somewhere."""

    @st.composite
    def build(draw: st.DrawFn) -> LongString:
        raw = draw(st.binary(max_size=64))
        at = draw(st.integers(0, len(raw)))
        bad = draw(st.sampled_from(_NEVER_UTF8))
        return LongString(raw[:at] + bytes((bad,)) + raw[at:])

    return build()


def _wire_decimals() -> st.SearchStrategy[Decimal]:
    """Decimals exactly as the decoder builds them: scale 0..255, signed 32-bit unscaled."""
    return st.builds(
        lambda unscaled, scale: Decimal(f"{unscaled}E-{scale}"),
        st.integers(_I32_MIN, _I32_MAX),
        st.integers(0, 255),
    )


def _any_decimals() -> st.SearchStrategy[Decimal]:
    """Decimals the encoder accepts, in any form: trailing zeros, positive exponents."""
    trailing_zeros = st.builds(
        lambda unscaled, scale, zeros: Decimal(f"{unscaled}{'0' * zeros}E-{scale + zeros}"),
        st.integers(_I32_MIN, _I32_MAX),
        st.integers(0, 255),
        st.integers(0, 12),
    )
    positive_exponent = st.integers(1, 9).flatmap(
        lambda exponent: st.integers(-(2**31 // 10**exponent), (2**31 - 1) // 10**exponent).map(
            lambda unscaled: Decimal(f"{unscaled}E+{exponent}")
        )
    )
    return st.one_of(_wire_decimals(), trailing_zeros, positive_exponent)


def _utc_datetimes() -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes at whole seconds, 1970..9999: what the decoder returns for ``T``."""
    return st.datetimes(
        min_value=_EPOCH_NAIVE, max_value=_LAST_DATETIME, timezones=st.just(_UTC)
    ).map(lambda value: value.replace(microsecond=0))


def _any_datetimes() -> st.SearchStrategy[datetime]:
    """Datetimes the encoder accepts: naive (taken as UTC) or with any UTC offset, any fraction."""
    offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    )
    # A day's margin at each end keeps every offset within 1970..9999 once converted to UTC.
    return st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.one_of(st.none(), st.just(_UTC), offsets),
    )


def _scalar_strategies(types: str, wire_exact: bool) -> list[st.SearchStrategy[Any]]:
    strategies: list[st.SearchStrategy[Any]] = []
    for tag in types:
        if tag == "t":
            strategies.append(st.booleans())
        elif tag == "b":
            strategies.append(st.integers(-(2**7), 2**7 - 1).map(Int8))
        elif tag == "B":
            strategies.append(st.integers(0, 2**8 - 1).map(UInt8))
        elif tag == "s":
            strategies.append(st.integers(-(2**15), 2**15 - 1).map(Int16))
        elif tag == "u":
            strategies.append(st.integers(0, 2**16 - 1).map(UInt16))
        elif tag == "I":
            plain = st.integers(_I32_MIN, _I32_MAX)
            strategies.append(plain if wire_exact else st.one_of(plain, plain.map(Int32)))
        elif tag == "i":
            strategies.append(st.integers(0, 2**32 - 1).map(UInt32))
        elif tag == "l":
            # Decoded, a small 'l' is an Int64 (so that it goes back as 'l'), a large one an int.
            large = st.one_of(
                st.integers(_I64_MIN, _I32_MIN - 1), st.integers(_I32_MAX + 1, _I64_MAX)
            )
            small = st.integers(_I32_MIN, _I32_MAX).map(Int64)
            strategies.append(large)
            strategies.append(small if wire_exact else st.integers(_I64_MIN, _I64_MAX).map(Int64))
        elif tag == "f":
            strategies.append(
                st.floats(width=32, allow_nan=False, allow_infinity=False).map(Float32)
            )
        elif tag == "d":
            strategies.append(st.floats(allow_nan=False, allow_infinity=False))
        elif tag == "D":
            strategies.append(_wire_decimals() if wire_exact else _any_decimals())
        elif tag == "S":
            text = st.text(st.characters(codec="utf-8"))
            strategies.append(text)
            if wire_exact:
                # A long string that is valid UTF-8 decodes as str, so only the others stay bytes.
                strategies.append(_non_utf8_bytes())
            else:
                strategies.append(st.binary().map(LongString))
        elif tag == "x":
            strategies.append(st.binary())
            if not wire_exact:
                strategies.append(st.binary().map(bytearray))
        elif tag == "T":
            beyond_datetime = st.integers(_LAST_DATETIME_SECONDS + 1, 2**64 - 1).map(Timestamp)
            if wire_exact:
                strategies.extend((_utc_datetimes(), beyond_datetime))
            else:
                strategies.extend((_any_datetimes(), st.integers(0, 2**64 - 1).map(Timestamp)))
        elif tag == "V":
            strategies.append(st.none())
    return strategies


def scalar_field_values(
    *, types: Iterable[str] | None = None, wire_exact: bool = False
) -> st.SearchStrategy[FieldValue]:
    """Generate field values that are not tables or arrays, of every scalar field type.

    With ``wire_exact=False`` (the default) every Python form the encoder accepts appears:
    plain values and the wrappers of :mod:`amqp_core.data` (``Int8`` ... ``Int64``,
    ``Float32``, ``Timestamp``, ``LongString``), ``bytearray``, naive datetimes and datetimes
    with any UTC offset and a fraction of a second, Decimals with trailing zeros or a positive
    exponent. Each encodes, and its decoded value encodes to the same bytes again, but the
    decoded value may be of another type (a naive datetime comes back aware, ``Int32(5)`` as
    ``5``).

    With ``wire_exact=True`` only the forms the decoder itself returns appear (a small ``l`` as
    ``Int64``, a non-UTF-8 ``S`` as ``LongString``, ``T`` as an aware UTC datetime at whole
    seconds or, after the year 9999, a ``Timestamp`` ...): decoding their encoding gives back an
    equal value of the same type, which encodes to the same bytes.

    Floats are finite: NaN and infinities cannot be sent (RabbitMQ refuses them).

    Args:
        types: the field type tags to draw from (a string such as ``"tIS"``); all scalar tags of
            :data:`FIELD_TYPES` by default. ``A`` and ``F`` are ignored here.
        wire_exact: only values that survive a trip over the wire exactly, type included.

    Returns:
        A strategy of field values.
    """
    chosen = _check_types(types).replace("A", "").replace("F", "")
    strategies = _scalar_strategies(chosen, wire_exact)
    if not strategies:
        raise InvalidArgument(f"no scalar field type among {chosen!r}")
    return st.one_of(strategies)


def _nested(
    leaves: st.SearchStrategy[Any] | None,
    types: str,
    max_depth: int,
    max_size: int,
    wire_exact: bool,
) -> st.SearchStrategy[Any]:
    """Values with at most ``max_depth`` tables/arrays on any path from the top to a leaf."""
    # With no leaves at all (types="A", say), the innermost containers can only be empty.
    value = st.nothing() if leaves is None else leaves
    keys = table_keys(max_size=32)
    for depth in range(max_depth):
        child = value
        size = 0 if leaves is None and depth == 0 else max_size
        containers: list[st.SearchStrategy[Any]] = []
        if "A" in types:
            containers.append(st.lists(child, max_size=size))
            if not wire_exact:
                containers.append(st.lists(child, max_size=size).map(tuple))
        if "F" in types:
            containers.append(st.dictionaries(keys, child, max_size=size))
        if not containers:
            break
        # Half leaves, half containers, with few children each: the expected size stays small
        # however deep the nesting may go.
        value = (
            st.one_of(containers) if leaves is None else st.one_of(leaves, st.one_of(containers))
        )
    return value


def _leaves(
    types: str, wire_exact: bool, scalars: st.SearchStrategy[FieldValue] | None
) -> st.SearchStrategy[Any] | None:
    if scalars is not None:
        return scalars
    strategies = _scalar_strategies(types, wire_exact)
    return st.one_of(strategies) if strategies else None


def field_values(
    max_depth: int = 2,
    *,
    types: Iterable[str] | None = None,
    wire_exact: bool = False,
    scalars: st.SearchStrategy[FieldValue] | None = None,
    max_size: int = 3,
) -> st.SearchStrategy[FieldValue]:
    """Generate field-table values of every field type, arrays and nested tables included.

    Args:
        max_depth: how many tables and arrays may nest on any path down from the value,
            counting the value itself: 0 gives scalars only, 1 adds flat arrays and tables.
        types: the field type tags to draw from (see :data:`FIELD_TYPES`); leave out ``A`` or
            ``F`` to have no arrays or no nested tables.
        wire_exact: only values that survive a trip over the wire exactly, type included (see
            :func:`scalar_field_values`); arrays are then lists, never tuples.
        scalars: the values at the leaves, instead of those ``types`` and ``wire_exact`` select,
            for example to keep to what another client supports (``wire_exact`` still decides
            whether arrays may be tuples).
        max_size: the most items of each nested array or table.

    Returns:
        A strategy of field values.
    """
    if max_depth < 0:
        raise InvalidArgument(f"max_depth must be at least 0, not {max_depth}")
    chosen = _check_types(types)
    leaves = _leaves(chosen, wire_exact, scalars)
    if leaves is None and (max_depth == 0 or not set(chosen) & set("AF")):
        raise InvalidArgument(f"field types {chosen!r} at max_depth={max_depth} give no value")
    return _nested(leaves, chosen, max_depth, max_size, wire_exact)


def field_tables(
    max_depth: int = 2,
    *,
    types: Iterable[str] | None = None,
    wire_exact: bool = False,
    scalars: st.SearchStrategy[FieldValue] | None = None,
    max_size: int = 6,
) -> st.SearchStrategy[FieldTable]:
    """Generate field tables (message headers, declare arguments, client properties).

    ``max_depth`` counts the table itself: ``field_tables(max_depth=1)`` gives flat tables, and
    the deepest table the codec accepts is ``max_depth=MAX_NESTING_DEPTH + 1``.

    Args:
        max_depth: how many tables and arrays may nest on any path, this table included (>= 1).
        types: the field type tags of the values (see :data:`FIELD_TYPES`).
        wire_exact: only values that survive a trip over the wire exactly (see
            :func:`scalar_field_values`): ``unpack_table(pack_table(t))`` then equals ``t``
            with the same types throughout.
        scalars: the values at the leaves, instead of those ``types`` and ``wire_exact`` select
            (``wire_exact`` still decides whether arrays may be tuples).
        max_size: the most entries of this table (nested ones hold at most 3).

    Returns:
        A strategy of ``dict[str, FieldValue]``.
    """
    if max_depth < 1:
        raise InvalidArgument(f"a table is one level deep already; max_depth={max_depth}")
    chosen = _check_types(types)
    leaves = _leaves(chosen, wire_exact, scalars)
    values = _nested(leaves, chosen, max_depth - 1, 3, wire_exact)
    if leaves is None and max_depth == 1:
        max_size = 0  # nothing to put in a flat table
    return st.dictionaries(table_keys(max_size=64), values, max_size=max_size)


def field_arrays(
    max_depth: int = 2,
    *,
    types: Iterable[str] | None = None,
    wire_exact: bool = False,
    scalars: st.SearchStrategy[FieldValue] | None = None,
    max_size: int = 6,
) -> st.SearchStrategy[FieldArray]:
    """Generate field arrays (the ``A`` field type) as lists.

    Args:
        max_depth: how many tables and arrays may nest on any path, this array included (>= 1).
        types: the field type tags of the items (see :data:`FIELD_TYPES`).
        wire_exact: only items that survive a trip over the wire exactly (see
            :func:`scalar_field_values`).
        scalars: the values at the leaves, instead of those ``types`` and ``wire_exact`` select
            (``wire_exact`` still decides whether arrays may be tuples).
        max_size: the most items of this array (nested ones hold at most 3).

    Returns:
        A strategy of ``list[FieldValue]``.
    """
    if max_depth < 1:
        raise InvalidArgument(f"an array is one level deep already; max_depth={max_depth}")
    chosen = _check_types(types)
    leaves = _leaves(chosen, wire_exact, scalars)
    items = _nested(leaves, chosen, max_depth - 1, 3, wire_exact)
    if leaves is None and max_depth == 1:
        max_size = 0  # nothing to put in a flat array
    return st.lists(items, max_size=max_size)


# --------------------------------------------------------------------------------------------
# Methods and properties
# --------------------------------------------------------------------------------------------


def argument_values(kind: str) -> st.SearchStrategy[Any]:
    """Generate values of one AMQP domain type, the way method arguments and properties hold them.

    ``bit``: bools; ``octet``, ``short``, ``long``, ``longlong``: unsigned integers over their
    whole range (8, 16, 32, 64 bits); ``timestamp``: unsigned 64-bit seconds; ``shortstr``:
    :func:`short_strings`; ``longstr``: :func:`long_strings` (bytes); ``table``:
    :func:`field_tables` with ``wire_exact=True`` (so that a decoded method equals the original).

    Args:
        kind: one of :data:`ARGUMENT_KINDS`.

    Returns:
        A strategy of values of that type.
    """
    if kind == "bit":
        return st.booleans()
    bits = {"octet": 8, "short": 16, "long": 32, "longlong": 64, "timestamp": 64}.get(kind)
    if bits is not None:
        return st.integers(0, 2**bits - 1)
    if kind == "shortstr":
        return short_strings()
    if kind == "longstr":
        return long_strings()
    if kind == "table":
        return field_tables(wire_exact=True)
    raise InvalidArgument(f"unknown AMQP domain type {kind!r}; the types are {ARGUMENT_KINDS}")


def _field_strategies(
    owner: str,
    fields: Sequence[tuple[str, str]],
    kinds: Mapping[str, st.SearchStrategy[Any]] | None,
    overrides: dict[str, st.SearchStrategy[Any]],
) -> dict[str, st.SearchStrategy[Any]]:
    unknown = sorted(set(overrides) - {name for name, _ in fields})
    if unknown:
        raise InvalidArgument(f"{owner} has no field(s) {', '.join(unknown)}")
    bad_kinds = sorted(set(kinds or ()) - set(ARGUMENT_KINDS))
    if bad_kinds:
        raise InvalidArgument(f"unknown AMQP domain type(s) {bad_kinds}; see ARGUMENT_KINDS")
    chosen: dict[str, st.SearchStrategy[Any]] = {}
    for name, kind in fields:
        if name in overrides:
            chosen[name] = overrides[name]
        elif kinds is not None and kind in kinds:
            chosen[name] = kinds[kind]
        else:
            chosen[name] = argument_values(kind)
    return chosen


def method(
    cls: type[_M],
    *,
    kinds: Mapping[str, st.SearchStrategy[Any]] | None = None,
    **arguments: st.SearchStrategy[Any],
) -> st.SearchStrategy[_M]:
    """Generate instances of one method class, each argument drawn from its AMQP type's domain.

    ``method(spec.Basic.Publish)`` gives publishes with any ticket, exchange, routing key and
    flags; ``method(spec.Basic.Publish, exchange=st.just("amq.topic"))`` fixes the exchange.

    Args:
        cls: the method class, for example ``spec.Basic.Publish``.
        kinds: strategies by AMQP domain type (``"shortstr"``, ``"table"`` ...) replacing
            :func:`argument_values` for every argument of that type.
        **arguments: strategies by argument name, replacing the default for that argument.

    Returns:
        A strategy of ``cls`` instances.
    """
    fields = _field_strategies(cls.NAME, cls._ARGUMENTS, kinds, arguments)
    return st.builds(cls, **fields)


def methods(
    classes: Iterable[type[Method]] | None = None,
    *,
    kinds: Mapping[str, st.SearchStrategy[Any]] | None = None,
) -> st.SearchStrategy[Method]:
    """Generate methods of any class (all 66 by default), arguments drawn as in :func:`method`.

    Args:
        classes: the method classes to draw from, for example
            ``[cls for cls in spec.methods.values() if cls.HAS_CONTENT]``.
        kinds: strategies by AMQP domain type, as for :func:`method`.

    Returns:
        A strategy of method instances.
    """
    chosen = _ALL_METHODS if classes is None else tuple(classes)
    if not chosen:
        raise InvalidArgument("methods() needs at least one method class")
    return st.one_of([method(cls, kinds=kinds) for cls in chosen])


# The frame strategies take a ``methods`` argument, which hides the function of that name.
_all_methods = methods


def basic_properties(
    *,
    kinds: Mapping[str, st.SearchStrategy[Any]] | None = None,
    **properties: st.SearchStrategy[Any],
) -> st.SearchStrategy[spec.BasicProperties]:
    """Generate ``spec.BasicProperties``: each of the 14 properties absent (None) or drawn.

    Present values come from their AMQP type's domain (:func:`argument_values`):
    ``delivery_mode`` and ``priority`` are any octet, ``timestamp`` any unsigned 64-bit number,
    ``headers`` a wire-exact field table, the others short strings.

    Args:
        kinds: strategies by AMQP domain type, replacing the default for every property of that
            type (for example ``{"table": field_tables(types="tIS")}``).
        **properties: strategies by property name, used as they are (include ``st.none()`` in
            one to keep the property sometimes absent).

    Returns:
        A strategy of ``spec.BasicProperties``.
    """
    fields = [(name, kind) for name, kind, _ in spec.BasicProperties._PROPERTIES]
    chosen = _field_strategies("BasicProperties", fields, kinds, properties)
    optional = {
        name: strategy if name in properties else st.none() | strategy
        for name, strategy in chosen.items()
    }
    return st.builds(spec.BasicProperties, **optional)


# --------------------------------------------------------------------------------------------
# Frames and messages
# --------------------------------------------------------------------------------------------


def channel_numbers(*, min_value: int = 0, max_value: int = 65535) -> st.SearchStrategy[int]:
    """Generate channel numbers: 16-bit, 0 (the connection) included by default.

    Args:
        min_value: the smallest channel (use 1 for channels a client opens).
        max_value: the largest channel, at most 65535 (or a negotiated ``channel_max``).

    Returns:
        A strategy of ``int``.
    """
    if not 0 <= min_value <= max_value <= 65535:
        raise InvalidArgument(f"channels are 0..65535; got {min_value}..{max_value}")
    return st.integers(min_value, max_value)


def message_bodies(*, max_size: int = 3 * 4096) -> st.SearchStrategy[bytes]:
    """Generate message bodies: usually short arbitrary bytes, sometimes up to ``max_size``.

    Long bodies repeat a short random pattern, so that they are cheap to generate yet still
    cross frame boundaries.

    Args:
        max_size: the longest body.

    Returns:
        A strategy of ``bytes``.
    """

    @st.composite
    def long_body(draw: st.DrawFn) -> bytes:
        size = draw(st.integers(0, max_size))
        pattern = draw(st.binary(min_size=1, max_size=16))
        return (pattern * (size // len(pattern) + 1))[:size]

    return st.one_of(st.binary(max_size=min(max_size, 64)), long_body())


def method_frames(
    *,
    methods: st.SearchStrategy[Method] | None = None,
    channels: st.SearchStrategy[int] | None = None,
) -> st.SearchStrategy[MethodFrame]:
    """Generate method frames (``amqp_core.frame.Method``).

    Args:
        methods: the methods they carry; :func:`methods` by default.
        channels: their channel numbers; :func:`channel_numbers` by default.

    Returns:
        A strategy of method frames.
    """
    return st.builds(
        MethodFrame,
        channels if channels is not None else channel_numbers(),
        methods if methods is not None else _all_methods(),
    )


def header_frames(
    *,
    properties: st.SearchStrategy[spec.BasicProperties] | None = None,
    channels: st.SearchStrategy[int] | None = None,
    body_sizes: st.SearchStrategy[int] | None = None,
) -> st.SearchStrategy[Header]:
    """Generate content header frames (``amqp_core.frame.Header``).

    Args:
        properties: their properties; :func:`basic_properties` by default.
        channels: their channel numbers; :func:`channel_numbers` by default.
        body_sizes: the body sizes they announce; any unsigned 64-bit number by default.

    Returns:
        A strategy of header frames.
    """
    return st.builds(
        Header,
        channels if channels is not None else channel_numbers(),
        body_sizes if body_sizes is not None else st.integers(0, 2**64 - 1),
        properties if properties is not None else basic_properties(),
    )


def body_frames(
    *,
    fragments: st.SearchStrategy[bytes] | None = None,
    channels: st.SearchStrategy[int] | None = None,
) -> st.SearchStrategy[Body]:
    """Generate content body frames (``amqp_core.frame.Body``).

    Args:
        fragments: the body fragments they carry; :func:`message_bodies` by default.
        channels: their channel numbers; :func:`channel_numbers` by default.

    Returns:
        A strategy of body frames.
    """
    return st.builds(
        Body,
        channels if channels is not None else channel_numbers(),
        fragments if fragments is not None else message_bodies(),
    )


def heartbeat_frames() -> st.SearchStrategy[Heartbeat]:
    """Generate heartbeat frames (each a new ``amqp_core.frame.Heartbeat``, on channel 0)."""
    return st.builds(Heartbeat)


def _fits(frame_max: int) -> Callable[[Frame], bool]:
    return lambda frame: not frame_max or len(frame.marshal()) <= frame_max


def frames(
    *, frame_max: int = 0, channels: st.SearchStrategy[int] | None = None
) -> st.SearchStrategy[Frame]:
    """Generate single frames of every type: method, content header, content body, heartbeat.

    Each frame stands alone (a header frame announces any body size, a body frame follows no
    header); :func:`messages` and :func:`frame_sequences` give frames in a protocol order. The
    protocol header that opens a connection is not a frame and never appears.

    Args:
        frame_max: the largest frame in bytes, header and end octet included (the negotiated
            ``frame_max``), or 0 for no limit.
        channels: the channel numbers of method, header and body frames.

    Returns:
        A strategy of frame objects; ``frame.marshal()`` gives their wire bytes.
    """
    if frame_max and frame_max <= FRAME_OVERHEAD:
        raise InvalidArgument(f"frame_max {frame_max} leaves no room for a payload")
    fragments = message_bodies(max_size=frame_max - FRAME_OVERHEAD) if frame_max else None
    return st.one_of(
        method_frames(channels=channels).filter(_fits(frame_max)),
        header_frames(channels=channels).filter(_fits(frame_max)),
        body_frames(fragments=fragments, channels=channels),
        heartbeat_frames(),
    )


def messages(
    *,
    frame_max: int = 4096,
    channels: st.SearchStrategy[int] | None = None,
    methods: st.SearchStrategy[Method] | None = None,
    properties: st.SearchStrategy[spec.BasicProperties] | None = None,
    bodies: st.SearchStrategy[bytes] | None = None,
) -> st.SearchStrategy[list[Frame]]:
    """Generate whole messages as frames: a content method, its header, then its body frames.

    The body is split into body frames of at most ``frame_max`` bytes each (frame header and end
    octet included), the way :func:`amqp_core.frame.encode_message` splits it; an empty body
    has no body frame (spec section 4.2.6). All frames of a message share one channel.

    Args:
        frame_max: the negotiated maximum frame size, or 0 for one body frame whatever the size.
        channels: the channel of each message; 1..65535 by default.
        methods: the content-carrying methods; by default any of ``Basic.Publish``,
            ``Basic.Return``, ``Basic.Deliver`` and ``Basic.GetOk``.
        properties: the message properties; :func:`basic_properties` by default.
        bodies: the message bodies; :func:`message_bodies` by default (up to three frames' worth).

    Returns:
        A strategy of lists of frame objects.
    """
    if frame_max and frame_max <= FRAME_OVERHEAD:
        raise InvalidArgument(f"frame_max {frame_max} leaves no room for a payload")
    chunk = frame_max - FRAME_OVERHEAD if frame_max else 0
    method_strategy = methods if methods is not None else _all_methods(_CONTENT_METHODS)
    props_strategy = properties if properties is not None else basic_properties()
    body_strategy = bodies if bodies is not None else message_bodies(max_size=3 * (chunk or 4096))
    channel_strategy = channels if channels is not None else channel_numbers(min_value=1)
    # A method or header frame that does not fit frame_max cannot be sent at all (spec 4.2.3).
    fitting_methods = method_strategy.filter(lambda m: not chunk or len(m.pack()) <= chunk)
    fitting_props = props_strategy.filter(
        lambda p: not chunk or _CONTENT_HEADER_SIZE + len(p.pack()) <= chunk
    )

    @st.composite
    def build(draw: st.DrawFn) -> list[Frame]:
        channel = draw(channel_strategy)
        body = draw(body_strategy)
        result: list[Frame] = [
            MethodFrame(channel, draw(fitting_methods)),
            Header(channel, len(body), draw(fitting_props)),
        ]
        step = chunk or max(len(body), 1)
        result.extend(Body(channel, body[at : at + step]) for at in range(0, len(body), step))
        return result

    return build()


def frame_sequences(
    *,
    frame_max: int = 4096,
    channels: st.SearchStrategy[int] | None = None,
    max_items: int = 5,
) -> st.SearchStrategy[list[Frame]]:
    """Generate sequences of frames: single frames (see :func:`frames`) and whole messages.

    Args:
        frame_max: the negotiated maximum frame size, or 0 for no limit.
        channels: the channel numbers of the frames and messages.
        max_items: the most frames and messages in one sequence.

    Returns:
        A strategy of lists of frame objects, in the order they travel.
    """
    single = frames(frame_max=frame_max, channels=channels).map(lambda frame: [frame])
    whole = messages(frame_max=frame_max, channels=channels)
    return st.lists(st.one_of(single, whole), max_size=max_items).map(
        lambda groups: [frame for group in groups for frame in group]
    )


def _marshal(frames: Sequence[Frame]) -> bytes:
    return b"".join(frame.marshal() for frame in frames)


def frame_bytes(
    *,
    frame_max: int = 4096,
    channels: st.SearchStrategy[int] | None = None,
    max_items: int = 5,
) -> st.SearchStrategy[bytes]:
    """Generate valid wire bytes: the encoding of a :func:`frame_sequences` sequence.

    Args:
        frame_max: the negotiated maximum frame size, or 0 for no limit.
        channels: the channel numbers of the frames and messages.
        max_items: the most frames and messages in the stream.

    Returns:
        A strategy of ``bytes`` that parse back into frames with no bytes left over.
    """
    return frame_sequences(frame_max=frame_max, channels=channels, max_items=max_items).map(
        _marshal
    )


# --------------------------------------------------------------------------------------------
# Byte streams: chunkings and mutations
# --------------------------------------------------------------------------------------------


def chunkings(data: bytes, *, max_pieces: int | None = None) -> st.SearchStrategy[list[bytes]]:
    """Generate the ways a byte stream can arrive: consecutive pieces that join to ``data``.

    A receiver must produce the same result however its input is split. The pieces may be
    empty (a read that returned nothing new) or single bytes, and a cut may fall anywhere: in
    a frame header, in a length, between a frame and its end octet. Besides random cuts, the
    whole stream in one piece and the stream byte by byte are drawn too.

    Args:
        data: the stream.
        max_pieces: the most pieces of a random cut (byte by byte is drawn regardless).

    Returns:
        A strategy of ``list[bytes]``; ``b"".join(pieces) == data`` always.
    """
    data = bytes(data)
    limit = max_pieces if max_pieces is not None else min(len(data) + 2, 64)
    if limit < 1:
        raise InvalidArgument(f"max_pieces must be at least 1, not {max_pieces}")

    def cut(points: list[int]) -> list[bytes]:
        edges = [0, *sorted(points), len(data)]
        return [data[start:stop] for start, stop in pairwise(edges)]

    # Repeated cut points make empty pieces, adjacent ones single bytes.
    random_cuts = st.lists(st.integers(0, len(data)), max_size=limit - 1).map(cut)
    byte_by_byte = st.just([data[at : at + 1] for at in range(len(data))])
    return st.one_of(random_cuts, byte_by_byte)


def chunked(
    streams: st.SearchStrategy[bytes], *, max_pieces: int | None = None
) -> st.SearchStrategy[list[bytes]]:
    """Generate streams already split into pieces: :func:`chunkings` of each drawn stream.

    ``chunked(frame_bytes())`` gives the arrival of valid frames in arbitrary pieces; the stream
    itself is ``b"".join(pieces)``.

    Args:
        streams: the byte streams to split.
        max_pieces: as for :func:`chunkings`.

    Returns:
        A strategy of ``list[bytes]``.
    """

    @st.composite
    def build(draw: st.DrawFn) -> list[bytes]:
        return draw(chunkings(draw(streams), max_pieces=max_pieces))

    return build()


def _apply_mutation(draw: st.DrawFn, data: bytearray) -> None:
    """Damage ``data`` in place in one of several ways."""
    size = len(data)
    kinds = ["insert"] if not size else ["flip", "set", "insert", "delete", "truncate"]
    kind = draw(st.sampled_from(kinds))
    interesting = st.sampled_from(_INTERESTING_BYTES)
    if kind == "insert":
        at = draw(st.integers(0, size))
        noise = draw(
            st.one_of(
                st.lists(interesting, min_size=1, max_size=4).map(bytes),
                st.binary(min_size=1, max_size=8),
            )
        )
        data[at:at] = noise
        return
    at = draw(st.integers(0, size - 1))
    if kind == "flip":
        data[at] ^= 1 << draw(st.integers(0, 7))
    elif kind == "set":
        data[at] = draw(st.one_of(interesting, st.integers(0, 255)))
    elif kind == "delete":
        del data[at : at + draw(st.integers(1, 8))]
    else:
        del data[at:]


def mutations(data: bytes, *, max_mutations: int = 3) -> st.SearchStrategy[bytes]:
    """Generate damaged copies of ``data``, for robustness fuzzing of a decoder.

    Each copy has 1..``max_mutations`` mutations applied in turn: a bit flipped, a byte
    overwritten (often with 0x00, 0xFF, 0xCE ...), bytes inserted, bytes deleted, or the end cut
    off. A mutation may leave the data valid (a flipped bit in a body, a deleted whole frame) or
    even unchanged, so a decoder under test must accept either outcome: a result, "need more
    bytes", or its one documented error.

    Args:
        data: valid bytes, for example a frame's ``marshal()``.
        max_mutations: the most mutations per copy.

    Returns:
        A strategy of ``bytes``.
    """
    if max_mutations < 1:
        raise InvalidArgument(f"max_mutations must be at least 1, not {max_mutations}")
    original = bytes(data)

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        damaged = bytearray(original)
        for _ in range(draw(st.integers(1, max_mutations))):
            _apply_mutation(draw, damaged)
        return bytes(damaged)

    return build()


def mutated(valid: st.SearchStrategy[bytes], *, max_mutations: int = 3) -> st.SearchStrategy[bytes]:
    """Generate damaged versions of drawn valid bytes: :func:`mutations` of each.

    ``mutated(frame_bytes())`` gives streams of frames with a few bytes wrong.

    Args:
        valid: the strategy of valid bytes.
        max_mutations: the most mutations per value.

    Returns:
        A strategy of ``bytes``.
    """

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        return draw(mutations(draw(valid), max_mutations=max_mutations))

    return build()


def framed_garbage(*, max_payload: int = 64) -> st.SearchStrategy[bytes]:
    """Generate one frame whose envelope is sound and whose payload is garbage.

    The type octet is mostly a real frame type, the size matches the payload, and the frame ends
    with 0xCE, so the bytes get past the frame header into the payload decoders. Method
    payloads usually start with a real class and method id, and header payloads with class 60,
    weight 0 and a body size, so that argument and property decoding is reached too.

    Args:
        max_payload: the most garbage bytes after those ids.

    Returns:
        A strategy of one frame's ``bytes``.
    """
    method_ids = st.sampled_from([cls.INDEX for cls in _ALL_METHODS]).map(
        lambda index: index.to_bytes(4, "big")
    )
    header_start = st.integers(0, 2**64 - 1).map(
        lambda size: (60).to_bytes(2, "big") + b"\x00\x00" + size.to_bytes(8, "big")
    )

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        frame_type = draw(st.one_of(st.sampled_from((1, 2, 3, 8)), st.integers(0, 255)))
        prefix = b""
        if frame_type == spec.FRAME_METHOD:
            prefix = draw(st.one_of(method_ids, st.just(b"")))
        elif frame_type == spec.FRAME_HEADER:
            prefix = draw(st.one_of(header_start, st.just(b"")))
        payload = prefix + draw(st.binary(max_size=max_payload))
        channel = draw(channel_numbers())
        end = draw(st.one_of(st.just(spec.FRAME_END), st.integers(0, 255)))
        return (
            bytes((frame_type,))
            + channel.to_bytes(2, "big")
            + len(payload).to_bytes(4, "big")
            + payload
            + bytes((end,))
        )

    return build()
