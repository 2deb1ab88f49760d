"""Heartbeats, all driven by a fake clock."""

from __future__ import annotations

from amqp_core import ConnectionClosed, ConnectionState
from amqp_core.exceptions import AMQPHeartbeatTimeout
from amqp_core.frame import encode_heartbeat
from amqp_core.testing.peer import FakeBroker
from tests.engine.helpers import Pair


def test_no_timer_before_tuning_or_when_off() -> None:
    pair = Pair()
    assert pair.client.next_timer() is None
    pair.client.handle_timer(100.0)
    assert pair.client.data_to_send() != b""  # just the protocol header


def test_idle_connection_sends_heartbeats_every_half_interval() -> None:
    pair = Pair(broker=FakeBroker(heartbeat=10))
    pair.open()
    client = pair.client
    assert client.next_timer() == 5.0
    sent_at = []
    now = 0.0
    while now < 19.0:
        timer = client.next_timer()
        assert timer is not None
        now = timer
        client.handle_timer(now)
        if client.data_to_send() == encode_heartbeat():
            sent_at.append(now)
        # The broker keeps talking, so the client never times out.
        client.receive_data(encode_heartbeat(), now)
    assert sent_at == [5.0, 10.0, 15.0, 20.0]
    assert client.state is ConnectionState.OPEN


def test_no_heartbeat_when_other_data_was_sent() -> None:
    pair = Pair(broker=FakeBroker(heartbeat=10))
    pair.open()
    ch = pair.channel()
    client = pair.client
    client.publish(ch, "", "q", b"x")
    pair.pump()
    client.handle_timer(5.0)
    assert client.data_to_send() == b""
    client.handle_timer(10.0)
    assert client.data_to_send() == encode_heartbeat()
    # Calling early does nothing.
    client.handle_timer(11.0)
    assert client.data_to_send() == b""


def test_silent_peer_is_dead_after_two_intervals() -> None:
    pair = Pair(broker=FakeBroker(heartbeat=10))
    pair.open()
    client = pair.client
    client.receive_data(encode_heartbeat(), 12.0)
    assert client.next_timer() == 5.0
    client.handle_timer(31.9)
    assert client.state is ConnectionState.OPEN
    assert client.next_timer() == 32.0
    client.handle_timer(32.0)
    event = pair.drain()[-1]
    assert isinstance(event, ConnectionClosed)
    assert isinstance(event.exception, AMQPHeartbeatTimeout)
    assert client.next_timer() is None
    client.handle_timer(100.0)


def test_heartbeats_from_broker_are_accepted() -> None:
    pair = Pair(broker=FakeBroker(heartbeat=10))
    pair.open()
    pair.broker.send_heartbeat()
    assert pair.pump() == []
    pair.client.handle_timer(5.0)
    pair.pump()
    assert pair.broker.heartbeats_received == 1


def test_tune_rules() -> None:
    from amqp_core._tune import negotiate_heartbeat, negotiate_maximum
    from amqp_core.events import NEED_DATA

    assert negotiate_maximum(0, 0) == 0
    assert negotiate_maximum(0, 5) == 5
    assert negotiate_maximum(5, 0) == 5
    assert negotiate_maximum(7, 5) == 5
    assert negotiate_heartbeat(None, 60) == 60
    assert negotiate_heartbeat(0, 60) == 0
    assert negotiate_heartbeat(120, 60) == 120
    assert negotiate_heartbeat(lambda v: v + 1, 60) == 61
    assert repr(NEED_DATA) == "NEED_DATA"


def test_unconfirmed_count_without_confirms() -> None:
    pair = Pair()
    pair.open()
    ch = pair.channel()
    assert pair.client.unconfirmed_count(ch) == 0


def test_silent_peer_is_dead_at_the_deadline_next_timer_gives() -> None:
    # (last + 20) - last < 20 for this float: the timer at next_timer() must still end it, or
    # a loop that runs due timers would run this one forever.
    last = 501.24324746869576
    assert (last + 20) - last < 20
    pair = Pair(broker=FakeBroker(heartbeat=10))
    pair.open()
    client = pair.client
    while (timer := client.next_timer()) is not None and timer < last:
        client.handle_timer(timer)
        client.receive_data(encode_heartbeat(), timer)
    client.receive_data(encode_heartbeat(), last)
    deadline = last + 20
    for _ in range(10):
        timer = client.next_timer()
        if timer is None:
            break
        assert timer <= deadline
        client.handle_timer(timer)
    assert client.state is ConnectionState.CLOSED
    events = pair.drain()
    assert any(
        isinstance(e, ConnectionClosed) and isinstance(e.exception, AMQPHeartbeatTimeout)
        for e in events
    )
