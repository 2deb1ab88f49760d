"""Tests of the generated spec module: names, constants, codecs, errors, and pika agreement."""

from __future__ import annotations

import enum
import inspect
import random
import struct
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from amqp_core import _spec_support, amqp_object, spec
from amqp_core.exceptions import AMQPCodecError, AMQPEncodeError, ShortStringTooLong

ALL_METHODS = sorted(spec.methods.values(), key=lambda cls: cls.INDEX)
SPEC_CLASSES = [
    value
    for value in vars(spec).values()
    if isinstance(value, type) and issubclass(value, amqp_object.Class)
]

#: A non-default value of each field kind (a multi-byte UTF-8 string, a 3-entry table ...).
SAMPLE: dict[str, Any] = {
    "bit": True,
    "octet": 0xFE,
    "short": 0xBEEF,
    "long": 0xDEADBEEF,
    "longlong": 2**63 + 5,
    "timestamp": 1_700_000_000,
    "shortstr": "r\u00e9sum\u00e9.\u2603",
    "longstr": b"\x00binary\xffsecret",
    "table": {"x-a": "b", "x-count": 3, "x-flag": True},
}


def sample_method(cls: type[amqp_object.Method]) -> amqp_object.Method:
    return cls(**{name: SAMPLE[kind] for name, kind in cls._ARGUMENTS})


def method_ids(cls: type[amqp_object.Method]) -> str:
    return cls.NAME


def full_props() -> spec.BasicProperties:
    return spec.BasicProperties(
        content_type="application/json",
        content_encoding="gzip",
        headers={"x-a": "b", "x-count": 3, "nested": {"k": [1, "two"]}},
        delivery_mode=2,
        priority=9,
        correlation_id="corr",
        reply_to="amq.rabbitmq.reply-to",
        expiration="60000",
        message_id="msg-1",
        timestamp=1_700_000_000,
        type="event",
        user_id="guest",
        app_id="app",
        cluster_id="",
    )


# --------------------------------------------------------------------------------------------
# Names, counts, constants
# --------------------------------------------------------------------------------------------


def test_counts() -> None:
    assert sorted(cls.NAME for cls in SPEC_CLASSES) == sorted(
        ["Connection", "Channel", "Access", "Exchange", "Queue", "Basic", "Confirm", "Tx"]
    )
    assert len(spec.methods) == 66
    assert len(spec.BasicProperties._PROPERTIES) == 14
    assert spec.props == {60: spec.BasicProperties}


def test_class_and_method_identity() -> None:
    assert (spec.Basic.INDEX, spec.Basic.NAME) == (60, "Basic")
    assert (spec.Confirm.INDEX, spec.Tx.INDEX) == (85, 90)
    assert spec.Basic.Publish.INDEX == 0x003C0028
    assert spec.Basic.Publish.NAME == "Basic.Publish"
    assert spec.Queue.DeclareOk.NAME == "Queue.DeclareOk"
    assert spec.Basic.RecoverAsync.INDEX == 0x003C0064
    assert spec.Connection.UpdateSecretOk.INDEX == 0x000A0047
    # RabbitMQ's id for exchange.unbind-ok is 51, not 41.
    assert spec.Exchange.UnbindOk.INDEX == 0x00280033
    for index, cls in spec.methods.items():
        assert index == cls.INDEX
        class_name, method_name = cls.NAME.split(".")
        assert getattr(getattr(spec, class_name), method_name) is cls
        assert index >> 16 == getattr(spec, class_name).INDEX
    assert spec.Basic.Properties is spec.BasicProperties


def test_constants() -> None:
    assert spec.PROTOCOL_VERSION == (0, 9, 1)
    assert spec.PORT == 5672
    frame = (spec.FRAME_METHOD, spec.FRAME_HEADER, spec.FRAME_BODY, spec.FRAME_HEARTBEAT)
    assert frame == (1, 2, 3, 8)
    assert (spec.FRAME_MIN_SIZE, spec.FRAME_MAX_SIZE, spec.FRAME_END) == (4096, 131072, 206)
    assert (spec.FRAME_HEADER_SIZE, spec.FRAME_END_SIZE) == (7, 1)
    assert (spec.TRANSIENT_DELIVERY_MODE, spec.PERSISTENT_DELIVERY_MODE) == (1, 2)
    assert spec.REPLY_SUCCESS == 200
    assert spec.CONTENT_TOO_LARGE == 311
    assert spec.SYNTAX_ERROR == 502
    assert spec.INTERNAL_ERROR == 541


def test_reply_codes() -> None:
    assert len(spec.ReplyCode) == 19
    assert int(spec.ReplyCode.NOT_FOUND) == 404
    assert spec.ReplyCode(320).name == "CONNECTION_FORCED"
    for code in spec.ReplyCode:
        assert code.value == getattr(spec, code.name)
    soft, hard = spec.SOFT_ERRORS, spec.HARD_ERRORS
    assert soft == {311, 312, 313, 403, 404, 405, 406}
    assert hard == {320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541}
    assert spec.is_hard_error(spec.CONNECTION_FORCED)
    assert not spec.is_hard_error(spec.NOT_FOUND)
    assert spec.is_soft_error(spec.PRECONDITION_FAILED)
    assert not spec.is_soft_error(spec.REPLY_SUCCESS)
    assert not spec.is_hard_error(spec.REPLY_SUCCESS)


