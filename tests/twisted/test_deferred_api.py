# mypy: disable-error-code="no-untyped-call"
"""The Deferred API of amqp_twisted in this process, without a reactor running.

The protocol runs on a ``twisted.internet.task.Clock`` and a ``StringTransport`` wired to
amqp_core's in-memory broker, so every branch of the Deferred plumbing (errbacks on channel
close, nacks, consumer cancel, stream loss ...) is checked fast and deterministically. The
real-broker scenarios are in test_twisted.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from amqp_core import BasicProperties, exceptions
from amqp_core.connection import WRITE_HIGH_WATER
from amqp_core.parameters import ConnectionParameters
from amqp_core.testing.peer import FakeBroker
from amqp_twisted import (
    ClosableDeferredQueue,
    ReceivedMessage,
    TwistedProtocolConnection,
    twisted_connection,
)


class Wire:
    """Moves bytes between the protocol and the fake broker, and runs the clock's timers."""

    def __init__(self, broker: FakeBroker | None = None, **params: Any) -> None:
        self.clock = Clock()
        self.broker = broker or FakeBroker()
        self.transport = StringTransport()
        self.protocol = TwistedProtocolConnection(
            ConnectionParameters(**params), custom_reactor=self.clock
        )
        self.protocol.makeConnection(self.transport)
        self.ended = False

    def pump(self) -> None:
        for _ in range(1000):
            self.clock.advance(0)
            out = self.transport.value()
            self.transport.clear()
            if out:
                self.broker.receive_data(out)
            back = self.broker.data_to_send()
            if back:
                self.protocol.dataReceived(back)
            if not out and not back:
                break
        closing = self.transport.disconnecting or self.broker.closed
        if closing and not self.ended:
            self.ended = True
            self.protocol.connectionLost(Failure(ConnectionDone()))
            self.clock.advance(0)


def result(deferred: Any) -> Any:
    """The result of a fired Deferred (raising its failure's exception)."""
    outcome: list[Any] = []
    deferred.addBoth(outcome.append)
    assert outcome, "the Deferred has not fired"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


def opened(**params: Any) -> tuple[Wire, Any]:
    wire = Wire(**params)
    ready = wire.protocol.ready
    wire.pump()
    assert result(ready) is wire.protocol
    channel = wire.protocol.channel()
    wire.pump()
    return wire, result(channel)


def test_open_declare_publish_consume_get_and_close() -> None:
    wire, channel = opened()
    assert wire.protocol.is_open
    assert channel.is_open
    assert channel.channel_number == 1
    declared = channel.queue_declare("q")
    wire.pump()
    assert result(declared).method.queue == "q"
    assert result(channel.basic_publish("", "q", b"one")) is None  # no confirms: at once
    wire.pump()
    got = channel.basic_get("q", auto_ack=True)
    wire.pump()
    message = result(got)
    assert isinstance(message, ReceivedMessage)
    assert message.body == b"one"
    assert message.channel is channel
    empty = channel.basic_get("q")
    wire.pump()
    assert result(empty) is None
    consumed = channel.basic_consume("q")
    wire.pump()
    queue, tag = result(consumed)
    assert isinstance(queue, ClosableDeferredQueue)
    assert channel.consumer_tags == [tag]
    channel.basic_publish("", "q", "two")
    wire.pump()
    delivery = result(queue.get())
    assert delivery.body == b"two"
    channel.basic_ack(delivery.method.delivery_tag)
    closed = wire.protocol.close()
    wire.pump()
    assert isinstance(result(closed), exceptions.ConnectionClosedByClient)
    assert wire.protocol.is_closed
    # Closing the connection closes its channels first, and their consumers' queues with them.
    with pytest.raises(exceptions.ChannelClosedByClient):
        result(queue.get())


