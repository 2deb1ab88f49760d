"""Base classes of the generated spec module (:mod:`amqp_core.spec`), under pika's names.

:class:`Method` and :class:`Properties` carry two codecs:

* the specialised one, generated per class into :mod:`amqp_core.spec` (``pack``/``unpack``
  overridden with precompiled structs and no per-field interpretation), which assumes
  well-typed values and well-formed input;
* the generic, checking one defined here, which walks a class's field list at run time. The
  specialised code falls back to it whenever its fast path fails, so it is the one place that
  accepts pika's lenient inputs (``bytes`` for a short string, an ``Enum`` delivery mode, a
  ``datetime`` timestamp) and that turns bad values or malformed input into typed errors naming
  the method and the field. Tests also use it as the reference the generated code must agree
  with.

Field kinds are the AMQP 0-9-1 domain types (spec section 4.2.5): ``bit``, ``octet``,
``short``, ``long``, ``longlong``, ``timestamp``, ``shortstr``, ``longstr`` and ``table``.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeAlias, TypeGuard, TypeVar

from amqp_core._types import Buffer
from amqp_core.data import (
    _seconds_since_epoch,
    pack_table,
    unpack_table,
    unpack_table_entries,
)
from amqp_core.exceptions import AMQPCodecError, AMQPEncodeError, ShortStringTooLong

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ("AMQPObject", "Class", "Method", "Properties")

_SYNTAX_ERROR = 502

_M = TypeVar("_M", bound="Method")
_P = TypeVar("_P", bound="Properties")

#: Integer kinds: struct format and the largest value (all are unsigned, spec section 4.2.5.1).
_INTEGERS: dict[str, struct.Struct] = {
    "octet": struct.Struct(">B"),
    "short": struct.Struct(">H"),
    "long": struct.Struct(">I"),
    "longlong": struct.Struct(">Q"),
    "timestamp": struct.Struct(">Q"),
}
_LENGTH_SHORT = struct.Struct(">B")
_LENGTH_LONG = struct.Struct(">I")
_FLAGS = struct.Struct(">H")
_METHOD_ID = struct.Struct(">I")

#: A property-list decoder specialised for one flag word (see :meth:`Properties._decoder`):
#: ``decoder(cls, data, offset, end)`` with ``data`` a ``bytes`` and ``offset`` just after the
#: flag word. It returns the instance, or raises any exception on malformed input (the caller
#: then hands over to the checking codec, which names the fault).
PropertiesDecoder: TypeAlias = Callable[[type[Any], bytes, int, int], Any]

#: How many flag combinations per property class get a decoder of their own. Applications use
#: a handful; past the bound (a peer sending every combination) the checking codec decodes.
_DECODER_CACHE_SIZE = 512

#: Struct format of each fixed-size kind, for the decoders built by ``Properties._decoder``.
_FIXED_FORMATS = {"octet": "B", "short": "H", "long": "I", "longlong": "Q", "timestamp": "Q"}


class AMQPObject:
    """Base of every AMQP class, method and property list: value equality and pika's repr."""

    __slots__ = ()

    NAME: ClassVar[str] = "AMQPObject"
    INDEX: ClassVar[int | None] = None

    def _field_names(self) -> tuple[str, ...]:
        return ()

    def __repr__(self) -> str:
        # pika's format: the non-None fields as sorted "name=value" strings.
        items = sorted(
            f"{name}={value}"
            for name in self._field_names()
            if (value := getattr(self, name, None)) is not None
        )
        if not items:
            return f"<{self.NAME}>"
        return f"<{self.NAME}({items})>"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            getattr(self, name, None) == getattr(other, name, None) for name in self._field_names()
        )

    # Mutable and compared by value, like pika's objects: not hashable.
    __hash__ = None  # type: ignore[assignment]


class Class(AMQPObject):
    """Base of the AMQP classes (``spec.Basic``, ``spec.Queue`` ...): a namespace with an id."""

    __slots__ = ()

    NAME: ClassVar[str] = "Unextended Class"