def test_synchronous_and_content() -> None:
    assert spec.Basic.Publish.synchronous is False
    assert spec.Basic.Publish().synchronous is False
    assert spec.Queue.Declare.synchronous is True
    assert spec.Queue.Declare().synchronous is True
    assert spec.Queue.DeclareOk.synchronous is False
    assert spec.Basic.Nack.synchronous is False
    assert spec.Confirm.Select.synchronous is True
    content = {cls.NAME for cls in ALL_METHODS if cls.HAS_CONTENT}
    assert content == {"Basic.Publish", "Basic.Return", "Basic.Deliver", "Basic.GetOk"}
    for cls in ALL_METHODS:
        assert spec.has_content(cls.INDEX) is cls.HAS_CONTENT
    assert not spec.has_content(0x7FFF0001)


def test_argument_names_and_defaults() -> None:
    assert spec.Basic.Qos._ARGUMENTS == (
        ("prefetch_size", "long"),
        ("prefetch_count", "short"),
        ("global_qos", "bit"),
    )
    qos = spec.Basic.Qos()
    assert (qos.prefetch_size, qos.prefetch_count, qos.global_qos) == (0, 0, False)
    declare = spec.Exchange.Declare()
    # pika's None default for an argument that has no useful one.
    assert [getattr(declare, name) for name in ("ticket", "exchange", "type")] == [
        0,
        None,
        "direct",
    ]
    assert declare.arguments is None
    assert spec.Access.RequestOk().ticket == 1
    assert spec.Basic.Reject().requeue is True
    assert spec.Basic.Nack().requeue is True
    assert spec.Connection.Start().mechanisms == "PLAIN"
    with pytest.raises(TypeError):
        spec.Connection.UpdateSecret()  # type: ignore[call-arg]
    assert "__dict__" not in dir(spec.Basic.Deliver())


# --------------------------------------------------------------------------------------------
# Encoding and decoding
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_METHODS, ids=method_ids)
def test_method_round_trip(cls: type[amqp_object.Method]) -> None:
    method = sample_method(cls)
    packed = method.pack()
    assert packed[:4] == struct.pack(">I", cls.INDEX)
    # The specialised encoder agrees with the generic, checking one.
    assert packed == method._pack_checked()
    decoded = cls.unpack(packed, 4, len(packed))
    assert type(decoded) is cls
    assert decoded == method
    for name, _ in cls._ARGUMENTS:
        assert getattr(decoded, name) == getattr(method, name)
    # At an offset inside a larger memoryview and bytearray, as the engine hands it over.
    framed = bytearray(b"\x01\x02\x03" + packed + b"\xce\xff")
    assert cls.unpack(memoryview(framed), 7, 3 + len(packed)) == method
    assert cls.unpack(framed, 7, 3 + len(packed)) == method
    assert cls.unpack(bytes(framed), 7, 3 + len(packed)) == method
    assert cls._unpack_checked(packed, 4, len(packed)) == method
    # pika's API: the arguments without the ids, and decoding into an instance.
    assert b"".join(method.encode()) == packed[4:]
    target = cls.__new__(cls)
    assert target.decode(packed, 4) is target
    assert target == method


@pytest.mark.parametrize("cls", ALL_METHODS, ids=method_ids)
def test_method_default_round_trip(cls: type[amqp_object.Method]) -> None:
    try:
        method = cls()
        packed = method.pack()
    except (TypeError, AMQPEncodeError):
        return  # arguments without a usable default
    assert cls.unpack(packed, 4, len(packed)).pack() == packed


def test_fast_paths_do_not_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("fell back to the checked codec")

    monkeypatch.setattr(amqp_object.Method, "_pack_checked", refuse)
    monkeypatch.setattr(amqp_object.Method, "_unpack_checked", classmethod(refuse))
    monkeypatch.setattr(amqp_object.Properties, "_pack_checked", refuse)
    monkeypatch.setattr(amqp_object.Properties, "_unpack_checked", classmethod(refuse))
    for cls in ALL_METHODS:
        packed = sample_method(cls).pack()
        cls.unpack(packed, 4, len(packed))
        cls.unpack(memoryview(packed), 4, len(packed))
    for props in (full_props(), spec.BasicProperties(), spec.BasicProperties(headers={})):
        packed = props.pack()
        spec.BasicProperties.unpack(packed, 0, len(packed))


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        # class 60 method 80; delivery-tag longlong 1; "multiple" in bit 0.
        (spec.Basic.Ack(delivery_tag=1, multiple=True), "003C0050 0000000000000001 01"),
        # ticket 0; exchange ""; routing key "rk"; mandatory bit 0, immediate bit 1.
        (spec.Basic.Publish(routing_key="rk", mandatory=True), "003C0028 0000 00 02726B 01"),
        (spec.Basic.Publish(exchange="x", immediate=True), "003C0028 0000 0178 00 02"),
        # ticket, queue "q", then passive..nowait in bits 0..4 (durable 1, auto-delete 3),
        # then an empty table.
        (
            spec.Queue.Declare(queue="q", durable=True, auto_delete=True),
            "0032000A 0000 0171 0A 00000000",
        ),
        (
            spec.Queue.Declare(passive=True, exclusive=True, nowait=True),
            "0032000A 0000 00 15 00000000",
        ),
        # delivery-tag, then multiple (bit 0) and requeue (bit 1) sharing one octet.
        (spec.Basic.Nack(delivery_tag=7, requeue=True), "003C0078 0000000000000007 02"),
        (
            spec.Basic.Nack(delivery_tag=7, multiple=True, requeue=False),
            "003C0078 00000000 00000007 01",
        ),
        (spec.Basic.Qos(prefetch_count=10, global_qos=True), "003C000A 00000000 000A 01"),
        (
            spec.Connection.Tune(channel_max=2047, frame_max=131072, heartbeat=60),
            "000A001E 07FF 00020000 003C",
        ),
        (spec.Channel.Open(), "0014000A 00"),
        (spec.Channel.CloseOk(), "00140029"),
        (spec.Exchange.UnbindOk(), "00280033"),
        (spec.Confirm.Select(nowait=True), "0055000A 01"),
        (
            spec.Connection.Close(reply_code=320, reply_text="bye", class_id=0, method_id=0),
            "000A0032 0140 03627965 0000 0000",
        ),
        (
            spec.Connection.Secure(challenge=b"\x01\x02"),
            "000A0014 00000002 0102",
        ),
    ],
    ids=lambda value: value.NAME if isinstance(value, amqp_object.Method) else "",
)
def test_known_vectors(method: amqp_object.Method, expected: str) -> None:
    wire = bytes.fromhex(expected)
    assert method.pack() == wire
    decoded = type(method).unpack(wire, 4, len(wire))
    assert decoded.pack() == wire
    for name, kind in method._ARGUMENTS:
        if kind != "table":  # a None table is sent as, and decoded to, {}
            assert getattr(decoded, name) == getattr(method, name)