def test_confirms_ack_nack_and_unroutable() -> None:
    wire, channel = opened()
    selected = channel.confirm_delivery()
    wire.pump()
    result(selected)
    channel.queue_declare("q")
    acked = channel.basic_publish("", "q", b"kept")
    returned = channel.basic_publish("", "nowhere", b"lost", mandatory=True)
    wire.pump()
    assert result(acked) is None
    with pytest.raises(exceptions.UnroutableError):
        result(returned)
    wire.broker.nack_publishes = True
    nacked = channel.basic_publish("", "q", b"refused")
    wire.pump()
    with pytest.raises(exceptions.NackError):
        result(nacked)


def test_return_callback_gets_a_received_message() -> None:
    wire, channel = opened()
    returned: list[ReceivedMessage] = []
    channel.add_on_return_callback(returned.append)
    channel.basic_publish("", "nowhere", b"lost", mandatory=True)
    wire.pump()
    (message,) = returned
    assert message.body == b"lost"
    assert message.method.reply_code == 312


def test_channel_error_fails_pending_calls_and_leaves_the_connection_open() -> None:
    wire, channel = opened()
    missing = channel.queue_declare("missing", passive=True)
    wire.pump()
    with pytest.raises(exceptions.ChannelClosedByBroker) as caught:
        result(missing)
    assert caught.value.reply_code == 404
    assert channel.is_closed
    assert wire.protocol.is_open
    fresh = wire.protocol.channel()
    wire.pump()
    assert result(fresh).is_open


def test_consumer_cancelled_by_broker_and_by_us() -> None:
    wire, channel = opened()
    channel.queue_declare("q")
    consumed = channel.basic_consume("q")
    wire.pump()
    queue, tag = result(consumed)
    waiting = queue.get()
    wire.broker.cancel_consumer(1, tag)
    wire.pump()
    with pytest.raises(exceptions.ConsumerCancelled):
        result(waiting)
    assert channel.consumer_tags == []
    consumed = channel.basic_consume("q")
    wire.pump()
    queue, tag = result(consumed)
    cancelled = channel.basic_cancel(tag)
    wire.pump()
    result(cancelled)
    with pytest.raises(exceptions.ConsumerCancelled):
        result(queue.get())


def test_channel_close_fires_with_the_reason() -> None:
    wire, channel = opened()
    closing = channel.close()
    wire.pump()
    assert isinstance(result(closing), exceptions.ChannelClosedByClient)
    with pytest.raises(exceptions.ChannelWrongStateError):
        result(channel.queue_declare("q"))


def test_broker_close_and_blocked_callbacks() -> None:
    wire, _ = opened()
    events: list[str] = []
    wire.protocol.add_on_connection_blocked_callback(lambda c, f: events.append("blocked"))
    wire.protocol.add_on_connection_unblocked_callback(lambda c, f: events.append("unblocked"))
    wire.broker.block()
    wire.broker.unblock()
    wire.pump()
    assert events == ["blocked", "unblocked"]
    closed = wire.protocol.closed
    wire.broker.close_connection(320, "CONNECTION_FORCED - bye")
    wire.pump()
    reason = result(closed)
    assert isinstance(reason, exceptions.ConnectionClosedByBroker)
    assert reason.reply_code == 320


def test_stream_lost_fails_what_is_pending() -> None:
    wire, channel = opened()
    pending = channel.queue_declare("never", passive=True)  # not pumped: no answer yet
    closed = wire.protocol.closed
    wire.protocol.connectionLost(Failure(ConnectionLost("cut")))
    wire.clock.advance(0)
    assert isinstance(result(closed), exceptions.StreamLostError)
    with pytest.raises(exceptions.StreamLostError):
        result(pending)


def test_refused_login_fails_ready() -> None:
    wire = Wire(FakeBroker(users={"someone": "else"}))
    ready = wire.protocol.ready
    wire.pump()
    with pytest.raises(exceptions.ProbableAuthenticationError):
        result(ready)


def test_stream_lost_before_open_fails_ready() -> None:
    wire = Wire()
    ready = wire.protocol.ready
    wire.protocol.connectionLost(Failure(ConnectionLost("cut")))
    wire.clock.advance(0)
    with pytest.raises(exceptions.AMQPConnectionError):
        result(ready)


def test_channel_refused_when_the_connection_is_not_open() -> None:
    wire = Wire()
    with pytest.raises(exceptions.ConnectionWrongStateError):
        result(wire.protocol.channel())