class Method(AMQPObject):
    """Base of the AMQP methods (``spec.Basic.Publish`` ...).

    Attributes:
        INDEX: ``class_id << 16 | method_id``, the key of ``spec.methods``.
        NAME: the dotted name, for example ``"Basic.Publish"``.
        synchronous: whether the method expects a reply method.
        HAS_CONTENT: whether a content header and body frames follow the method.
    """

    __slots__ = ("_body", "_properties")

    NAME: ClassVar[str] = "Unextended Method"
    INDEX: ClassVar[int] = 0
    synchronous: ClassVar[bool] = False
    HAS_CONTENT: ClassVar[bool] = False
    #: ``(attribute name, field kind)`` of each argument, in wire order.
    _ARGUMENTS: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self) -> None:
        # Methods without arguments take none, as in pika; the others define their own.
        pass

    def _field_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._ARGUMENTS)

    def _set_content(self, properties: Properties, body: bytes) -> None:
        """Attach the properties and body of the message this method carries (pika API)."""
        self._properties = properties
        self._body = body

    def get_properties(self) -> Properties | None:
        """Return the properties attached by ``_set_content``, or None."""
        try:
            return self._properties
        except AttributeError:
            return None

    def get_body(self) -> bytes | None:
        """Return the body attached by ``_set_content``, or None."""
        try:
            return self._body
        except AttributeError:
            return None

    def pack(self) -> bytes:
        """Encode the method as a method frame payload.

        Returns:
            The 4-byte class and method ids followed by the arguments (spec section 4.2.4).

        Raises:
            ShortStringTooLong: a short string argument is over 255 bytes in UTF-8.
            AMQPEncodeError: an argument is missing or has a value its type cannot hold.
        """
        return self._pack_checked()

    @classmethod
    def unpack(cls: type[_M], buf: Buffer, offset: int, end: int) -> _M:
        """Decode the arguments of a method frame payload.

        Args:
            buf: the buffer, often a ``memoryview`` over a receive buffer; it is not copied
                as a whole.
            offset: where the arguments start, just after the 4-byte class and method ids.
            end: where they end; the arguments must fill ``buf[offset:end]`` exactly.

        Returns:
            The method.

        Raises:
            AMQPCodecError: the arguments are truncated, followed by extra bytes, or malformed
                (502 SYNTAX_ERROR), naming the method and the argument.
        """
        return cls._unpack_checked(buf, offset, end)

    def encode(self) -> list[bytes]:
        """Return the encoded arguments without the class and method ids (pika API)."""
        return [self.pack()[4:]]

    def decode(self: _M, encoded: Buffer, offset: int = 0) -> _M:
        """Decode arguments from ``encoded[offset:]`` into this instance (pika API).

        Returns:
            This instance.

        Raises:
            AMQPCodecError: as :meth:`unpack`.
        """
        decoded = type(self).unpack(encoded, offset, len(encoded))
        for name, _ in self._ARGUMENTS:
            setattr(self, name, getattr(decoded, name))
        return self

    def _pack_checked(self) -> bytes:
        """Encode by walking ``_ARGUMENTS``: lenient about types, precise about errors."""
        pieces = [_METHOD_ID.pack(self.INDEX)]
        bits = 0
        bit_count = 0
        for name, kind in self._ARGUMENTS:
            value = getattr(self, name, None)
            if kind == "bit":
                # Spec 4.2.5.2: "Bits are accumulated into whole octets" - a run of adjacent bit
                # fields shares octets, the first field in the lowest bit.
                if bit_count == 8:
                    pieces.append(bytes((bits,)))
                    bits = bit_count = 0
                if value:
                    bits |= 1 << bit_count
                bit_count += 1
                continue
            if bit_count:
                pieces.append(bytes((bits,)))
                bits = bit_count = 0
            pieces.append(_encode_field(self.NAME, name, kind, value))
        if bit_count:
            pieces.append(bytes((bits,)))
        return b"".join(pieces)

    @classmethod
    def _unpack_checked(cls: type[_M], buf: Buffer, offset: int, end: int) -> _M:
        """Decode by walking ``_ARGUMENTS``, checking every length against ``end``."""
        reader = _Reader(cls.NAME, buf, offset, end)
        values: list[object] = []
        bit_count = 0
        bits = 0
        for name, kind in cls._ARGUMENTS:
            if kind == "bit":
                if bit_count % 8 == 0:
                    bits = reader.integer(name, "octet")
                values.append(bits & (1 << (bit_count % 8)) != 0)
                bit_count += 1
                continue
            bit_count = 0
            values.append(reader.field(name, kind))
        reader.finish()
        instance = object.__new__(cls)
        for (name, _), value in zip(cls._ARGUMENTS, values, strict=True):
            setattr(instance, name, value)
        return instance


