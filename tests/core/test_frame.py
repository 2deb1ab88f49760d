"""Tests of the frame codec: encoding, incremental parsing, and every malformed-frame error."""

from __future__ import annotations

import struct
from typing import Any

import pika.frame
import pytest

from amqp_core import frame, spec
from amqp_core.exceptions import (
    AMQPCodecError,
    AMQPEncodeError,
    InvalidFrameError,
    ProtocolVersionMismatch,
)


def _raw_frame(frame_type: int, channel: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes((end,))


def _deliver_message(body: bytes = b"x" * 64, frame_max: int = 131072) -> bytes:
    deliver = spec.Basic.Deliver(
        consumer_tag="ctag1", delivery_tag=7, redelivered=True, exchange="ex", routing_key="rk"
    )
    props = spec.BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        headers={"a": 1, "b": "two", "c": True},
        message_id="m-1",
    )
    method = frame.encode_method_frame(1, deliver)
    return b"".join(
        bytes(piece) for piece in frame.encode_message(1, method, props, body, frame_max)
    )


def _parse_all(data: bytes, frame_max: int = 0) -> list[frame.Frame]:
    frames: list[frame.Frame] = []
    offset = 0
    while True:
        parsed = frame.parse_frame(data, offset, len(data), frame_max)
        if parsed is None:
            break
        found, offset = parsed
        frames.append(found)
    assert offset == len(data)
    return frames


def test_method_frame_round_trip() -> None:
    method = spec.Queue.Declare(queue="q1", durable=True, arguments={"x-max-length": 10})
    wire = frame.Method(3, method).marshal()
    assert wire[:1] == b"\x01"
    assert struct.unpack_from(">H", wire, 1) == (3,)
    assert wire[-1] == 0xCE
    parsed = frame.parse_frame(wire)
    assert parsed is not None
    found, consumed = parsed
    assert consumed == len(wire)
    assert isinstance(found, frame.Method)
    assert found.channel_number == 3
    assert found.method == method
    assert found == frame.Method(3, method)


def test_message_frames_round_trip() -> None:
    frames = _parse_all(_deliver_message())
    assert [type(f) for f in frames] == [frame.Method, frame.Header, frame.Body]
    header = frames[1]
    assert isinstance(header, frame.Header)
    assert header.body_size == 64
    assert isinstance(header.properties, spec.BasicProperties)
    assert header.properties.headers == {"a": 1, "b": "two", "c": True}
    body = frames[2]
    assert isinstance(body, frame.Body)
    assert body.fragment == b"x" * 64
    assert (
        frame.Header(1, 64, header.properties).marshal()
        == _deliver_message()[
            len(frames[0].marshal()) : len(frames[0].marshal()) + len(header.marshal())
        ]
    )


def test_empty_body_has_no_body_frame() -> None:
    frames = _parse_all(_deliver_message(body=b""))
    assert [type(f) for f in frames] == [frame.Method, frame.Header]


def test_large_body_is_split_at_frame_max_without_copy() -> None:
    body = bytes(range(256)) * 100  # 25,600 bytes
    method = frame.encode_method_frame(1, spec.Basic.Publish(exchange="", routing_key="q"))
    pieces = frame.encode_message(1, method, spec.BasicProperties(), body, 4096)
    assert any(isinstance(piece, memoryview) for piece in pieces)
    frames = _parse_all(b"".join(bytes(p) for p in pieces), frame_max=4096)
    fragments = [f.fragment for f in frames if isinstance(f, frame.Body)]
    assert all(len(f) == 4096 - 8 for f in fragments[:-1])
    assert b"".join(fragments) == body


def test_body_over_join_limit_is_referenced_not_copied() -> None:
    body = bytearray(200_000)
    method = frame.encode_method_frame(1, spec.Basic.Publish())
    pieces = frame.encode_message(1, method, spec.BasicProperties(), body, 0)
    views = [p for p in pieces if isinstance(p, memoryview)]
    assert len(views) == 1
    assert views[0].obj is body


def test_frame_max_below_minimum_is_refused() -> None:
    method = frame.encode_method_frame(1, spec.Basic.Publish())
    with pytest.raises(ValueError, match="frame_max"):
        frame.encode_message(1, method, spec.BasicProperties(), b"x", 100)