def test_write_pressure_pauses_and_resumes() -> None:
    wire, channel = opened()
    transport = wire.protocol._transport
    assert transport is not None
    transport.pauseProducing()
    assert transport.write_buffer_size() > 0
    body = b"h" * 65536
    for _ in range(100):
        channel.basic_publish("", "q", body)
    wire.clock.advance(0)
    # While Twisted says pause, amqp_core gives it up to WRITE_HIGH_WATER and holds the rest.
    written = len(wire.transport.value())
    assert WRITE_HIGH_WATER <= written < WRITE_HIGH_WATER + 2 * len(body)
    assert transport.write_buffer_size() >= written
    transport.resumeProducing()
    assert len(wire.transport.value()) > 100 * len(body)


def test_heartbeats_on_the_reactor_clock_and_a_silent_peer() -> None:
    wire = Wire(FakeBroker(heartbeat=2))
    ready = wire.protocol.ready
    wire.pump()
    result(ready)
    closed = wire.protocol.closed
    for _ in range(3):
        wire.clock.advance(1.0)
        wire.pump()
    assert wire.broker.heartbeats_received >= 1
    # The broker falls silent: two missed intervals end the connection.
    wire.clock.advance(5.0)
    assert isinstance(result(closed), exceptions.AMQPHeartbeatTimeout)


def test_publish_batch_turns_confirms_on_and_reports_each_outcome() -> None:
    wire, channel = opened()
    channel.queue_declare("q")
    properties = BasicProperties(delivery_mode=2)
    batch = channel.publish_batch(
        [("", "q", b"one"), ("", "q", "two", properties), ("", "nowhere", bytearray(b"3"))],
        mandatory=True,
    )
    wire.pump()
    first, second, third = result(batch)
    assert first.ok
    assert second.ok
    assert [first.sequence, second.sequence, third.sequence] == [1, 2, 3]
    assert second.body == b"two"
    assert isinstance(third.error, exceptions.UnroutableError)
    # Confirm mode stays on, and an empty batch fires with no outcomes.
    assert result(channel.publish_batch([])) == []
    wire.broker.nack_publishes = True
    nacked = channel.publish_batch([("", "q", b"refused")])
    wire.pump()
    (outcome,) = result(nacked)
    assert isinstance(outcome.error, exceptions.NackError)


def test_publish_batch_keeps_to_the_window_and_publishes_in_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(twisted_connection, "_BATCH_CHUNK", 3)
    wire, channel = opened(broker=FakeBroker(confirm_batch=1000))
    channel.queue_declare("q")
    selected = channel.confirm_delivery()
    wire.pump()
    result(selected)
    channel.confirm_window = 8
    single = channel.basic_publish("", "q", b"single")  # counts against the window
    batch = channel.publish_batch(("", "q", b"%d" % i) for i in range(20))
    unsettled = channel._tracker.unsettled
    assert unsettled == 4  # one chunk, in this reactor turn
    wire.clock.advance(0)
    wire.clock.advance(0)
    assert channel._tracker.unsettled == 8  # the window is full: it waits for confirms
    wire.clock.advance(0)
    assert channel._tracker.unsettled == 8
    for _ in range(6):
        wire.pump()
        wire.broker.flush_confirms(1)
    wire.pump()
    outcomes = result(batch)
    assert [o.body for o in outcomes] == [b"%d" % i for i in range(20)]
    assert all(o.ok for o in outcomes)
    assert result(single) is None


def test_publish_batch_waits_for_a_full_output_to_drain() -> None:
    wire, channel = opened(max_unsent_bytes=1024 * 1024)
    transport = wire.protocol._transport
    assert transport is not None
    selected = channel.confirm_delivery()
    wire.pump()
    result(selected)
    transport.pauseProducing()
    body = b"h" * 65536
    batch = channel.publish_batch([("", "q", body)] * 40)
    published = channel._tracker.unsettled
    assert 0 < published < 40  # refused for the full output: it waits
    wire.clock.advance(0)
    assert channel._tracker.unsettled == published
    transport.resumeProducing()
    wire.pump()
    outcomes = result(batch)
    assert len(outcomes) == 40
    assert all(o.ok for o in outcomes)