class Properties(AMQPObject):
    """Base of the content property lists (``spec.BasicProperties``).

    Attributes:
        INDEX: the id of the class whose content the properties describe (60 for Basic).
        NAME: the class name, for example ``"BasicProperties"``.
    """

    __slots__ = ()

    NAME: ClassVar[str] = "Unextended Properties"
    INDEX: ClassVar[int] = 0
    #: ``(attribute name, field kind, flag bit)`` of each property, in wire order.
    _PROPERTIES: ClassVar[tuple[tuple[str, str, int], ...]] = ()
    #: The decoders built so far, by flag word; each generated class has its own dict.
    _DECODERS: ClassVar[dict[int, PropertiesDecoder]] = {}

    def _field_names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self._PROPERTIES)

    def pack(self) -> bytes:
        """Encode the property flags and the values of the properties that are not None.

        The content header's class id, weight and body size are not included: the frame codec
        writes those (spec section 4.2.6.1).

        Raises:
            ShortStringTooLong: a short string property is over 255 bytes in UTF-8.
            AMQPEncodeError: a property has a value its type cannot hold.
        """
        return self._pack_checked()

    @classmethod
    def unpack(cls: type[_P], buf: Buffer, offset: int, end: int) -> _P:
        """Decode the property flags and values that fill ``buf[offset:end]`` exactly.

        Raises:
            AMQPCodecError: the property list is truncated, followed by extra bytes, has a flag
                for a property the class does not define, or a malformed value (502).
        """
        return cls._unpack_checked(buf, offset, end)

    def encode(self) -> list[bytes]:
        """Return the encoded property flags and values (pika API)."""
        return [self.pack()]

    def decode(self: _P, encoded: Buffer, offset: int = 0) -> _P:
        """Decode the property list in ``encoded[offset:]`` into this instance (pika API).

        Returns:
            This instance.
        """
        decoded = type(self).unpack(encoded, offset, len(encoded))
        for name, _, _ in self._PROPERTIES:
            setattr(self, name, getattr(decoded, name))
        return self

    @classmethod
    def _decoder(cls, flags: int) -> PropertiesDecoder:
        """Return the decoder specialised for the flag word ``flags``, building it once.

        The decoder reads exactly the properties ``flags`` names, straight-line: adjacent
        fixed-size values (and the length in front of a following string or table) are read
        with one precompiled struct, and there is no per-property test. A flag word with a
        continuation bit or a flag no property has gets a decoder that always raises, so that
        the checking codec handles it. Decoders are cached in ``cls._DECODERS`` up to
        :data:`_DECODER_CACHE_SIZE` flag words; past that they are built but not kept, and
        the generated ``unpack`` uses the checking codec instead.
        """
        cached = cls._DECODERS.get(flags)
        if cached is not None:
            return cached
        source, namespace = _decoder_source(cls._PROPERTIES, flags)
        exec(compile(source, f"<{cls.NAME} decoder 0x{flags:04X}>", "exec"), namespace)
        decoder: PropertiesDecoder = namespace["decode"]
        if len(cls._DECODERS) < _DECODER_CACHE_SIZE:
            cls._DECODERS[flags] = decoder
        return decoder

    def _pack_checked(self) -> bytes:
        """Encode by walking ``_PROPERTIES``: lenient about types, precise about errors."""
        flags = 0
        pieces = []
        for name, kind, flag in self._PROPERTIES:
            value = getattr(self, name, None)
            if value is None:
                continue
            flags |= flag
            # A bit property is carried by its flag alone (spec 4.2.6.1); basic has none.
            if kind != "bit":
                pieces.append(_encode_field(self.NAME, name, kind, value))
        return _FLAGS.pack(flags) + b"".join(pieces)

    @classmethod
    def _unpack_checked(cls: type[_P], buf: Buffer, offset: int, end: int) -> _P:
        """Decode by walking ``_PROPERTIES``, checking every length against ``end``."""
        reader = _Reader(cls.NAME, buf, offset, end)
        flags = reader.integer("property flags", "short")
        word = flags
        # Spec 4.2.6.1: "If the last bit (0) of a flag word is set, another flag word follows."
        # Property n is bit 15 - n of the first word; further words would describe a 16th
        # property onwards, which no class defines, so they must be empty.
        while word & 1:
            word = reader.integer("property flags", "short")
            if word & 0xFFFE:
                reader.fail(
                    "property flags", f"continued flag word 0x{word:04X} names undefined properties"
                )
        known = 0x0001
        for _, _, flag in cls._PROPERTIES:
            known |= flag
        if flags & ~known:
            reader.fail("property flags", f"0x{flags & ~known:04X} set for undefined properties")
        instance = object.__new__(cls)
        for name, kind, flag in cls._PROPERTIES:
            if not flags & flag:
                value: object = None
            elif kind == "bit":
                value = True
            else:
                value = reader.field(name, kind)
            setattr(instance, name, value)
        reader.finish()
        return instance