def test_bit_fields_decode_independently() -> None:
    names = ["passive", "durable", "exclusive", "auto_delete", "nowait"]
    for bits in range(32):
        flags: dict[str, Any] = {name: bool(bits >> i & 1) for i, name in enumerate(names)}
        method = spec.Queue.Declare(queue="q", **flags)
        packed = method.pack()
        assert packed[-5] == bits
        decoded = spec.Queue.Declare.unpack(packed, 4, len(packed))
        assert {name: getattr(decoded, name) for name in names} == flags


def test_longstr_accepts_str_and_bytes_and_decodes_to_bytes() -> None:
    from_str = spec.Connection.SecureOk(response="\u00e9").pack()
    from_bytes = spec.Connection.SecureOk(response=b"\xc3\xa9").pack()
    assert from_str == from_bytes == bytes.fromhex("000A0015 00000002 C3A9")
    assert spec.Connection.SecureOk.unpack(from_str, 4, len(from_str)).response == b"\xc3\xa9"


def test_lenient_values_pika_accepts() -> None:
    # bytes for a short string, a str-valued Enum (pika's ExchangeType) for the exchange type.
    class ExchangeType(str, enum.Enum):
        topic = "topic"

    as_bytes = spec.Basic.Publish(exchange=b"ex", routing_key=b"rk")  # type: ignore[arg-type]
    assert as_bytes.pack() == spec.Basic.Publish(exchange="ex", routing_key="rk").pack()
    declare = spec.Exchange.Declare(exchange="e", type=ExchangeType.topic)
    assert declare.pack() == spec.Exchange.Declare(exchange="e", type="topic").pack()


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_METHODS, ids=method_ids)
def test_truncated_and_trailing_arguments(cls: type[amqp_object.Method]) -> None:
    packed = sample_method(cls).pack()
    for cut in range(4, len(packed)):
        with pytest.raises(AMQPCodecError) as info:
            cls.unpack(packed, 4, cut)
        assert info.value.reply_code == 502
        assert cls.NAME in info.value.reason
        # The bytes beyond `end` are there but must not be read.
        with pytest.raises(AMQPCodecError):
            cls.unpack(memoryview(packed[:cut]), 4, cut)
    with pytest.raises(AMQPCodecError) as info:
        cls.unpack(packed + b"\x00", 4, len(packed) + 1)
    assert info.value.reply_code == 502
    assert "trailing" in info.value.reason


def test_bounds_outside_the_buffer() -> None:
    packed = spec.Basic.Ack(delivery_tag=5).pack()
    for offset, end in [(4, len(packed) + 3), (4, 2), (-1, len(packed))]:
        with pytest.raises(AMQPCodecError) as info:
            spec.Basic.Ack._unpack_checked(packed, offset, end)
        assert info.value.reply_code == 502
    with pytest.raises(AMQPCodecError):
        spec.Basic.Ack.unpack(packed, 4, len(packed) + 3)


def test_length_prefix_overrun_names_the_field() -> None:
    # consumer tag "ab", delivery tag, redelivered, exchange length 200 with 1 byte behind it.
    wire = bytes.fromhex("003C003C 02 6162 0000000000000001 00 C8 78")
    with pytest.raises(AMQPCodecError) as info:
        spec.Basic.Deliver.unpack(wire, 4, len(wire))
    assert info.value.reply_code == 502
    assert "Basic.Deliver" in info.value.reason
    assert "exchange" in info.value.reason


def test_invalid_utf8_short_string() -> None:
    wire = bytes.fromhex("003C003C 02 FFFE 0000000000000001 00 00 00")
    for buf in (wire, memoryview(bytearray(wire))):
        with pytest.raises(AMQPCodecError) as info:
            spec.Basic.Deliver.unpack(buf, 4, len(wire))
        assert info.value.reply_code == 502
        assert "Basic.Deliver" in info.value.reason
        assert "consumer_tag" in info.value.reason
        assert "UTF-8" in info.value.reason


