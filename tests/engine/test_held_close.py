"""A Close (or the end of the stream) behind unread events waits for them.

The engine parses a whole read at once. Were a ``Connection.Close`` or ``Channel.Close`` at
the end of a read to take effect at once, an ack made in the callback of a delivery from the
same read would be refused because of a Close the application has not seen yet.
"""

from __future__ import annotations

from amqp_core import (
    NEED_DATA,
    ChannelClosed,
    ConnectionClosed,
    ConnectionState,
    MessageDelivered,
    spec,
)
from amqp_core.exceptions import ConnectionClosedByBroker
from amqp_core.frame import encode_method_frame
from tests.engine.helpers import Pair, types

FORCED = encode_method_frame(0, spec.Connection.Close(320, "CONNECTION_FORCED", 0, 0))


def consuming(channels: int = 1) -> tuple[Pair, list[int]]:
    """An open pair with ``channels`` channels, each consuming its own queue."""
    pair = Pair()
    pair.open()
    ids = []
    for index in range(channels):
        channel_id = pair.channel()
        pair.client.send_method(channel_id, spec.Queue.Declare(queue=f"q{index}"))
        pair.client.send_method(channel_id, spec.Basic.Consume(queue=f"q{index}"))
        pair.pump()
        ids.append(channel_id)
    return pair, ids


def deliveries(pair: Pair, channel_id: int, count: int) -> bytes:
    """What the broker sends for ``count`` messages published on ``channel_id``'s queue."""
    queue = f"q{pair.client.channel_ids.index(channel_id)}"
    for number in range(count):
        pair.client.publish(channel_id, "", queue, b"m%d" % number)
    pair.broker.receive_data(pair.client.data_to_send())
    data = pair.broker.data_to_send()
    assert data
    return data


def test_acks_made_before_the_connection_close_is_taken_are_accepted() -> None:
    pair, (channel_id,) = consuming()
    pair.client.receive_data(deliveries(pair, channel_id, 3) + FORCED, 0)
    for _ in range(3):
        event = pair.client.next_event()
        assert isinstance(event, MessageDelivered)
        assert pair.client.is_open
        pair.client.ack(channel_id, event.delivery_tag)  # not refused
    # Bytes after the held Close wait behind it, and are dropped once it took effect.
    pair.client.receive_data(encode_method_frame(channel_id, spec.Basic.Cancel("x")), 0)
    closed = pair.client.next_event()
    assert isinstance(closed, ConnectionClosed)
    assert isinstance(closed.exception, ConnectionClosedByBroker)
    assert pair.client.state is ConnectionState.CLOSED
    assert pair.client.next_event() is NEED_DATA
    out = pair.client.data_to_send()
    assert out.count(encode_method_frame(channel_id, spec.Basic.Ack(0, False))[:7]) == 3
    assert out.endswith(encode_method_frame(0, spec.Connection.CloseOk()))


def test_a_channel_close_waits_and_what_follows_keeps_its_order() -> None:
    pair, (first, second, third) = consuming(3)
    closes = b"".join(
        encode_method_frame(channel_id, spec.Channel.Close(406, "PRECONDITION_FAILED", 60, 80))
        for channel_id in (first, second)
    )
    pair.client.receive_data(deliveries(pair, first, 2) + closes, 0)
    # Fed while the first Close is held: parsed after both Closes, in order.
    pair.client.receive_data(deliveries(pair, third, 1), 0)
    events = pair.drain()
    assert types(events) == [
        "MessageDelivered",
        "MessageDelivered",
        "ChannelClosed",
        "ChannelClosed",
        "MessageDelivered",
    ]
    channel_ids = [
        event.channel_id for event in events if isinstance(event, (MessageDelivered, ChannelClosed))
    ]
    assert channel_ids == [first, first, first, second, third]
    assert pair.client.is_open


def test_acks_made_before_the_end_of_the_stream_is_taken_are_accepted() -> None:
    pair, (channel_id,) = consuming()
    pair.client.receive_data(deliveries(pair, channel_id, 2), 0)
    pair.client.receive_data(b"", 0)
    for _ in range(2):
        event = pair.client.next_event()
        assert isinstance(event, MessageDelivered)
        pair.client.ack(channel_id, event.delivery_tag)
    lost = pair.client.next_event()
    assert isinstance(lost, ConnectionClosed)
    assert "lost" in lost.reply_text
    assert pair.client.next_event() is NEED_DATA


def test_the_end_of_the_stream_behind_a_held_close_adds_nothing() -> None:
    pair, (channel_id,) = consuming()
    pair.client.receive_data(deliveries(pair, channel_id, 1) + FORCED, 0)
    pair.client.receive_data(b"", 0)
    events = pair.drain()
    assert types(events) == ["MessageDelivered", "ConnectionClosed"]
    closed = events[-1]
    assert isinstance(closed, ConnectionClosed)
    assert closed.reply_code == 320


def test_a_close_with_nothing_unread_takes_effect_at_once() -> None:
    pair, _ids = consuming()
    pair.client.receive_data(FORCED, 0)
    assert pair.client.state is ConnectionState.CLOSED
    assert types(pair.drain()) == ["ConnectionClosed"]
