"""Publishing, consuming, getting, acknowledging, confirms and returns."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from amqp_core import (
    ConsumerCancelled,
    Engine,
    GetEmpty,
    GetOk,
    MessageDelivered,
    MessageReturned,
    MethodReceived,
    PublishAcked,
    PublishNacked,
    spec,
)
from amqp_core.exceptions import LocalProtocolError
from amqp_core.testing.peer import FakeBroker
from tests.engine.helpers import Pair, types


def setup(broker: FakeBroker | None = None, **kwargs: object) -> tuple[Pair, int]:
    pair = Pair(broker=broker, **kwargs)  # type: ignore[arg-type]
    pair.open()
    channel_id = pair.channel()
    pair.client.send_method(channel_id, spec.Queue.Declare(queue="q"))
    pair.pump()
    return pair, channel_id


def deliveries(events: Sequence[object]) -> list[MessageDelivered]:
    return [event for event in events if isinstance(event, MessageDelivered)]


@pytest.mark.parametrize("size", [0, 1, 4096, 131072 - 8, 131072 - 7, 300_000, 1_000_000])
def test_publish_and_consume_bodies_of_every_size(size: int) -> None:
    pair, ch = setup()
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    props = spec.BasicProperties(content_type="text/plain", headers={"a": 1}, delivery_mode=2)
    pair.client.publish(ch, "", "q", body, props)
    tag = pair.client.consume(ch, "q")
    events = pair.pump()
    (delivered,) = deliveries(events)
    assert delivered.body == body
    assert delivered.consumer_tag == tag
    assert delivered.properties.content_type == "text/plain"
    assert delivered.properties.headers == {"a": 1}
    assert pair.client.unacked_count(ch) == 1
    pair.client.ack(ch, delivered.delivery_tag)
    assert pair.client.unacked_count(ch) == 0


@pytest.mark.parametrize("size", [0, 10_000])
def test_delivery_fed_one_byte_at_a_time(size: int) -> None:
    # Frame by frame, not the whole-delivery fast path: the message never arrives at once.
    pair, ch = setup(frame_max=4096)
    body = b"y" * size
    pair.client.publish(ch, "", "q", body)
    pair.client.consume(ch, "q")
    pair.broker.receive_data(pair.client.data_to_send())
    data = pair.broker.data_to_send()
    for i in range(len(data)):
        pair.client.receive_data(data[i : i + 1], float(i))
    events = pair.drain()
    assert types(events) == ["MethodReceived", "MessageDelivered"]
    assert deliveries(events)[0].body == body


def test_bytearray_and_memoryview_input() -> None:
    pair, ch = setup()
    pair.client.publish(ch, "", "q", bytearray(b"abc"))
    pair.client.publish(ch, "", "q", memoryview(b"def"))
    pair.client.consume(ch, "q")
    pair.broker.receive_data(pair.client.data_to_send())
    data = pair.broker.data_to_send()
    pair.client.receive_data(bytearray(data[:50]), 0)
    pair.client.receive_data(memoryview(data)[50:], 0)
    assert [d.body for d in deliveries(pair.drain())] == [b"abc", b"def"]


def test_buffers_to_send_hands_out_views_of_big_bodies() -> None:
    pair, ch = setup()
    body = b"z" * 200_000
    pair.client.publish(ch, "", "q", body)
    buffers = pair.client.buffers_to_send()
    assert any(isinstance(piece, memoryview) for piece in buffers)
    assert pair.client.bytes_to_send == 0
    pair.client.publish(ch, "", "q", b"small")
    assert pair.client.bytes_to_send > 0
    pair.broker.receive_data(b"".join(bytes(piece) for piece in buffers))
    pair.pump()
    assert [len(m.body) for m in pair.broker.queues["q"].messages] == [200_000, 5]


def test_publish_method_frame_cache_is_bounded() -> None:
    pair, ch = setup()
    for i in range(300):
        pair.client.publish(ch, "", f"k{i}", b"")
    pair.client.publish(ch, "", "k299", b"", mandatory=True)
    pair.pump()


def test_get_ok_and_get_empty() -> None:
    pair, ch = setup()
    pair.client.get(ch, "q")
    events = pair.pump()
    assert types(events) == ["GetEmpty"]
    assert isinstance(events[0], GetEmpty)
    pair.client.publish(ch, "", "q", b"one")
    pair.client.publish(ch, "", "q", b"two")
    pair.client.get(ch, "q")
    pair.client.get(ch, "q", no_ack=True)
    events = pair.pump()
    assert types(events) == ["GetOk", "GetOk"]
    first, second = events
    assert isinstance(first, GetOk)
    assert isinstance(second, GetOk)
    assert (first.body, first.method.message_count) == (b"one", 1)
    assert second.body == b"two"
    # Only the first needs an ack.
    assert pair.client.unacked_count(ch) == 1
    with pytest.raises(LocalProtocolError):
        pair.client.ack(ch, second.delivery_tag)
    pair.client.ack(ch, first.delivery_tag)


def test_reject_and_requeue_redelivers() -> None:
    pair, ch = setup()
    pair.client.publish(ch, "", "q", b"m")
    pair.client.get(ch, "q")
    (got,) = pair.pump()
    assert isinstance(got, GetOk)
    assert got.method.redelivered is False
    pair.client.reject(ch, got.delivery_tag, requeue=True)
    pair.client.get(ch, "q")
    (again,) = pair.pump()
    assert isinstance(again, GetOk)
    assert again.method.redelivered is True
    pair.client.nack(ch, again.delivery_tag, requeue=False)
    pair.client.get(ch, "q")
    assert types(pair.pump()) == ["GetEmpty"]


def test_ack_rules() -> None:
    pair, ch = setup()
    for i in range(5):
        pair.client.publish(ch, "", "q", bytes([i]))
    pair.client.consume(ch, "q")
    events = deliveries(pair.pump())
    assert [d.delivery_tag for d in events] == [1, 2, 3, 4, 5]
    client = pair.client
    with pytest.raises(LocalProtocolError, match="delivery tag 9"):
        client.ack(ch, 9)
    client.ack(ch, 2)
    with pytest.raises(LocalProtocolError, match="already settled"):
        client.ack(ch, 2)
    client.ack(ch, 3, multiple=True)
    assert client.unacked_count(ch) == 2
    client.nack(ch, 0, multiple=True, requeue=False)
    assert client.unacked_count(ch) == 0
    pair.pump()
    assert not pair.broker.closed


def test_no_ack_consumer_needs_no_acks() -> None:
    pair, ch = setup()
    pair.client.consume(ch, "q", no_ack=True, consumer_tag="mine")
    pair.client.publish(ch, "", "q", b"m")
    events = pair.pump()
    assert deliveries(events)[0].consumer_tag == "mine"
    assert pair.client.unacked_count(ch) == 0


def test_consumer_tags() -> None:
    pair, ch = setup()
    client = pair.client
    assert client.consume(ch, "q") == "ctag1.1"
    with pytest.raises(LocalProtocolError, match="in use"):
        client.consume(ch, "q", consumer_tag="ctag1.1")
    client.consume(ch, "q", consumer_tag="x")
    with pytest.raises(LocalProtocolError, match="in use"):
        client.consume(ch, "q", consumer_tag="x")
    pair.pump()
    with pytest.raises(LocalProtocolError, match="in use"):
        client.consume(ch, "q", consumer_tag="x")
    with pytest.raises(LocalProtocolError, match="nowait"):
        client.send_method(ch, spec.Basic.Consume(queue="q", nowait=True))
    client.send_method(ch, spec.Basic.Consume(queue="q", consumer_tag="nw", nowait=True))
    client.send_method(ch, spec.Basic.Cancel("nw", nowait=True))
    with pytest.raises(LocalProtocolError, match="no such consumer"):
        client.cancel(ch, "nw")
    client.cancel(ch, "x")
    events = pair.pump()
    assert isinstance(events[-1], MethodReceived)
    assert isinstance(events[-1].method, spec.Basic.CancelOk)
    with pytest.raises(LocalProtocolError, match="no such consumer"):
        client.cancel(ch, "x")


def test_broker_cancels_consumer() -> None:
    pair, ch = setup()
    tag = pair.client.consume(ch, "q")
    pair.pump()
    pair.broker.cancel_consumer(ch, tag)
    events = pair.pump()
    assert events == [ConsumerCancelled(channel_id=ch, consumer_tag=tag)]
    assert isinstance(pair.broker.received[-1], spec.Basic.CancelOk)
    # Deleting the queue cancels with nowait: no Cancel-Ok.
    tag2 = pair.client.consume(ch, "q")
    pair.pump()
    pair.client.send_method(ch, spec.Queue.Delete(queue="q"))
    events = pair.pump()
    assert ConsumerCancelled(channel_id=ch, consumer_tag=tag2) in events
    assert not isinstance(pair.broker.received[-1], spec.Basic.CancelOk)


def test_mandatory_return() -> None:
    pair, ch = setup()
    pair.client.publish(
        ch, "", "nowhere", b"lost", spec.BasicProperties(message_id="m1"), mandatory=True
    )
    events = pair.pump()
    assert types(events) == ["MessageReturned"]
    returned = events[0]
    assert isinstance(returned, MessageReturned)
    assert (returned.method.reply_code, returned.method.routing_key) == (312, "nowhere")
    assert returned.body == b"lost"
    assert returned.properties.message_id == "m1"


def test_publisher_confirms_single() -> None:
    pair, ch = setup()
    client = pair.client
    assert client.publish(ch, "", "q", b"before") is None
    client.confirm_select(ch)
    assert client.next_publish_seq_no(ch) == 1
    tags = [client.publish(ch, "", "q", b"%d" % i) for i in range(3)]
    assert tags == [1, 2, 3]
    assert client.unconfirmed_count(ch) == 3
    events = pair.pump()
    acks = [event for event in events if isinstance(event, PublishAcked)]
    assert [(a.delivery_tag, a.multiple) for a in acks] == [(1, False), (2, False), (3, False)]
    assert client.unconfirmed_count(ch) == 0


def test_publisher_confirms_multiple_and_nack() -> None:
    broker = FakeBroker(confirm_batch=3, nack_publishes=True)
    pair, ch = setup(broker)
    pair.client.confirm_select(ch)
    for _ in range(4):
        pair.client.publish(ch, "", "q", b"m")
    events = pair.pump()
    nacks = [event for event in events if isinstance(event, PublishNacked)]
    assert nacks == [PublishNacked(channel_id=ch, delivery_tag=3, multiple=True)]
    assert pair.client.unconfirmed_count(ch) == 1
    broker.flush_confirms(ch)
    assert pair.pump() == [PublishNacked(channel_id=ch, delivery_tag=4, multiple=False)]


def test_out_of_order_confirms() -> None:
    from amqp_core.frame import encode_method_frame

    pair, ch = setup()
    client = pair.client
    client.confirm_select(ch)
    pair.pump()
    for _ in range(5):
        client.publish(ch, "", "nowhere", b"")
    client.data_to_send()  # the broker never sees them: the test answers by hand
    for tag, multiple in ((2, False), (4, False), (1, False), (3, False)):
        client.receive_data(encode_method_frame(ch, spec.Basic.Ack(tag, multiple)), 0)
    assert client.unconfirmed_count(ch) == 1
    client.receive_data(encode_method_frame(ch, spec.Basic.Ack(5, True)), 0)
    assert client.unconfirmed_count(ch) == 0
    assert len(pair.drain()) == 5
    # A confirm for a tag that was never published is a protocol error.
    client.receive_data(encode_method_frame(ch, spec.Basic.Ack(5, False)), 0)
    closed = pair.drain()[-1]
    assert type(closed).__name__ == "ConnectionClosed"


def test_confirm_without_confirm_mode_is_a_protocol_error() -> None:
    from amqp_core.frame import encode_method_frame

    pair, ch = setup()
    pair.client.receive_data(encode_method_frame(ch, spec.Basic.Ack(1, False)), 0)
    assert types(pair.drain()) == ["ConnectionClosed"]


def test_prefetch_limits_deliveries() -> None:
    pair, ch = setup()
    pair.client.qos(ch, prefetch_count=2)
    for _ in range(5):
        pair.client.publish(ch, "", "q", b"m")
    pair.client.consume(ch, "q")
    got = deliveries(pair.pump())
    assert len(got) == 2
    pair.client.ack(ch, got[-1].delivery_tag, multiple=True)
    assert len(deliveries(pair.pump())) == 2


def test_recover_requeues_and_forgets_tags() -> None:
    pair, ch = setup()
    pair.client.publish(ch, "", "q", b"m")
    pair.client.consume(ch, "q")
    (first,) = deliveries(pair.pump())
    pair.client.send_method(ch, spec.Basic.Recover(requeue=True))
    events = pair.pump()
    (second,) = deliveries(events)
    assert second.method.redelivered
    with pytest.raises(LocalProtocolError):
        pair.client.ack(ch, first.delivery_tag)
    pair.client.ack(ch, second.delivery_tag)


def test_many_channels_interleaved() -> None:
    pair = Pair()
    pair.open()
    channels = [pair.channel() for _ in range(3)]
    for ch in channels:
        pair.client.send_method(ch, spec.Queue.Declare(queue=f"q{ch}"))
        pair.client.consume(ch, f"q{ch}")
    pair.pump()
    for i in range(10):
        for ch in channels:
            pair.client.publish(ch, "", f"q{ch}", b"%d-%d" % (ch, i))
    got = deliveries(pair.pump())
    assert len(got) == 30
    for ch in channels:
        assert [d.body for d in got if d.channel_id == ch] == [
            b"%d-%d" % (ch, i) for i in range(10)
        ]


def test_engine_counts_for_unknown_channel() -> None:
    engine = Engine()
    assert engine.channel_ids == []
    assert engine.server_properties == {}
    assert engine.server_capabilities == {}
    assert engine.tune_parameters is None
    assert not engine.is_open
    assert engine.config.virtual_host == "/"