def test_short_string_too_long() -> None:
    with pytest.raises(ShortStringTooLong) as info:
        spec.Basic.Publish(routing_key="k" * 256).pack()
    assert "Basic.Publish.routing_key" in str(info.value)
    assert isinstance(info.value, AMQPEncodeError)
    assert isinstance(info.value, ValueError)
    # Counted in UTF-8 bytes: 128 two-byte characters are 256 bytes.
    with pytest.raises(ShortStringTooLong):
        spec.Basic.Publish(exchange="\u00e9" * 128).pack()
    assert len(spec.Basic.Publish(exchange="k" * 255).pack()) == 4 + 2 + 256 + 1 + 1
    with pytest.raises(ShortStringTooLong) as info:
        spec.BasicProperties(message_id="m" * 300).pack()
    assert "BasicProperties.message_id" in str(info.value)


@pytest.mark.parametrize(
    ("method", "field"),
    [
        (spec.Basic.Qos(prefetch_count=70000), "Basic.Qos.prefetch_count"),
        (spec.Basic.Ack(delivery_tag=-1), "Basic.Ack.delivery_tag"),
        (spec.Basic.Ack(delivery_tag=2**64), "Basic.Ack.delivery_tag"),
        (spec.Basic.Deliver(), "Basic.Deliver.consumer_tag"),
        (spec.Basic.Publish(routing_key=5), "Basic.Publish.routing_key"),  # type: ignore[arg-type]
        (spec.Basic.Publish(routing_key="\ud800"), "Basic.Publish.routing_key"),
        (spec.Queue.Declare(arguments=[1]), "Queue.Declare.arguments"),  # type: ignore[arg-type]
    ],
)
def test_unencodable_values(method: amqp_object.Method, field: str) -> None:
    with pytest.raises(AMQPEncodeError) as info:
        method.pack()
    assert field in str(info.value)


def test_table_errors_propagate_from_the_table_codec() -> None:
    # An unknown field type tag inside the arguments table.
    wire = bytes.fromhex("0032000A 0000 00 00 00000003 0161 5A")
    with pytest.raises(AMQPCodecError) as info:
        spec.Queue.Declare.unpack(wire, 4, len(wire))
    assert info.value.reply_code == 502


def test_garbage_raises_only_codec_errors() -> None:
    rng = random.Random(91)
    classes: list[type[amqp_object.Method] | type[amqp_object.Properties]] = [*ALL_METHODS]
    classes.append(spec.BasicProperties)
    reply_codes = set()
    decoded = 0
    for cls in classes:
        for _ in range(150):
            size = rng.randrange(0, 40)
            garbage = bytes(rng.randrange(256) for _ in range(size))
            for buf in (garbage, memoryview(bytearray(garbage))):
                # Anything but AMQPCodecError (struct.error, IndexError ...) fails the test.
                try:
                    cls.unpack(buf, 0, size)
                except AMQPCodecError as exc:
                    reply_codes.add(exc.reply_code)
                else:
                    decoded += 1
    assert reply_codes == {502}
    assert decoded > 0


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


def test_property_flags() -> None:
    flags = [flag for _, _, flag in spec.BasicProperties._PROPERTIES]
    assert flags == [1 << bit for bit in range(15, 1, -1)]
    assert spec.BasicProperties.FLAG_CONTENT_TYPE == 0x8000
    assert spec.BasicProperties.FLAG_DELIVERY_MODE == 0x1000
    assert spec.BasicProperties.FLAG_CLUSTER_ID == 0x0004
    assert (spec.BasicProperties.INDEX, spec.BasicProperties.NAME) == (60, "BasicProperties")


def test_properties_round_trip() -> None:
    props = full_props()
    packed = props.pack()
    assert packed[:2] == b"\xff\xfc"
    assert packed == props._pack_checked()
    for buf in (packed, bytearray(packed), memoryview(bytearray(b"..." + packed))[3:]):
        decoded = spec.BasicProperties.unpack(buf, 0, len(packed))
        assert decoded == props
        assert decoded.headers == props.headers
    assert spec.BasicProperties._unpack_checked(packed, 0, len(packed)) == props
    assert b"".join(props.encode()) == packed
    target = spec.BasicProperties()
    assert target.decode(packed) is target
    assert target == props


def test_properties_all_none() -> None:
    props = spec.BasicProperties()
    assert props.pack() == b"\x00\x00"
    decoded = spec.BasicProperties.unpack(b"\x00\x00", 0, 2)
    assert decoded == props
    assert all(getattr(decoded, name) is None for name, _, _ in decoded._PROPERTIES)
    assert repr(decoded) == "<BasicProperties>"


def test_properties_empty_strings_round_trip() -> None:
    props = spec.BasicProperties(content_type="", message_id="", headers={})
    packed = props.pack()
    assert packed == bytes.fromhex("A080 00 00000000 00")
    decoded = spec.BasicProperties.unpack(packed, 0, len(packed))
    assert (decoded.content_type, decoded.message_id, decoded.headers) == ("", "", {})
    assert decoded.content_encoding is None


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (spec.BasicProperties(delivery_mode=2), "1000 02"),
        (spec.BasicProperties(content_type="text/plain"), "8000 0A 746578742F706C61696E"),
        (spec.BasicProperties(timestamp=1), "0040 0000000000000001"),
        (spec.BasicProperties(priority=5, cluster_id="c"), "0804 05 0163"),
    ],
)
def test_properties_known_vectors(props: spec.BasicProperties, expected: str) -> None:
    wire = bytes.fromhex(expected)
    assert props.pack() == wire
    assert spec.BasicProperties.unpack(wire, 0, len(wire)) == props