def test_publish_batch_fails_with_the_close_reason_or_reports_it() -> None:
    wire, channel = opened()
    channel.confirm_window = 2
    unfinished = channel.publish_batch([("", "q", b"x")] * 5)
    published = channel.publish_batch([])  # complete: its (no) outcomes are its result
    channel.close()
    wire.pump()
    with pytest.raises(exceptions.ChannelClosedByClient):
        result(unfinished)
    assert result(published) == []
    # A closed channel refuses at once: confirm_delivery's failure, then basic_publish's.
    with pytest.raises(exceptions.ChannelWrongStateError):
        result(channel.publish_batch([("", "q", b"x")]))
    wire, channel = opened(broker=FakeBroker(confirm_batch=1000))
    pending = channel.publish_batch([("", "q", b"x")] * 3)
    wire.pump()
    closing = wire.protocol.close()
    wire.pump()
    outcomes = result(pending)  # all published, then the channel closed before the confirms
    assert all(isinstance(o.error, exceptions.ChannelClosedByClient) for o in outcomes)
    assert isinstance(result(closing), exceptions.ConnectionClosedByClient)


def test_publish_batch_fails_with_a_publish_error() -> None:
    wire, channel = opened()
    selected = channel.confirm_delivery()
    wire.pump()
    result(selected)
    channel._channel.close()  # the core channel: the wrapper's tracker stays
    with pytest.raises(exceptions.ChannelWrongStateError):
        result(channel.publish_batch([("", "q", b"x")]))
    wire.pump()


def test_consume_with_on_message_calls_it_per_delivery() -> None:
    wire, channel = opened()
    channel.queue_declare("q")
    received: list[ReceivedMessage] = []
    errors: list[Any] = []

    def on_message(message: ReceivedMessage) -> None:
        received.append(message)
        if message.body == b"bad":
            raise ValueError("bad message")

    observer: Any = errors.append
    globalLogPublisher.addObserver(observer)
    try:
        consumed = channel.basic_consume("q", on_message=on_message)
        wire.pump()
        queue, tag = result(consumed)
        for body in (b"one", b"bad", b"two"):
            channel.basic_publish("", "q", body)
        wire.pump()
    finally:
        globalLogPublisher.removeObserver(observer)
    assert [m.body for m in received] == [b"one", b"bad", b"two"]
    assert received[0].channel is channel
    assert not queue.pending  # the callback took them
    (logged,) = [e for e in errors if e.get("log_failure") is not None]
    assert isinstance(logged["log_failure"].value, ValueError)
    assert wire.protocol.is_open
    assert channel.is_open
    waiting = queue.get()
    cancelled = channel.basic_cancel(tag)
    wire.pump()
    result(cancelled)
    with pytest.raises(exceptions.ConsumerCancelled):
        result(waiting)


def test_publish_batch_behind_a_window_of_single_publishes() -> None:
    wire, channel = opened(broker=FakeBroker(confirm_batch=1000))
    selected = channel.confirm_delivery()
    wire.pump()
    result(selected)
    channel.confirm_window = 4
    singles = [channel.basic_publish("", "q", b"single") for _ in range(4)]
    batch = channel.publish_batch([("", "q", b"batched")] * 3)
    wire.pump()
    assert channel._tracker.unsettled == 4  # the batch waits for the singles' confirms
    wire.broker.flush_confirms(1)
    wire.pump()
    wire.broker.flush_confirms(1)
    wire.pump()
    assert all(result(single) is None for single in singles)
    assert [o.ok for o in result(batch)] == [True, True, True]


def test_publish_batch_fails_when_the_channel_closes_before_select_ok() -> None:
    wire, channel = opened()
    channel.confirm_window = 1
    batch = channel.publish_batch([("", "q", b"x")] * 3)  # turns confirms on
    channel.close()
    wire.pump()
    with pytest.raises(exceptions.ChannelClosedByClient):
        result(batch)