def test_heartbeat() -> None:
    wire = frame.Heartbeat().marshal()
    assert wire == b"\x08\x00\x00\x00\x00\x00\x00\xce"
    assert frame.encode_heartbeat() == wire
    parsed = frame.parse_frame(wire)
    assert parsed is not None
    assert isinstance(parsed[0], frame.Heartbeat)


@pytest.mark.parametrize(
    "wire",
    [
        _raw_frame(8, 1, b""),  # heartbeat off channel 0
        _raw_frame(8, 0, b"x"),  # heartbeat with a payload
    ],
)
def test_bad_heartbeat_is_frame_error(wire: bytes) -> None:
    with pytest.raises(InvalidFrameError) as caught:
        frame.parse_frame(wire)
    assert caught.value.reply_code == 501


def test_need_more_at_every_split() -> None:
    wire = _deliver_message()
    first_end = len(
        frame.encode_method_frame(
            1,
            spec.Basic.Deliver(
                consumer_tag="ctag1",
                delivery_tag=7,
                redelivered=True,
                exchange="ex",
                routing_key="rk",
            ),
        )
    )
    for cut in range(first_end):
        assert frame.parse_frame(wire[:cut]) is None
        # The same holds when the buffer is bigger but ``end`` says what has arrived.
        assert frame.parse_frame(wire, 0, cut) is None


def test_parses_from_memoryview_over_bytearray() -> None:
    buf = bytearray(b"junk" + _deliver_message())
    view = memoryview(buf)
    try:
        parsed = frame.parse_frame(view, 4, len(buf))
        assert parsed is not None
        assert isinstance(parsed[0], frame.Method)
    finally:
        view.release()


def test_wrong_frame_end_is_frame_error() -> None:
    with pytest.raises(InvalidFrameError) as caught:
        frame.parse_frame(_raw_frame(1, 0, b"\x00\x0a\x00\x33", end=0xCD))
    assert caught.value.reply_code == 501
    assert "0xcd" in str(caught.value)


def test_frame_over_frame_max_is_refused_from_its_header() -> None:
    header_only = struct.pack(">BHI", 3, 1, 5000)
    with pytest.raises(InvalidFrameError) as caught:
        frame.parse_frame(header_only, frame_max=4096)
    assert caught.value.reply_code == 501
    assert "frame_max" in str(caught.value)


def test_unknown_frame_type() -> None:
    with pytest.raises(InvalidFrameError, match="unknown frame type 9"):
        frame.parse_frame(_raw_frame(9, 0, b""))


def test_unknown_method_is_not_implemented() -> None:
    with pytest.raises(AMQPCodecError) as caught:
        frame.parse_frame(_raw_frame(1, 0, struct.pack(">HH", 60, 999)))
    assert caught.value.reply_code == 540


def test_method_payload_without_id() -> None:
    with pytest.raises(AMQPCodecError) as caught:
        frame.parse_frame(_raw_frame(1, 0, b"\x00\x3c"))
    assert caught.value.reply_code == 502


def test_truncated_method_arguments() -> None:
    good = spec.Basic.Deliver(
        consumer_tag="c", delivery_tag=1, exchange="e", routing_key="r"
    ).pack()
    for cut in range(4, len(good)):
        with pytest.raises(AMQPCodecError) as caught:
            frame.parse_frame(_raw_frame(1, 1, good[:cut]))
        assert caught.value.reply_code == 502


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\x00\x3c\x00\x00", 502),  # shorter than class + weight + size
        (struct.pack(">HHQ", 60, 1, 0) + b"\x00\x00", 502),  # non-zero weight
        (struct.pack(">HHQ", 50, 0, 0) + b"\x00\x00", 540),  # queue class has no content
        (struct.pack(">HHQ", 60, 0, 0) + b"\x80\x00", 502),  # content_type flag, no value
    ],
)
def test_bad_content_header(payload: bytes, code: int) -> None:
    with pytest.raises(AMQPCodecError) as caught:
        frame.parse_frame(_raw_frame(2, 1, payload))
    assert caught.value.reply_code == code


