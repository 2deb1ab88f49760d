"""Tests of the generic, checking codec of amqp_object on shapes the AMQP spec does not use.

The generated classes override ``pack``/``unpack`` and no AMQP 0-9-1 class has a run of more
than eight bits, a bit property or a long-string property; the base classes still define what
a method or property list of those shapes encodes to (spec sections 4.2.5.2 and 4.2.6.1).
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from amqp_core import amqp_object, spec
from amqp_core.exceptions import AMQPCodecError, AMQPEncodeError

_BIT_NAMES = tuple(f"b{i}" for i in range(10))


class TenBits(amqp_object.Method):
    """A method with ten adjacent bits and a short after them."""

    NAME = "Test.TenBits"
    INDEX = 0x7FFF0001
    _ARGUMENTS = (*((name, "bit") for name in _BIT_NAMES), ("after", "short"))

    def __init__(self, bits: int = 0, after: int = 0) -> None:
        for position, name in enumerate(_BIT_NAMES):
            setattr(self, name, bool(bits >> position & 1))
        self.after = after


class Flagged(amqp_object.Properties):
    """A property list with a bit, a long string and a short."""

    NAME = "FlaggedProperties"
    INDEX = 0x7FFF
    _PROPERTIES = (("flag", "bit", 0x8000), ("blob", "longstr", 0x4000), ("n", "short", 0x2000))
    _DECODERS: ClassVar[dict[int, amqp_object.PropertiesDecoder]] = {}

    def __init__(
        self, flag: bool | None = None, blob: bytes | None = None, n: int | None = None
    ) -> None:
        self.flag = flag
        self.blob = blob
        self.n = n


def test_bits_past_eight_start_a_new_octet() -> None:
    # Spec 4.2.5.2: bits are accumulated into whole octets, the first bit in the lowest bit.
    method = TenBits(bits=0b10_0000_0101, after=0x1234)
    packed = method.pack()
    assert packed == bytes.fromhex("7FFF0001 05 02 1234")
    decoded = TenBits.unpack(packed, 4, len(packed))
    assert type(decoded) is TenBits
    assert decoded == method
    assert [getattr(decoded, name) for name in _BIT_NAMES] == [
        True, False, True, False, False, False, False, False, False, True,
    ]  # fmt: skip
    # Exactly eight bits fill one octet; the ninth starts the second.
    assert TenBits(bits=0xFF).pack() == bytes.fromhex("7FFF0001 FF 00 0000")
    assert TenBits(bits=0x100).pack() == bytes.fromhex("7FFF0001 00 01 0000")
    with pytest.raises(AMQPCodecError, match=r"Test\.TenBits"):
        TenBits.unpack(packed, 4, len(packed) - 2)


def test_method_base_codec_is_the_checking_one() -> None:
    with pytest.raises(AMQPEncodeError, match=r"Test\.TenBits\.after"):
        TenBits(after=-1).pack()
    assert repr(TenBits(after=3)).startswith("<Test.TenBits(['after=3', 'b0=False'")


@pytest.mark.parametrize(
    ("props", "wire"),
    [
        (Flagged(), "0000"),
        # A bit property is carried by its flag alone.
        (Flagged(flag=True), "8000"),
        (Flagged(blob=b"\x00\xff"), "4000 00000002 00FF"),
        (Flagged(flag=True, blob=b"", n=7), "E000 00000000 0007"),
        (Flagged(blob=b"xyz", n=0xFFFF), "6000 00000003 78797A FFFF"),
    ],
)
def test_bit_and_long_string_properties(props: Flagged, wire: str) -> None:
    expected = bytes.fromhex(wire)
    assert props.pack() == expected
    decoded = Flagged.unpack(expected, 0, len(expected))
    assert type(decoded) is Flagged
    assert decoded == props
    # The decoder specialised for this flag word agrees with the checking codec.
    flags = int.from_bytes(expected[:2], "big")
    built = Flagged._decoder(flags)(Flagged, expected, 2, len(expected))
    assert built == props
    assert Flagged._DECODERS[flags] is Flagged._decoder(flags)


def test_long_string_property_overrun() -> None:
    wire = bytes.fromhex("4000 00000009 78797A")
    with pytest.raises(AMQPCodecError, match="blob") as info:
        Flagged.unpack(wire, 0, len(wire))
    assert info.value.reply_code == 502
    # The specialised decoder refuses too (its caller then asks the checking codec).
    with pytest.raises(ValueError, match="long string overruns"):
        Flagged._decoder(0x4000)(Flagged, wire, 2, len(wire))


def test_long_string_longer_than_its_length_field(monkeypatch: pytest.MonkeyPatch) -> None:
    # A long string holds up to 2**32 - 1 bytes; a bigger value is refused, naming the field
    # (simulated: a real one needs 4 GiB of memory).
    class Huge(bytes):
        def __len__(self) -> int:
            return 2**32

    monkeypatch.setattr(amqp_object, "_as_bytes", lambda where, value: Huge(b"x"))
    with pytest.raises(AMQPEncodeError, match=r"Connection\.Secure\.challenge is 4294967296"):
        spec.Connection.Secure(challenge=b"x")._pack_checked()


def test_classes_are_namespaces_with_value_equality() -> None:
    # A spec class (spec.Basic) has no fields: pika's repr is its name alone.
    assert repr(spec.Basic()) == "<Basic>"
    assert spec.Basic() == spec.Basic()
    assert spec.Basic() != spec.Queue()
    assert repr(amqp_object.AMQPObject()) == "<AMQPObject>"
    with pytest.raises(TypeError):
        hash(spec.Basic())