def test_properties_delivery_mode_enum_and_timestamp_datetime() -> None:
    class DeliveryMode(enum.Enum):
        Persistent = 2

    class IntDeliveryMode(enum.IntEnum):
        Persistent = 2

    assert spec.BasicProperties(delivery_mode=DeliveryMode.Persistent).delivery_mode == 2
    stored = spec.BasicProperties(delivery_mode=IntDeliveryMode.Persistent).delivery_mode
    assert stored == 2
    assert type(stored) is int
    # Assigned after construction, the Enum is still encoded by its value.
    props = spec.BasicProperties()
    props.delivery_mode = DeliveryMode.Persistent  # type: ignore[assignment]
    assert props.pack() == b"\x10\x00\x02"
    when = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    props = spec.BasicProperties(timestamp=when)  # type: ignore[arg-type]
    assert props.pack() == spec.BasicProperties(timestamp=1_700_000_000).pack()


def test_properties_errors() -> None:
    packed = full_props().pack()
    for cut in range(len(packed)):
        with pytest.raises(AMQPCodecError) as info:
            spec.BasicProperties.unpack(packed, 0, cut)
        assert info.value.reply_code == 502
        assert "BasicProperties" in info.value.reason
    with pytest.raises(AMQPCodecError, match="trailing"):
        spec.BasicProperties.unpack(packed + b"\x00", 0, len(packed) + 1)
    bad_utf8 = bytes.fromhex("8000 01 FF")
    with pytest.raises(AMQPCodecError, match="content_type"):
        spec.BasicProperties.unpack(bad_utf8, 0, len(bad_utf8))
    with pytest.raises(AMQPEncodeError, match=r"BasicProperties\.priority"):
        spec.BasicProperties(priority=256).pack()


def test_property_flag_continuation() -> None:
    # Spec 4.2.6.1: bit 0 set means another flag word follows; an empty one is accepted.
    continued = bytes.fromhex("1001 0000 02")
    decoded = spec.BasicProperties.unpack(continued, 0, len(continued))
    assert decoded == spec.BasicProperties(delivery_mode=2)
    # A continued word that names properties basic does not have is refused.
    naming = bytes.fromhex("0001 8000")
    with pytest.raises(AMQPCodecError, match="continued flag word") as info:
        spec.BasicProperties.unpack(naming, 0, len(naming))
    assert info.value.reply_code == 502
    # So is bit 1 of the first word, which no basic property uses.
    with pytest.raises(AMQPCodecError, match="undefined"):
        spec.BasicProperties.unpack(b"\x00\x02", 0, 2)


# --------------------------------------------------------------------------------------------
# pika-compatible object behaviour
# --------------------------------------------------------------------------------------------


def test_repr_and_equality() -> None:
    publish = spec.Basic.Publish(exchange="x")
    assert repr(publish) == (
        "<Basic.Publish(['exchange=x', 'immediate=False', 'mandatory=False', "
        "'routing_key=', 'ticket=0'])>"
    )
    assert repr(spec.Tx.Select()) == "<Tx.Select>"
    props = spec.BasicProperties(delivery_mode=2, headers={"a": 1}, timestamp=5)
    assert (
        repr(props) == "<BasicProperties(['delivery_mode=2', \"headers={'a': 1}\", 'timestamp=5'])>"
    )
    assert publish == spec.Basic.Publish(exchange="x")
    assert publish != spec.Basic.Publish(exchange="y")
    assert spec.Tx.Select() != spec.Tx.Commit()
    assert spec.BasicProperties() == spec.BasicProperties()


def test_content_attachment() -> None:
    deliver = spec.Basic.Deliver("tag", 1, False, "", "rk")
    assert deliver.get_properties() is None
    assert deliver.get_body() is None
    props = spec.BasicProperties(content_type="text/plain")
    deliver._set_content(props, b"body")
    assert deliver.get_properties() is props
    assert deliver.get_body() == b"body"


def test_signatures_match_pika() -> None:
    pika_spec = pytest.importorskip("pika.spec")
    for index, cls in spec.methods.items():
        ours = inspect.signature(cls.__init__).parameters
        theirs = inspect.signature(pika_spec.methods[index].__init__).parameters
        assert list(ours) == list(theirs), cls.NAME
        for name, parameter in ours.items():
            # pika's Exchange.Declare type default is ExchangeType.direct, a str Enum.
            assert parameter.default == theirs[name].default, (cls.NAME, name)
    ours = inspect.signature(spec.BasicProperties.__init__).parameters
    theirs = inspect.signature(pika_spec.BasicProperties.__init__).parameters
    assert list(ours) == list(theirs)


def test_synchronous_matches_pika() -> None:
    pika_spec = pytest.importorskip("pika.spec")
    for index, cls in spec.methods.items():
        method = sample_method(cls)
        pika_method = pika_spec.methods[index](
            **{name: getattr(method, name) for name, _ in cls._ARGUMENTS}
        )
        assert cls.synchronous is pika_method.synchronous, cls.NAME
        assert spec.has_content(index) is pika_spec.has_content(index)