def test_protocol_header() -> None:
    assert frame.ProtocolHeader().marshal() == frame.PROTOCOL_HEADER
    assert frame.parse_protocol_header(frame.PROTOCOL_HEADER) == frame.ProtocolHeader(0, 9, 1)
    assert frame.parse_protocol_header(b"AMQP\x00\x00") is None
    assert frame.decode_frame(b"AMQP\x00\x00\x09\x01rest") == (8, frame.ProtocolHeader(0, 9, 1))
    assert frame.decode_frame(b"AMQP\x00") == (0, None)
    with pytest.raises(ProtocolVersionMismatch):
        frame.parse_protocol_header(b"HTTP/1.1 400")
    with pytest.raises(ProtocolVersionMismatch):
        frame.parse_protocol_header(b"GET")
    with pytest.raises(ProtocolVersionMismatch):
        frame.parse_protocol_header(b"AMQP\x01\x01\x00\x0a")


def test_decode_frame_is_pika_shaped() -> None:
    wire = _deliver_message()
    consumed, found = frame.decode_frame(wire)
    assert isinstance(found, frame.Method)
    assert isinstance(found.method, spec.Basic.Deliver)
    consumed2, found2 = frame.decode_frame(wire, consumed)
    assert isinstance(found2, frame.Header)
    assert consumed2 > 0
    assert frame.decode_frame(wire[:5]) == (0, None)


def test_repr_and_equality() -> None:
    body = frame.Body(2, b"abc")
    assert repr(body) == "<Body(channel_number=2, frame_type=3, fragment=b'abc')>"
    assert body == frame.Body(2, b"abc")
    assert body != frame.Body(2, b"abd")
    assert body != "Body"
    assert frame.ProtocolHeader() != "header"
    assert repr(frame.ProtocolHeader()) == "<ProtocolHeader(0-9-1)>"
    with pytest.raises(NotImplementedError):
        frame.Frame(1, 0).marshal()


def test_pika_reads_our_frames() -> None:
    wire = _deliver_message()
    offset = 0
    decoded = []
    while offset < len(wire):
        consumed, found = pika.frame.decode_frame(wire[offset:])
        assert consumed
        decoded.append(found)
        offset += consumed
    assert decoded[0].method.consumer_tag == "ctag1"
    assert decoded[0].method.delivery_tag == 7
    assert decoded[1].properties.message_id == "m-1"
    assert decoded[1].properties.headers["b"] == "two"
    assert decoded[2].fragment == b"x" * 64


# --------------------------------------------------------------------------------------------
# decode_content / encode_content: whole messages in one call
# --------------------------------------------------------------------------------------------


def _delivery(
    channel: int = 1, body: bytes = b"x" * 64, frame_max: int = 131072, **props: Any
) -> tuple[bytes, spec.Basic.Deliver, spec.BasicProperties]:
    method = spec.Basic.Deliver(
        consumer_tag="ctag", delivery_tag=7, redelivered=True, exchange="ex", routing_key="rk"
    )
    properties = spec.BasicProperties(**props)
    pieces = frame.encode_message(
        channel, frame.encode_method_frame(channel, method), properties, body, frame_max
    )
    return b"".join(bytes(p) for p in pieces), method, properties


def _frame_by_frame(buf: bytes) -> tuple[object, object, bytes, int]:
    """Decode one message with the per-frame functions, as an engine's slow path does."""
    located = frame.parse_frame_header(buf, 0, len(buf))
    assert located is not None
    method = frame.decode_method_payload(buf, located[2], located[3])
    located = frame.parse_frame_header(buf, located[3] + 1, len(buf))
    assert located is not None
    _, body_size, props = frame.decode_header_payload(buf, located[2], located[3])
    offset = located[3] + 1
    body = b""
    while len(body) < body_size:
        located = frame.parse_frame_header(buf, offset, len(buf))
        assert located is not None
        body += buf[located[2] : located[3]]
        offset = located[3] + 1
    return method, props, body, offset


