"""Broken input from the peer, and the limits that protect the engine."""

from __future__ import annotations

import struct

import pytest

from amqp_core import ChannelClosed, ConnectionClosed, ConnectionState, spec
from amqp_core.exceptions import RemoteProtocolError, StreamLostError
from amqp_core.frame import encode_method_frame
from tests.engine.helpers import Pair, types


def opened(**kwargs: object) -> tuple[Pair, int]:
    pair = Pair(**kwargs)  # type: ignore[arg-type]
    pair.open()
    return pair, pair.channel()


def frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


def header(channel: int, body_size: int, class_id: int = 60) -> bytes:
    return frame(2, channel, struct.pack(">HHQ", class_id, 0, body_size) + b"\x00\x00")


def deliver(channel: int, tag: int = 1) -> bytes:
    return encode_method_frame(channel, spec.Basic.Deliver("c", tag, False, "", "q"))


def closed_with(pair: Pair, data: bytes) -> ConnectionClosed:
    pair.client.receive_data(data, 0)
    event = pair.drain()[-1]
    assert isinstance(event, ConnectionClosed), event
    assert pair.client.state is ConnectionState.CLOSED
    out = pair.client.data_to_send()
    if isinstance(event.exception, RemoteProtocolError):
        # The engine told the broker why, with Connection.Close and the same code.
        assert b"\x00\x0a\x00\x32" + struct.pack(">H", event.reply_code) in out
    return event


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(frame(1, 0, b"\x00\x0a\x00\x63") + b"junk", 540, id="unknown-method"),
        pytest.param(frame(1, 0, b"\x00"), 502, id="short-method"),
        pytest.param(frame(9, 0, b""), 501, id="unknown-frame-type"),
        pytest.param(frame(8, 1, b""), 501, id="heartbeat-on-channel-1"),
        pytest.param(frame(1, 0, b"\x00\x00")[:-1] + b"\x00", 501, id="bad-frame-end"),
        pytest.param(struct.pack(">BHI", 3, 1, 200_000), 501, id="frame-over-frame-max"),
        pytest.param(header(1, 5), 505, id="header-without-method"),
        pytest.param(frame(3, 1, b"abc"), 505, id="body-without-header"),
        pytest.param(deliver(1) + frame(3, 1, b"abc"), 505, id="body-before-header"),
        pytest.param(deliver(1) + deliver(1), 505, id="method-during-content"),
        pytest.param(deliver(1) + header(1, 5) + header(1, 5), 505, id="second-header"),
        pytest.param(deliver(1) + header(1, 2) + frame(3, 1, b"abc"), 501, id="body-too-long"),
        pytest.param(
            deliver(1) + header(1, 2, class_id=50), 540, id="header-class-without-content"
        ),
        pytest.param(deliver(5), 504, id="method-on-unknown-channel"),
        pytest.param(header(5, 0), 505, id="header-on-unknown-channel"),
        pytest.param(
            encode_method_frame(1, spec.Queue.DeclareOk("q", 0, 0)), 503, id="unsolicited-reply"
        ),
        pytest.param(encode_method_frame(1, spec.Channel.OpenOk()), 503, id="open-ok-when-open"),
        pytest.param(encode_method_frame(1, spec.Basic.Publish()), 503, id="publish-from-broker"),
        pytest.param(encode_method_frame(0, spec.Basic.Qos()), 503, id="basic-on-channel-0"),
        pytest.param(encode_method_frame(0, spec.Connection.OpenOk()), 503, id="second-open-ok"),
        pytest.param(
            encode_method_frame(0, spec.Connection.CloseOk()), 503, id="close-ok-not-closing"
        ),
    ],
)
def test_protocol_errors_close_the_connection(data: bytes, code: int) -> None:
    pair, _ = opened()
    event = closed_with(pair, data)
    assert event.reply_code == code
    assert isinstance(event.exception, RemoteProtocolError)
    assert event.exception.reply_code == code
    # Everything after is ignored.
    pair.client.receive_data(deliver(1), 1)
    assert pair.drain() == []


def test_error_names_method_class_and_id() -> None:
    pair, _ = opened()
    event = closed_with(pair, encode_method_frame(1, spec.Queue.DeclareOk("q", 0, 0)))
    assert (event.class_id, event.method_id) == (50, 11)
    assert "Queue.DeclareOk" in event.reply_text


