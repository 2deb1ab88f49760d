"""Channels: allocation, open and close from both sides, synchronous requests in order."""

from __future__ import annotations

import pytest

from amqp_core import (
    ChannelClosed,
    ChannelFlowChanged,
    ChannelOpened,
    ChannelState,
    MethodReceived,
    spec,
)
from amqp_core.exceptions import (
    ChannelStateError,
    ChannelWrongStateError,
    ConnectionStateError,
    InvalidChannelNumber,
    LocalProtocolError,
    NoFreeChannels,
)
from amqp_core.frame import encode_method_frame
from amqp_core.testing.peer import FakeBroker
from tests.engine.helpers import Pair, types


def test_open_and_close_channel() -> None:
    pair = Pair()
    pair.open()
    channel_id = pair.client.open_channel()
    assert channel_id == 1
    assert pair.client.channel_state(1) is ChannelState.OPENING
    events = pair.pump()
    assert events == [ChannelOpened(channel_id=1)]
    assert pair.client.channel_state(1) is ChannelState.OPEN
    pair.client.close_channel(1)
    assert pair.client.channel_state(1) is ChannelState.CLOSING
    events = pair.pump()
    assert events == [
        ChannelClosed(channel_id=1, reply_code=200, reply_text="Normal shutdown", by_broker=False)
    ]
    assert pair.client.channel_state(1) is ChannelState.CLOSED
    # The number is free again.
    assert pair.client.open_channel() == 1


def test_channel_numbers_allocated_and_reused() -> None:
    pair = Pair(channel_max=3)
    pair.open()
    assert [pair.client.open_channel() for _ in range(3)] == [1, 2, 3]
    with pytest.raises(NoFreeChannels):
        pair.client.open_channel()
    pair.pump()
    pair.client.close_channel(2)
    pair.pump()
    assert pair.client.open_channel() == 2
    with pytest.raises(InvalidChannelNumber):
        pair.client.open_channel(4)
    with pytest.raises(ChannelStateError, match="channel 1 is OPEN"):
        pair.client.open_channel(1)
    assert pair.client.channel_ids == [1, 3, 2]


def test_explicit_channel_number() -> None:
    pair = Pair()
    pair.open()
    assert pair.client.open_channel(7) == 7
    assert pair.pump() == [ChannelOpened(channel_id=7)]


def test_commands_need_open_connection_and_channel() -> None:
    pair = Pair()
    with pytest.raises(ConnectionStateError, match="AWAIT_START"):
        pair.client.open_channel()
    pair.open()
    with pytest.raises(ChannelStateError, match="channel 5: it is CLOSED"):
        pair.client.publish(5, "", "q", b"")
    channel_id = pair.client.open_channel()
    with pytest.raises(ChannelWrongStateError, match="OPENING"):
        pair.client.publish(channel_id, "", "q", b"")
    with pytest.raises(ChannelStateError):
        pair.client.close_channel(9)
    pair.pump()
    pair.client.close_channel(channel_id)
    with pytest.raises(ChannelStateError, match="can't close_channel when channel 1 is CLOSING"):
        pair.client.close_channel(channel_id)
    with pytest.raises(ChannelStateError, match="unacked_count"):
        pair.client.unacked_count(9)


def test_close_while_opening() -> None:
    pair = Pair()
    pair.open()
    channel_id = pair.client.open_channel()
    pair.client.close_channel(channel_id, 200, "changed my mind")
    events = pair.pump()
    assert types(events) == ["ChannelClosed"]


def test_broker_closes_channel() -> None:
    pair = Pair()
    pair.open()
    channel_id = pair.channel()
    pair.client.send_method(channel_id, spec.Queue.Declare(queue="q", durable=False))
    pair.client.send_method(channel_id, spec.Queue.Declare(queue="q", durable=True))
    events = pair.pump()
    assert types(events) == ["MethodReceived", "ChannelClosed"]
    closed = events[-1]
    assert isinstance(closed, ChannelClosed)
    assert (closed.reply_code, closed.class_id, closed.method_id, closed.by_broker) == (
        406,
        50,
        10,
        True,
    )
    assert pair.client.channel_state(channel_id) is ChannelState.CLOSED
    assert isinstance(pair.broker.received[-1], spec.Channel.CloseOk)
    # The connection is still usable.
    assert pair.channel() == channel_id


def test_broker_closes_channel_while_opening() -> None:
    pair = Pair()
    pair.open()
    pair.client.open_channel()
    pair.client.receive_data(
        encode_method_frame(1, spec.Channel.Close(504, "CHANNEL_ERROR", 20, 10)), 0
    )
    events = pair.drain()
    assert types(events) == ["ChannelClosed"]


def test_both_sides_close_a_channel_at_once() -> None:
    pair = Pair()
    pair.open()
    channel_id = pair.channel()
    pair.client.close_channel(channel_id)
    pair.client.receive_data(
        encode_method_frame(1, spec.Channel.Close(406, "PRECONDITION_FAILED", 0, 0)), 0
    )
    assert pair.client.data_to_send().endswith(encode_method_frame(1, spec.Channel.CloseOk()))
    # Other frames are discarded while closing.
    pair.client.receive_data(encode_method_frame(1, spec.Basic.QosOk()), 0)
    pair.client.receive_data(encode_method_frame(1, spec.Channel.CloseOk()), 0)
    events = pair.drain()
    assert events == [
        ChannelClosed(
            channel_id=1, reply_code=406, reply_text="PRECONDITION_FAILED", by_broker=True
        )
    ]