@pytest.mark.parametrize(
    ("body", "frame_max", "props"),
    [
        (
            b"x" * 64,
            131072,
            {
                "content_type": "application/json",
                "delivery_mode": 2,
                "headers": {"a": 1, "b": "s", "c": True},
                "message_id": "m",
            },
        ),
        (b"", 131072, {"delivery_mode": 1}),
        (b"y" * 10000, 4096, {"timestamp": 5, "priority": 3, "app_id": "app"}),
        (b"z" * 4088, 4096, {}),
        (b"z" * 4089, 4096, {"headers": {}}),
    ],
)
def test_decode_content_equals_frame_by_frame(
    body: bytes, frame_max: int, props: dict[str, Any]
) -> None:
    wire, method, properties = _delivery(body=body, frame_max=frame_max, **props)
    expected = _frame_by_frame(wire)
    for buf in (wire, bytearray(wire), memoryview(wire), memoryview(bytearray(wire))):
        decoded = frame.decode_content(buf, 0, len(wire), frame_max)
        assert decoded is not None
        channel, got_method, got_props, got_body, next_offset = decoded
        assert channel == 1
        assert (got_method, got_props, got_body, next_offset) == expected
        assert (got_method, got_props, got_body) == (method, properties, body)
        assert type(got_body) is bytes


def test_decode_content_at_an_offset_in_a_stream() -> None:
    wire, _, _ = _delivery(content_type="t", headers={"k": "v"})
    stream = b"\xff" * 5 + wire * 3 + frame.encode_heartbeat()
    offset = 5
    for _ in range(3):
        decoded = frame.decode_content(stream, offset, len(stream), 0)
        assert decoded is not None
        offset = decoded[4]
    assert offset == len(stream) - 8
    assert frame.decode_content(stream, offset, len(stream), 0) is None  # a heartbeat


def test_decode_content_needs_every_byte() -> None:
    wire, _, _ = _delivery(body=b"b" * 300, frame_max=4096, headers={"k": 1})
    for cut in range(len(wire)):
        # "Need more bytes": also when the bytes past ``end`` are there in the buffer.
        assert frame.decode_content(wire, 0, cut, 4096) is None
        assert frame.decode_content(wire[:cut], 0, cut, 4096) is None
    assert frame.decode_content(wire, 0, len(wire), 4096) is not None


def test_decode_content_declines_what_it_does_not_handle() -> None:
    wire, _, _ = _delivery(channel=1, body=b"abc")
    other, _, _ = _delivery(channel=2, body=b"abc")
    ack = frame.encode_method_frame(1, spec.Basic.Ack(delivery_tag=1))
    assert frame.decode_content(ack + wire, 0, len(ack) + len(wire)) is None
    # A frame of another channel between the method and the header: frame by frame.
    method_len = frame.parse_frame_header(wire, 0, len(wire))[3] + 1  # type: ignore[index]
    interleaved = wire[:method_len] + other + wire[method_len:]
    assert frame.decode_content(interleaved, 0, len(interleaved)) is None
    # Body frames larger than the body size the header announced.
    header_end = frame.parse_frame_header(wire, method_len, len(wire))[3]  # type: ignore[index]
    longer = bytearray(wire)
    struct.pack_into(">I", longer, header_end + 4, 4)
    longer[header_end + 11 : header_end + 11] = b"d"
    assert frame.decode_content(bytes(longer), 0, len(longer)) is None


@pytest.mark.parametrize(
    "mutate",
    [
        "method end octet",
        "header end octet",
        "body end octet",
        "header weight",
        "header class",
        "frame_max",
    ],
)
def test_decode_content_leaves_bad_framing_to_the_per_frame_path(mutate: str) -> None:
    wire, _, _ = _delivery(body=b"abc", content_type="t")
    method_end = frame.parse_frame_header(wire, 0, len(wire))[3]  # type: ignore[index]
    header_end = frame.parse_frame_header(wire, method_end + 1, len(wire))[3]  # type: ignore[index]
    buf = bytearray(wire)
    frame_max = 0
    if mutate == "method end octet":
        buf[method_end] = 0
    elif mutate == "header end octet":
        buf[header_end] = 0
    elif mutate == "body end octet":
        buf[-1] = 0
    elif mutate == "header weight":
        buf[method_end + 10] = 1
    elif mutate == "header class":
        buf[method_end + 9] = 50
    else:
        frame_max = method_end  # the method frame is one byte too long for it
    assert frame.decode_content(bytes(buf), 0, len(buf), frame_max) is None
    with pytest.raises(AMQPCodecError):
        _walk_frames(bytes(buf), frame_max)