def test_method_on_opening_channel() -> None:
    pair = Pair()
    pair.open()
    pair.client.open_channel()
    event = closed_with(pair, encode_method_frame(1, spec.Basic.QosOk()))
    assert event.reply_code == 503
    assert "OPENING" in event.reply_text


def test_channel_method_during_handshake() -> None:
    pair = Pair()
    pair.client.receive_data(encode_method_frame(0, spec.Connection.Start()), 0)
    event = closed_with(pair, encode_method_frame(1, spec.Channel.OpenOk()))
    assert event.reply_code == 504


def test_frames_for_closing_channel_are_discarded() -> None:
    pair, ch = opened()
    pair.client.close_channel(ch)
    pair.client.receive_data(deliver(ch) + header(ch, 3) + frame(3, ch, b"abc"), 0)
    pair.client.receive_data(encode_method_frame(ch, spec.Channel.CloseOk()), 0)
    assert types(pair.drain()) == ["ChannelClosed"]


def test_frames_while_connection_closing_are_discarded() -> None:
    pair, ch = opened()
    pair.client.close()
    pair.client.receive_data(deliver(ch) + header(ch, 3) + frame(3, ch, b"abc"), 0)
    pair.client.receive_data(encode_method_frame(0, spec.Connection.Blocked("x")), 0)
    assert pair.drain() == []
    pair.client.receive_data(encode_method_frame(0, spec.Connection.CloseOk()), 0)
    assert types(pair.drain()) == ["ConnectionClosed"]


def test_message_over_max_message_size_closes_the_channel_cleanly() -> None:
    pair, ch = opened(max_message_size=1000)
    pair.client.send_method(ch, spec.Queue.Declare(queue="q"))
    pair.pump()
    pair.broker.enqueue("q", b"x" * 1001)
    pair.broker.enqueue("q", b"small")
    pair.client.consume(ch, "q")
    events = pair.pump()
    assert types(events) == ["MethodReceived", "ChannelClosed"]
    closed = events[-1]
    assert isinstance(closed, ChannelClosed)
    assert (closed.reply_code, closed.class_id, closed.method_id, closed.by_broker) == (
        311,
        60,
        60,
        False,
    )
    # The connection survives and the message is still in the broker's queue, requeued.
    assert pair.client.is_open
    assert pair.broker.queues["q"].messages[0].body == b"x" * 1001


def test_frame_max_zero_still_bounds_incoming_frames() -> None:
    from amqp_core.testing.peer import FakeBroker

    pair = Pair(broker=FakeBroker(frame_max=0), frame_max=0, max_message_size=10_000)
    pair.open()
    assert pair.client.tune_parameters is not None
    assert pair.client.tune_parameters.frame_max == 0
    event = closed_with(pair, struct.pack(">BHI", 3, 1, 20_000))
    assert event.reply_code == 501


def test_receive_buffer_holds_at_most_one_partial_frame() -> None:
    pair, ch = opened()
    data = deliver(ch) + header(ch, 3) + frame(3, ch, b"abc")
    pair.client.receive_data(data + data[:10], 0)
    assert len(pair.client._buf) == 10
    pair.client.receive_data(data[10:], 0)
    assert len(pair.client._buf) == 0
    assert types(pair.drain()) == ["MessageDelivered", "MessageDelivered"]


def test_stream_lost_mid_frame_and_mid_message() -> None:
    pair, ch = opened()
    pair.client.receive_data(deliver(ch)[:5], 0)
    pair.client.receive_data(b"", 0)
    event = pair.drain()[-1]
    assert isinstance(event, ConnectionClosed)
    assert isinstance(event.exception, StreamLostError)
    assert "middle of a frame" in event.reply_text

    pair, ch = opened()
    pair.client.receive_data(deliver(ch), 0)
    pair.client.receive_data(b"", 0)
    event = pair.drain()[-1]
    assert isinstance(event, ConnectionClosed)
    assert "middle of a message" in event.reply_text

    pair, ch = opened()
    pair.client.receive_data(b"", 0)
    event = pair.drain()[-1]
    assert isinstance(event, ConnectionClosed)
    assert event.reply_text == "the connection was lost"


def test_long_error_text_is_truncated_for_the_wire() -> None:
    pair, _ = opened()
    pair.client._fail(541, "é" * 300)
    out = pair.client.data_to_send()
    method = spec.Connection.Close.unpack(out, 11, len(out) - 1)
    assert len(method.reply_text.encode()) <= 255