@pytest.mark.parametrize(
    "method",
    [
        spec.Basic.Publish(exchange="amq.direct", routing_key="k", mandatory=True),
        spec.Basic.Deliver("ctag", 42, True, "ex", "rk"),
        spec.Basic.Nack(delivery_tag=9, multiple=True, requeue=False),
        spec.Queue.Declare(queue="q", durable=True, arguments={"x-max-length": 10}),
        spec.Exchange.Declare(exchange="e", type="topic", internal=True),
        spec.Basic.Qos(prefetch_count=100, global_qos=True),
        spec.Connection.Tune(channel_max=2047, frame_max=131072, heartbeat=60),
        spec.Connection.StartOk(client_properties={"product": "x"}, response="\x00u\x00p"),
        spec.Channel.Close(reply_code=404, reply_text="NOT_FOUND", class_id=50, method_id=10),
        spec.Exchange.UnbindOk(),
        spec.Channel.OpenOk(channel_id=b"x"),
        spec.Connection.Secure(challenge=b"\x00\xffbinary"),
        spec.Connection.Start(server_properties={"product": "RabbitMQ"}, mechanisms=b"PLAIN"),
    ],
    ids=lambda method: method.NAME,
)
def test_wire_matches_pika(method: amqp_object.Method) -> None:
    pika_spec = pytest.importorskip("pika.spec")
    names = [name for name, _ in method._ARGUMENTS]
    pika_method = pika_spec.methods[method.INDEX](**{name: getattr(method, name) for name in names})
    packed = method.pack()
    assert packed == struct.pack(">I", method.INDEX) + b"".join(pika_method.encode())
    from_pika = pika_spec.methods[method.INDEX].__new__(pika_spec.methods[method.INDEX])
    from_pika.decode(packed, 4)
    ours = type(method).unpack(packed, 4, len(packed))
    for name, kind in method._ARGUMENTS:
        expected = getattr(method, name)
        if kind == "table" and expected is None:
            expected = {}
        if kind == "longstr" and isinstance(expected, str):
            expected = expected.encode()  # both decode long strings to bytes
        assert getattr(from_pika, name) == expected, name
        assert getattr(ours, name) == expected, name


def test_pika_update_secret_decodes_into_the_wrong_attribute() -> None:
    # A pika 1.4.4 bug (see docs/spec.md): Connection.UpdateSecret.decode stores new_secret
    # under the attribute "mechanisms". The wire bytes agree; we decode it under its name.
    pika_spec = pytest.importorskip("pika.spec")
    method = spec.Connection.UpdateSecret(new_secret=b"token", reason="expiring")
    packed = method.pack()
    pika_method = pika_spec.Connection.UpdateSecret(new_secret=b"token", reason="expiring")
    assert packed == struct.pack(">I", method.INDEX) + b"".join(pika_method.encode())
    from_pika = pika_spec.Connection.UpdateSecret.__new__(pika_spec.Connection.UpdateSecret)
    from_pika.decode(packed, 4)
    assert from_pika.mechanisms == b"token"
    assert not hasattr(from_pika, "new_secret")
    assert from_pika.reason == "expiring"
    ours = spec.Connection.UpdateSecret.unpack(packed, 4, len(packed))
    assert (ours.new_secret, ours.reason) == (b"token", "expiring")


def test_properties_wire_matches_pika() -> None:
    pika_spec = pytest.importorskip("pika.spec")
    props = full_props()
    names = [name for name, _, _ in props._PROPERTIES]
    pika_props = pika_spec.BasicProperties(**{name: getattr(props, name) for name in names})
    packed = props.pack()
    assert packed == b"".join(pika_props.encode())
    decoded = pika_spec.BasicProperties()
    decoded.decode(packed)
    for name in names:
        assert getattr(decoded, name) == getattr(props, name), name
    sparse = spec.BasicProperties(content_type="", delivery_mode=1)
    assert sparse.pack() == b"".join(
        pika_spec.BasicProperties(content_type="", delivery_mode=1).encode()
    )


# --------------------------------------------------------------------------------------------
# Per-flag-word property decoders and the short-string cache
# --------------------------------------------------------------------------------------------


def _every_property() -> spec.BasicProperties:
    return spec.BasicProperties(
        content_type="ct",
        content_encoding="ce",
        headers={"a": 1, "b": "two", "c": [1, "x"], "d": {"e": None}},
        delivery_mode=2,
        priority=9,
        correlation_id="cid",
        reply_to="rt",
        expiration="60000",
        message_id="mid",
        timestamp=1_700_000_000,
        type="t",
        user_id="guest",
        app_id="app",
        cluster_id="cl",
    )


def test_properties_decoders_match_the_checked_codec() -> None:
    full = _every_property()
    names = [name for name, _, _ in spec.BasicProperties._PROPERTIES]
    # Every single property, every pair of adjacent ones, all but one, and all.
    subsets = [[n] for n in names] + [names[i : i + 2] for i in range(len(names) - 1)]
    subsets += [[n for n in names if n != skip] for skip in names] + [names]
    for subset in subsets:
        props = spec.BasicProperties(**{n: getattr(full, n) for n in subset})
        packed = props.pack()
        flags = struct.unpack_from(">H", packed)[0]
        decoder = spec.BasicProperties._decoder(flags)
        assert decoder(spec.BasicProperties, packed, 2, len(packed)) == props
        assert spec.BasicProperties.unpack(packed, 0, len(packed)) == props
        assert spec.BasicProperties._unpack_checked(packed, 0, len(packed)) == props
        # Within a larger buffer, it reads only its bounds.
        framed = b"\xaa" * 3 + packed + b"\xbb" * 300
        assert spec.BasicProperties.unpack(framed, 3, 3 + len(packed)) == props
        for cut in range(2, len(packed)):
            # Truncated at every point (with the rest of the buffer still there).
            with pytest.raises(AMQPCodecError):
                spec.BasicProperties.unpack(framed, 3, 3 + cut)
        with pytest.raises(AMQPCodecError):
            spec.BasicProperties.unpack(packed + b"\x00", 0, len(packed) + 1)