def _walk_frames(buf: bytes, frame_max: int) -> None:
    """Parse every frame of ``buf`` the slow way, decoding content headers."""
    offset = 0
    while offset < len(buf):
        located = frame.parse_frame_header(buf, offset, len(buf), frame_max)
        assert located is not None
        if located[0] == spec.FRAME_HEADER:
            frame.decode_header_payload(buf, located[2], located[3])
        offset = located[3] + 1


def test_decode_content_raises_on_malformed_payloads() -> None:
    wire, _, _ = _delivery(body=b"abc", headers={"k": "v"})
    method_end = frame.parse_frame_header(wire, 0, len(wire))[3]  # type: ignore[index]
    # The consumer tag's length runs past the method frame.
    bad_method = bytearray(wire)
    bad_method[11] = 200
    with pytest.raises(AMQPCodecError) as info:
        frame.decode_content(bytes(bad_method), 0, len(bad_method))
    assert type(info.value) is AMQPCodecError
    assert info.value.reply_code == 502
    # The headers table's length runs past the content header.
    bad_props = bytearray(wire)
    struct.pack_into(">I", bad_props, method_end + 1 + 7 + 14, 1000)
    with pytest.raises(AMQPCodecError) as info:
        frame.decode_content(bytes(bad_props), 0, len(bad_props))
    assert info.value.reply_code == 502
    assert "headers" in str(info.value)
    # A property flag no property has.
    bad_flags = bytearray(wire)
    bad_flags[method_end + 1 + 7 + 13] |= 0x02
    with pytest.raises(AMQPCodecError):
        frame.decode_content(bytes(bad_flags), 0, len(bad_flags))


def test_decode_content_takes_a_continued_flag_word() -> None:
    wire, _, properties = _delivery(body=b"abc", delivery_mode=2)
    method_end = frame.parse_frame_header(wire, 0, len(wire))[3]  # type: ignore[index]
    buf = bytearray(wire)
    flags_at = method_end + 1 + 7 + 12
    buf[flags_at + 1] |= 0x01  # another flag word follows: an empty one
    buf[flags_at + 2 : flags_at + 2] = b"\x00\x00"
    struct.pack_into(">I", buf, method_end + 4, 2 + 14 + 1)
    decoded = frame.decode_content(bytes(buf), 0, len(buf))
    assert decoded is not None
    assert decoded[2] == properties


@pytest.mark.parametrize(
    ("body", "frame_max"),
    [(b"", 131072), (b"x" * 64, 131072), (b"x" * 64, 0), (b"y" * 5000, 4096), (b"z" * 70000, 0)],
)
def test_encode_content_equals_encode_message(body: bytes, frame_max: int) -> None:
    method = spec.Basic.Publish(exchange="amq.direct", routing_key="bench", mandatory=True)
    props = spec.BasicProperties(content_type="application/json", headers={"a": 1}, message_id="m")
    fused = frame.encode_content(3, method, props, body, frame_max)
    pieces = frame.encode_message(3, frame.encode_method_frame(3, method), props, body, frame_max)
    assert b"".join(bytes(p) for p in fused) == b"".join(bytes(p) for p in pieces)
    assert len(fused) == len(pieces)


def test_encode_content_refuses() -> None:
    props = spec.BasicProperties()
    with pytest.raises(ValueError, match="does not carry content"):
        frame.encode_content(1, spec.Basic.Ack(), props, b"", 0)
    with pytest.raises(ValueError, match="below the minimum"):
        frame.encode_content(1, spec.Basic.Publish(), props, b"x", 100)
    with pytest.raises(AMQPEncodeError):
        frame.encode_content(1, spec.Basic.Publish(exchange="e" * 256), props, b"x", 0)


def test_decode_content_needs_every_byte_of_a_split_body() -> None:
    # A body in three frames: every cut short of the last byte waits for more.
    wire, method, properties = _delivery(body=b"s" * 10000, frame_max=4096, app_id="a")
    for cut in range(len(wire)):
        assert frame.decode_content(wire, 0, cut, 4096) is None
        assert frame.decode_content(memoryview(wire)[:cut], 0, cut, 4096) is None
    decoded = frame.decode_content(wire, 0, len(wire), 4096)
    assert decoded is not None
    assert decoded[1:] == (method, properties, b"s" * 10000, len(wire))