def _decoder_source(
    properties: tuple[tuple[str, str, int], ...], flags: int
) -> tuple[str, dict[str, Any]]:
    """Return the source of the decoder for ``flags`` and the namespace it runs in."""
    namespace: dict[str, Any] = {
        "_new": object.__new__,
        "_entries": unpack_table_entries,
        "ValueError": ValueError,
    }
    lines = ["def decode(cls, data, o, stop):"]
    known = 0
    for _, _, flag in properties:
        known |= flag
    if flags & ~known or flags & 1:
        lines.append("    raise ValueError('continued or undefined property flags')")
        return "\n".join(lines) + "\n", namespace
    run_fmt = ""
    run_targets: list[str] = []

    def flush() -> None:
        nonlocal run_fmt, run_targets
        if not run_fmt:
            return
        if run_fmt == "B":
            lines.append(f"    {run_targets[0]} = data[o]")
            lines.append("    o += 1")
        else:
            struct_name = f"_S_{run_fmt}"
            namespace[struct_name] = struct.Struct(">" + run_fmt).unpack_from
            lines.append(f"    {', '.join(run_targets)}, = {struct_name}(data, o)")
            lines.append(f"    o += {struct.calcsize('>' + run_fmt)}")
        run_fmt, run_targets = "", []

    present = [(name, kind) for name, kind, flag in properties if flags & flag]
    for name, kind in present:
        local = f"v_{name}"
        if kind == "bit":
            lines.append(f"    {local} = True")
        elif kind in _FIXED_FORMATS:
            run_fmt += _FIXED_FORMATS[kind]
            run_targets.append(local)
        elif kind in ("shortstr", "longstr", "table"):
            run_fmt += "B" if kind == "shortstr" else "I"
            run_targets.append("n")
            flush()
            lines.append("    e = o + n")
            if kind == "shortstr":
                lines.append(f"    {local} = data[o:e].decode()")
            elif kind == "longstr":
                lines.append("    if e > stop:")
                lines.append("        raise ValueError('long string overruns the properties')")
                lines.append(f"    {local} = data[o:e]")
            else:
                lines.append("    if e > stop:")
                lines.append("        raise ValueError('table overruns the properties')")
                lines.append(f"    {local} = _entries(data, o, e) if n else {{}}")
            lines.append("    o = e")
        else:  # pragma: no cover - the generator only emits the kinds above
            raise AssertionError(kind)
    flush()
    lines.append("    if o != stop:")
    lines.append("        raise ValueError('properties do not fill the payload')")
    lines.append("    inst = _new(cls)")
    for name, _, flag in properties:
        lines.append(f"    inst.{name} = {f'v_{name}' if flags & flag else 'None'}")
    lines.append("    return inst")
    return "\n".join(lines) + "\n", namespace