def test_properties_decoder_for_undefined_flags_always_raises() -> None:
    for flags in (0x0001, 0x0002, 0x8003):
        with pytest.raises(ValueError, match="continued or undefined"):
            spec.BasicProperties._decoder(flags)(spec.BasicProperties, b"\x00" * 8, 0, 8)
    with pytest.raises(AMQPCodecError, match="undefined properties"):
        spec.BasicProperties.unpack(b"\x00\x02", 0, 2)


def test_properties_decoder_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec.BasicProperties, "_DECODERS", {})
    monkeypatch.setattr(amqp_object, "_DECODER_CACHE_SIZE", 2)
    for flags in (0x8000, 0x4000, 0x1000):
        assert spec.BasicProperties._decoder(flags) is not None
    assert set(spec.BasicProperties._DECODERS) == {0x8000, 0x4000}
    # Past the bound the decoder is still right, just not kept.
    packed = spec.BasicProperties(delivery_mode=1).pack()
    assert spec.BasicProperties.unpack(packed, 0, len(packed)).delivery_mode == 1


def test_properties_subclass_decodes_as_itself() -> None:
    class Mine(spec.BasicProperties):
        __slots__ = ()

    packed = spec.BasicProperties(app_id="a").pack()
    decoded = Mine.unpack(packed, 0, len(packed))
    assert type(decoded) is Mine
    assert decoded.app_id == "a"


@pytest.fixture
def empty_shortstr_cache() -> Iterator[dict[str, bytes]]:
    """The generated codec's short-string cache, emptied for the test and restored after."""
    cache = _spec_support._SHORTSTRS
    saved = dict(cache)
    cache.clear()
    yield cache
    cache.clear()
    cache.update(saved)


def test_cached_short_strings_keep_the_checked_errors_and_leniency(
    empty_shortstr_cache: dict[str, bytes],
) -> None:
    # A fresh cache (the fixture): earlier tests may have filled the shared one to its bound,
    # after which values are encoded but no longer kept.
    # A cached property or publish argument over 255 bytes is refused, naming the field.
    with pytest.raises(ShortStringTooLong, match="content_type"):
        spec.BasicProperties(content_type="c" * 256).pack()
    with pytest.raises(ShortStringTooLong, match="routing_key"):
        spec.Basic.Publish(routing_key="r" * 256).pack()
    assert "c" * 256 not in empty_shortstr_cache
    # pika's leniency: bytes for a short string, an int-like delivery mode.
    lenient = spec.BasicProperties(content_type=b"text/plain", app_id="é")  # type: ignore[arg-type]
    assert spec.BasicProperties.unpack(lenient.pack(), 0, len(lenient.pack())).content_type == (
        "text/plain"
    )
    assert spec.BasicProperties(app_id="é").pack() == b"\x00\x08\x02\xc3\xa9"
    assert empty_shortstr_cache["é"] == b"\x02\xc3\xa9"
    with pytest.raises(AMQPEncodeError, match="delivery_mode"):
        spec.BasicProperties(delivery_mode=256).pack()
    with pytest.raises(AMQPEncodeError, match="delivery_mode"):
        spec.BasicProperties(delivery_mode=-1).pack()
    assert spec.BasicProperties(delivery_mode=True).pack() == b"\x10\x00\x01"


def test_short_string_cache_is_bounded(
    monkeypatch: pytest.MonkeyPatch, empty_shortstr_cache: dict[str, bytes]
) -> None:
    monkeypatch.setattr(_spec_support, "_SHORTSTRS_SIZE", 2)
    for name in ("a", "b", "c"):
        method = spec.Basic.Publish(exchange=name, routing_key=name)
        assert method.pack() == method._pack_checked()
    assert set(empty_shortstr_cache) == {"a", "b"}


# --------------------------------------------------------------------------------------------
# Bad values in every field of every method: the documented typed errors
# --------------------------------------------------------------------------------------------

#: Per field kind: (bad value, the error it must raise, a fragment of the message).
_INTEGER_BAD: list[tuple[object, type[Exception], str]] = [
    (-1, AMQPEncodeError, "out of range"),
    (2**64, AMQPEncodeError, "out of range"),
    ("7", AMQPEncodeError, "needs an int"),
    (1.5, AMQPEncodeError, "needs an int"),
    (None, AMQPEncodeError, "is None"),
]
BAD_VALUES: dict[str, list[tuple[object, type[Exception], str]]] = {
    "octet": [(256, AMQPEncodeError, "out of range"), *_INTEGER_BAD],
    "short": [(65536, AMQPEncodeError, "out of range"), *_INTEGER_BAD],
    "long": [(2**32, AMQPEncodeError, "out of range"), *_INTEGER_BAD],
    "longlong": _INTEGER_BAD,
    "timestamp": _INTEGER_BAD,
    "shortstr": [
        ("s" * 256, ShortStringTooLong, "up to 255"),
        ("\u00e9" * 128, ShortStringTooLong, "up to 255"),
        ("\ud800", AMQPEncodeError, "UTF-8"),
        (42, AMQPEncodeError, "needs str or bytes"),
        (None, AMQPEncodeError, "is None"),
    ],
    "longstr": [
        ("\ud800", AMQPEncodeError, "UTF-8"),
        (42, AMQPEncodeError, "needs str or bytes"),
        (None, AMQPEncodeError, "is None"),
    ],
    "table": [([("k", 1)], AMQPEncodeError, "must be a mapping"), (42, AMQPEncodeError, "mapping")],
}
#: Per field kind: a value pika accepts that is not of the declared type, and its equivalent.
LENIENT_VALUES: dict[str, tuple[object, object]] = {
    "shortstr": (b"bytes", "bytes"),
    "longstr": ("text", b"text"),
    "octet": (True, 1),
    "table": ({}, None),
}