def _body_frame_starts(wire: bytes) -> list[int]:
    starts = []
    offset = 0
    while offset < len(wire):
        located = frame.parse_frame_header(wire, offset, len(wire))
        assert located is not None
        if located[0] == spec.FRAME_BODY:
            starts.append(offset)
        offset = located[3] + 1
    return starts


@pytest.mark.parametrize(
    "mutate", ["frame type", "channel", "end octet", "over frame_max", "over body size"]
)
def test_decode_content_leaves_a_bad_later_body_frame_to_the_per_frame_path(mutate: str) -> None:
    wire, _, _ = _delivery(body=b"s" * 10000, frame_max=4096)
    second = _body_frame_starts(wire)[1]
    buf = bytearray(wire)
    frame_max = 4096
    if mutate == "frame type":
        buf[second] = spec.FRAME_METHOD
    elif mutate == "channel":
        buf[second + 2] = 2
    elif mutate == "end octet":
        size = struct.unpack_from(">I", buf, second + 3)[0]
        buf[second + 7 + size] = 0
    elif mutate == "over frame_max":
        frame_max = 4095  # the body frames fill 4096 bytes: one too many now
    else:
        # The second frame claims more bytes than the body has left.
        struct.pack_into(">I", buf, second + 3, 10000)
    assert frame.decode_content(bytes(buf), 0, len(buf), frame_max) is None
    if mutate in ("frame type", "channel"):
        # Sound framing: the per-frame path hands the frame over as it is, for the engine to
        # judge (a method frame inside content, or a frame of another channel).
        located = frame.parse_frame_header(bytes(buf), second, len(buf), frame_max)
        assert located is not None
        assert located[:2] == (
            (spec.FRAME_METHOD, 1) if mutate == "frame type" else (spec.FRAME_BODY, 2)
        )
    else:
        with pytest.raises(InvalidFrameError) as info:
            _walk_frames(bytes(buf), frame_max)
        assert info.value.reply_code == 501


def test_decode_content_leaves_a_bad_empty_message_to_the_per_frame_path() -> None:
    # No body frame: the content header's end octet is the last byte of the message.
    wire, method, properties = _delivery(body=b"", delivery_mode=2)
    decoded = frame.decode_content(wire, 0, len(wire))
    assert decoded is not None
    assert decoded[1:] == (method, properties, b"", len(wire))
    bad = bytearray(wire)
    bad[-1] = 0
    assert frame.decode_content(bytes(bad), 0, len(bad)) is None
    with pytest.raises(InvalidFrameError) as info:
        _walk_frames(bytes(bad), 0)
    assert info.value.reply_code == 501


@pytest.mark.parametrize(
    ("body", "frame_max"),
    [
        (b"", 131072),
        (b"x" * 64, 131072),
        (b"x" * 64, 0),
        (bytearray(b"b" * 100), 4096),
        (b"y" * 4088, 4096),  # exactly one full frame
        (b"y" * 4089, 4096),  # one byte over: two body frames
        (b"z" * 70000, 0),
    ],
)
def test_encode_message_without_properties(body: bytes, frame_max: int) -> None:
    # None means an empty BasicProperties: the same frames, and the same pieces.
    method = frame.encode_method_frame(2, spec.Basic.Publish(exchange="", routing_key="q"))
    bare = frame.encode_message(2, method, None, body, frame_max)
    empty = frame.encode_message(2, method, spec.BasicProperties(), body, frame_max)
    assert b"".join(bytes(p) for p in bare) == b"".join(bytes(p) for p in empty)
    assert [type(p) for p in bare] == [type(p) for p in empty]
    frames = _parse_all(b"".join(bytes(p) for p in bare), frame_max)
    header = frames[1]
    assert isinstance(header, frame.Header)
    assert header.body_size == len(body)
    assert header.properties == spec.BasicProperties()
    assert b"".join(f.fragment for f in frames[2:] if isinstance(f, frame.Body)) == body


def test_encode_message_without_properties_refuses_small_frame_max() -> None:
    method = frame.encode_method_frame(1, spec.Basic.Publish())
    with pytest.raises(ValueError, match="frame_max"):
        frame.encode_message(1, method, None, b"x", 100)