def test_synchronous_requests_are_serialised_in_order() -> None:
    pair = Pair()
    pair.open()
    channel_id = pair.channel()
    client = pair.client
    client.send_method(channel_id, spec.Queue.Declare(queue="a"))
    client.send_method(channel_id, spec.Queue.Declare(queue="b"))
    client.publish(channel_id, "", "b", b"x")
    client.send_method(channel_id, spec.Queue.Declare(queue="c"))
    first = client.data_to_send()
    # Only the first declare went out; the rest wait for its reply.
    assert first == encode_method_frame(channel_id, spec.Queue.Declare(queue="a"))
    pair.broker.receive_data(first)
    events = pair.pump()
    names = [event.method.queue for event in events if isinstance(event, MethodReceived)]  # type: ignore[attr-defined]
    assert names == ["a", "b", "c"]
    # The publish went after "b" was declared, so it was routed.
    assert [m.body for m in pair.broker.queues["b"].messages] == [b"x"]


def test_nowait_methods_do_not_wait() -> None:
    pair = Pair()
    pair.open()
    channel_id = pair.channel()
    pair.client.send_method(channel_id, spec.Exchange.Declare(exchange="e", nowait=True))
    pair.client.send_method(channel_id, spec.Queue.Declare(queue="q", nowait=True))
    pair.client.send_method(
        channel_id, spec.Queue.Bind(queue="q", exchange="e", routing_key="k", nowait=True)
    )
    assert pair.pump() == []
    assert pair.broker.bindings[-1] == ("e", "k", "q", True)


def test_send_method_rejects_what_a_client_does_not_send() -> None:
    pair = Pair()
    pair.open()
    channel_id = pair.channel()
    for method in (
        spec.Basic.Publish(),
        spec.Channel.Open(),
        spec.Basic.Deliver(),
        spec.Queue.DeclareOk(),
    ):
        with pytest.raises(LocalProtocolError, match="not a method a client sends"):
            pair.client.send_method(channel_id, method)
    with pytest.raises(LocalProtocolError, match="channel 0"):
        pair.client.send_method(0, spec.Connection.Close())
    assert pair.client.data_to_send() == b""


def test_flow_from_broker() -> None:
    pair = Pair()
    pair.open()
    channel_id = pair.channel()
    pair.broker.set_flow(channel_id, False)
    assert pair.pump() == [ChannelFlowChanged(channel_id=1, active=False)]
    with pytest.raises(ChannelStateError, match="flow"):
        pair.client.publish(channel_id, "", "q", b"")
    pair.broker.set_flow(channel_id, True)
    assert pair.pump() == [ChannelFlowChanged(channel_id=1, active=True)]
    pair.client.publish(channel_id, "", "q", b"")


def test_flow_from_client() -> None:
    pair = Pair()
    pair.open()
    channel_id = pair.channel()
    pair.client.send_method(channel_id, spec.Channel.Flow(active=True))
    events = pair.pump()
    assert types(events) == ["MethodReceived"]


def test_qos_tx_recover_exchange_bindings() -> None:
    broker = FakeBroker()
    pair = Pair(broker=broker)
    pair.open()
    ch = pair.channel()
    client = pair.client
    client.qos(ch, prefetch_count=10, global_qos=True)
    client.send_method(ch, spec.Tx.Select())
    client.send_method(ch, spec.Tx.Commit())
    client.send_method(ch, spec.Tx.Rollback())
    client.send_method(ch, spec.Basic.Recover(requeue=True))
    client.send_method(ch, spec.Basic.RecoverAsync(requeue=True))
    client.send_method(ch, spec.Exchange.Declare(exchange="src", type="direct"))
    client.send_method(ch, spec.Exchange.Declare(exchange="dst", type="fanout"))
    client.send_method(ch, spec.Exchange.Bind(destination="dst", source="src", routing_key="k"))
    client.send_method(ch, spec.Queue.Declare(queue="q"))
    client.send_method(ch, spec.Queue.Bind(queue="q", exchange="dst"))
    client.send_method(ch, spec.Exchange.Unbind(destination="dst", source="src", routing_key="k"))
    client.send_method(ch, spec.Queue.Unbind(queue="q", exchange="dst"))
    client.send_method(ch, spec.Queue.Purge(queue="q"))
    client.send_method(ch, spec.Exchange.Delete(exchange="src"))
    client.send_method(ch, spec.Queue.Delete(queue="q"))
    client.send_method(ch, spec.Access.Request())
    events = pair.pump()
    names = [event.method.NAME for event in events if isinstance(event, MethodReceived)]
    assert names[:-1] == [
        "Basic.QosOk",
        "Tx.SelectOk",
        "Tx.CommitOk",
        "Tx.RollbackOk",
        "Basic.RecoverOk",
        "Exchange.DeclareOk",
        "Exchange.DeclareOk",
        "Exchange.BindOk",
        "Queue.DeclareOk",
        "Queue.BindOk",
        "Exchange.UnbindOk",
        "Queue.UnbindOk",
        "Queue.PurgeOk",
        "Exchange.DeleteOk",
        "Queue.DeleteOk",
    ]


def test_exchange_to_exchange_routing() -> None:
    pair = Pair()
    pair.open()
    ch = pair.channel()
    client = pair.client
    client.send_method(ch, spec.Exchange.Declare(exchange="src", type="direct"))
    client.send_method(ch, spec.Exchange.Declare(exchange="dst", type="fanout"))
    client.send_method(ch, spec.Exchange.Bind(destination="dst", source="src", routing_key="k"))
    client.send_method(ch, spec.Queue.Declare(queue="q"))
    client.send_method(ch, spec.Queue.Bind(queue="q", exchange="dst"))
    client.publish(ch, "src", "k", b"via e2e")
    pair.pump()
    assert [m.body for m in pair.broker.queues["q"].messages] == [b"via e2e"]