def _bad_field_cases() -> list[tuple[type[amqp_object.Method], str, str]]:
    return [
        (cls, name, kind)
        for cls in ALL_METHODS
        for name, kind in cls._ARGUMENTS
        if kind != "bit"  # a bit takes the truth of any value
    ]


@pytest.mark.parametrize(
    ("cls", "name", "kind"),
    _bad_field_cases(),
    ids=lambda value: str(getattr(value, "NAME", value)),
)
def test_every_field_refuses_bad_values_with_a_typed_error(
    cls: type[amqp_object.Method], name: str, kind: str
) -> None:
    where = f"{cls.NAME}.{name}"
    for bad, error, fragment in BAD_VALUES[kind]:
        method = sample_method(cls)
        setattr(method, name, bad)
        with pytest.raises(AMQPEncodeError) as info:
            method.pack()
        assert type(info.value) is error, (where, bad)
        assert where in str(info.value), (where, bad)
        assert fragment in str(info.value), (where, bad)
        # The checked codec, which the fast path hands over to, says the same.
        with pytest.raises(error):
            method._pack_checked()
    if kind in LENIENT_VALUES:
        lenient, equivalent = LENIENT_VALUES[kind]
        method = sample_method(cls)
        setattr(method, name, lenient)
        reference = sample_method(cls)
        setattr(reference, name, equivalent)
        assert method.pack() == reference.pack() == reference._pack_checked()


@pytest.mark.parametrize(
    "cls",
    [m for m in ALL_METHODS if any(kind == "bit" for _, kind in m._ARGUMENTS)],
    ids=method_ids,
)
def test_bits_take_the_truth_of_any_value(cls: type[amqp_object.Method]) -> None:
    bits = [name for name, kind in cls._ARGUMENTS if kind == "bit"]
    truthy = sample_method(cls)
    falsy = sample_method(cls)
    for name in bits:
        setattr(truthy, name, "yes")
        setattr(falsy, name, [])
    as_true = sample_method(cls)
    as_false = sample_method(cls)
    for name in bits:
        setattr(as_true, name, True)
        setattr(as_false, name, False)
    assert truthy.pack() == as_true.pack() == as_true._pack_checked()
    assert falsy.pack() == as_false.pack() == as_false._pack_checked()


def test_a_bit_whose_truth_fails_raises_that_error() -> None:
    class NoTruth:
        def __bool__(self) -> bool:
            raise RuntimeError("no truth value")

    for method in (spec.Confirm.Select(), spec.Basic.Ack(delivery_tag=1), spec.Channel.Flow()):
        name = next(name for name, kind in method._ARGUMENTS if kind == "bit")
        setattr(method, name, NoTruth())
        with pytest.raises(RuntimeError, match="no truth value"):
            method.pack()


# --------------------------------------------------------------------------------------------
# pika's re-exports
# --------------------------------------------------------------------------------------------


def test_spec_re_exports_delivery_mode_and_exchange_type() -> None:
    from amqp_core.delivery_mode import DeliveryMode
    from amqp_core.exchange_type import ExchangeType

    assert spec.DeliveryMode is DeliveryMode
    assert spec.ExchangeType is ExchangeType
    assert {"DeliveryMode", "ExchangeType"} <= set(spec.__all__)
    persistent: int = spec.DeliveryMode.Persistent
    transient: int = spec.DeliveryMode.Transient
    assert persistent == 2 == spec.PERSISTENT_DELIVERY_MODE
    assert transient == 1 == spec.TRANSIENT_DELIVERY_MODE
    assert spec.ExchangeType.topic == "topic"
    # Exchange.Declare's argument is called "type", as in pika.spec.
    assert "type" in inspect.signature(spec.Exchange.Declare).parameters
    declare = spec.Exchange.Declare(exchange="x", type=spec.ExchangeType.topic)
    packed = declare.pack()
    assert packed == spec.Exchange.Declare(exchange="x", type="topic").pack()
    assert b"\x05topic" in packed
    assert spec.Exchange.Declare.unpack(packed, 4, len(packed)).type == "topic"
    props = spec.BasicProperties(delivery_mode=spec.DeliveryMode.Persistent)
    assert props.pack() == b"\x10\x00\x02"


def test_spec_re_exports_match_pika() -> None:
    pika_spec = pytest.importorskip("pika.spec")
    assert {m.name: m.value for m in spec.DeliveryMode} == {
        m.name: m.value for m in pika_spec.DeliveryMode
    }
    assert {m.name: m.value for m in spec.ExchangeType} == {
        m.name: m.value for m in pika_spec.ExchangeType
    }