def _encode_field(owner: str, name: str, kind: str, value: object) -> bytes:
    """Encode one non-bit field, raising a typed error that names ``owner.name``."""
    where = f"{owner}.{name}"
    if kind == "table":
        if value is not None and not isinstance(value, Mapping):
            raise AMQPEncodeError(f"{where}: a field table must be a mapping, not {value!r}")
        return pack_table(value)
    if value is None:
        raise AMQPEncodeError(f"{where} is None; a {kind} value is required")
    if kind == "shortstr" or kind == "longstr":
        raw = _as_bytes(where, value)
        if kind == "shortstr":
            if len(raw) > 255:
                raise ShortStringTooLong(
                    f"{where} is {len(raw)} bytes long in UTF-8; a short string holds up to 255"
                )
            return _LENGTH_SHORT.pack(len(raw)) + raw
        if len(raw) > 0xFFFFFFFF:
            raise AMQPEncodeError(f"{where} is {len(raw)} bytes long; a long string holds less")
        return _LENGTH_LONG.pack(len(raw)) + raw
    codec = _INTEGERS[kind]
    if kind == "timestamp" and _is_datetime(value):
        # Like the field-table codec: a naive datetime is taken to be UTC.
        value = _seconds_since_epoch(value)
    elif isinstance(value, Enum):
        # pika 1.4.4's DeliveryMode is a plain Enum whose values are ints.
        value = value.value
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise AMQPEncodeError(f"{where}: {kind} needs an int, not {value!r}") from None
    try:
        return codec.pack(number)
    except struct.error:
        raise AMQPEncodeError(
            f"{where}: {number} is out of range for an unsigned {codec.size * 8}-bit {kind}"
        ) from None


def _is_datetime(value: object) -> TypeGuard[datetime]:
    # Imported here, not at the top: most programs never send a datetime (see amqp_core.data).
    from datetime import datetime

    return isinstance(value, datetime)


def _as_bytes(where: str, value: object) -> bytes:
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise AMQPEncodeError(f"{where}: {value!r} cannot be encoded as UTF-8: {exc}") from None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise AMQPEncodeError(f"{where}: a string needs str or bytes, not {value!r}")


class _Reader:
    """A cursor over ``buf[offset:end]`` that checks each read and names what failed."""

    __slots__ = ("buf", "end", "offset", "owner", "start")

    def __init__(self, owner: str, buf: Buffer, offset: int, end: int) -> None:
        self.owner = owner
        self.buf = buf
        self.start = offset
        self.offset = offset
        self.end = end
        if offset < 0 or end < offset or end > len(buf):
            self.fail("arguments", f"bounds [{offset}:{end}] do not fit a {len(buf)}-byte buffer")

    def fail(self, name: str, reason: str) -> NoReturn:
        raise AMQPCodecError(f"{self.owner}: {name}: {reason}", _SYNTAX_ERROR)

    def take(self, name: str, kind: str, size: int) -> int:
        """Reserve ``size`` bytes and return where they start."""
        at = self.offset
        if at + size > self.end:
            self.fail(
                name,
                f"{kind} of {size} bytes at offset {at - self.start} runs past the end "
                f"({self.end - self.start} bytes of arguments)",
            )
        self.offset = at + size
        return at

    def integer(self, name: str, kind: str) -> int:
        codec = _INTEGERS[kind]
        at = self.take(name, kind, codec.size)
        number: int = codec.unpack_from(self.buf, at)[0]
        return number

    def field(self, name: str, kind: str) -> object:
        if kind == "table":
            try:
                table, self.offset = unpack_table(self.buf, self.offset, self.end)
            except AMQPCodecError as exc:
                if type(exc) is not AMQPCodecError:
                    raise
                self.fail(name, exc.reason)
            return table
        if kind == "shortstr":
            size = self.integer(name, "octet")
            at = self.take(name, kind, size)
            raw = bytes(self.buf[at : at + size])
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.fail(name, f"short string {raw!r} is not valid UTF-8: {exc.reason}")
        if kind == "longstr":
            size = self.integer(name, "long")
            at = self.take(name, kind, size)
            return bytes(self.buf[at : at + size])
        return self.integer(name, kind)

    def finish(self) -> None:
        if self.offset != self.end:
            self.fail(
                "arguments",
                f"{self.end - self.offset} trailing bytes after the last field "
                f"({self.end - self.start} bytes of arguments)",
            )
