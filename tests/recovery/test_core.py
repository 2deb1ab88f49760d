"""Recovery in the core, without a broker: FakeBroker peers, a fake clock, fake hosts."""

# ruff: noqa: PT011, PT018, RUF059
from __future__ import annotations

import heapq
import itertools
from typing import Any

import pytest

from amqp_core import exceptions as exc
from amqp_core import frame, spec
from amqp_core import recovery as rc
from amqp_core.parameters import ConnectionParameters
from amqp_core.testing.peer import FakeBroker
from tests.callback.helpers import FakeIO, FakeTransport, Recorder, TestConnection, addr
from tests.callback.test_external_stream import _Relay

POLICY = rc.RecoveryPolicy(initial_delay=1.0, multiplier=2.0, max_delay=5.0, jitter=0.5)


def cluster_io() -> FakeIO:
    io = FakeIO()
    io.hosts = {f"h{i}": [addr(f"10.0.0.{i}")] for i in (1, 2, 3)}
    io.endpoints = {f"10.0.0.{i}": FakeBroker for i in (1, 2, 3)}
    return io


def connect(
    io: FakeIO, policy: rc.RecoveryPolicy | None = POLICY, hosts: tuple[str, ...] = ("h1",)
) -> tuple[TestConnection, Recorder, list[Any]]:
    params = [ConnectionParameters(host=h, recovery=policy) for h in hosts]
    rec = Recorder()
    conn = TestConnection(
        io,
        params,
        on_open_callback=rec("open"),
        on_open_error_callback=rec("open_error"),
        on_close_callback=rec("close"),
    )
    events: list[Any] = []
    conn.add_recovery_listener(lambda _c, event: events.append(event))
    io.run()
    assert conn.is_open, rec.calls
    return conn, rec, events


def open_channel(io: FakeIO, conn: TestConnection) -> Any:
    ch = conn.channel()
    io.run()
    assert ch.is_open
    return ch


def lose(io: FakeIO) -> None:
    io.transport.lose(ConnectionResetError(104, "reset by peer"))


def kinds(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_without_a_policy_a_loss_closes_the_connection_as_in_pika() -> None:
    io = FakeIO()
    conn, rec, events = connect(io, policy=None, hosts=("localhost",))
    lose(io)
    io.run(100)
    assert conn.is_closed and not conn.is_recovering and events == []
    (close,) = rec.named("close")
    assert isinstance(close[1], exc.StreamLostError)


def test_backoff_with_jitter_and_host_rotation() -> None:
    io = cluster_io()
    draws = itertools.cycle([0.0, 0.5, 1.0 - 1e-9])
    policy = rc.RecoveryPolicy(
        initial_delay=1.0, multiplier=2.0, max_delay=5.0, jitter=0.5, random=lambda: next(draws)
    )
    conn, rec, events = connect(io, policy, hosts=("h1", "h2", "h3"))
    assert io.connects[-1][1].host == "h1"
    # Every node is down for a while.
    io.endpoints = {f"10.0.0.{i}": ConnectionRefusedError(111, "refused") for i in (1, 2, 3)}
    io.connects.clear()
    lost_at = io.time
    lose(io)
    io.run(0)
    assert conn.is_recovering and not conn.is_open and not conn.is_closed
    io.run(1.0 + 2.0 + 4.0 + 1.0)
    delays = [e.delay for e in events if isinstance(e, rc.Recovering)]
    # base 1, 2, 4, 5 (capped); jitter scales by 1 - 0.5 * draw.
    assert delays[:4] == pytest.approx([1.0, 1.5, 2.0, 5.0])
    starts = [t - lost_at for t, _ in io.connects]
    assert starts[:3] == pytest.approx([1.0, 1.0, 1.0])
    assert starts[3] == pytest.approx(2.5)
    # Each attempt tries every host once, starting after the host that was lost.
    assert [s.host for _, s in io.connects[:6]] == ["h2", "h3", "h1"] * 2
    # h3 comes back: the next attempt ends there.
    io.endpoints["10.0.0.3"] = FakeBroker
    io.run(10)
    assert (conn.is_open, conn.is_recovering) == (True, False)
    assert isinstance(events[-1], rc.Recovered) and events[-1].host == "h3"
    assert conn.params.host == "h3"
    assert rec.named("open") == [(conn,)]  # not called again
    assert rec.named("close") == []


def test_the_attempt_bound_ends_in_recovery_failed_and_close_callbacks() -> None:
    io = cluster_io()
    policy = rc.RecoveryPolicy(initial_delay=0.1, jitter=0.0, max_attempts=3)
    conn, rec, events = connect(io, policy, hosts=("h1", "h2"))
    ch = open_channel(io, conn)
    ch.add_on_close_callback(rec("ch_close"))
    io.endpoints = {}
    lose(io)
    io.run(60)
    assert kinds(events) == ["ConnectionLost"] + ["Recovering"] * 3 + ["RecoveryFailed"]
    assert len(io.connects) == 1 + 3 * 2
    (close,) = rec.named("close")
    assert isinstance(close[1], exc.ConnectionRecoveryFailed)
    assert isinstance(close[1].__cause__, exc.StreamLostError)
    assert conn.is_closed and ch.is_closed and rec.named("ch_close")


def test_the_time_bound() -> None:
    io = cluster_io()
    policy = rc.RecoveryPolicy(initial_delay=1.0, max_delay=1.0, jitter=0.0, max_duration=3.5)
    conn, rec, events = connect(io, policy)
    io.endpoints = {}
    lose(io)
    io.run(60)
    assert kinds(events).count("Recovering") == 3
    assert isinstance(events[-1], rc.RecoveryFailed) and conn.is_closed


@pytest.mark.parametrize("code", [403, 530])
def test_access_refused_is_reported_not_retried(code: int) -> None:
    io = cluster_io()
    conn, rec, events = connect(io)
    io.broker.close_connection(code, "ACCESS_REFUSED")
    io.transport.pump()
    io.run(60)
    assert conn.is_closed and events == [] and len(io.connects) == 1
    (close,) = rec.named("close")
    assert isinstance(close[1], exc.ConnectionClosedByBroker) and close[1].reply_code == code


def test_a_refused_login_during_recovery_ends_it() -> None:
    io = cluster_io()
    conn, rec, events = connect(io)
    io.endpoints = {f"10.0.0.{i}": lambda: FakeBroker(users={}) for i in (1, 2, 3)}
    lose(io)
    io.run(60)
    assert kinds(events) == ["ConnectionLost", "Recovering", "RecoveryFailed"]
    (close,) = rec.named("close")
    assert isinstance(close[1], exc.ConnectionRecoveryFailed)


def test_a_forced_close_320_is_recovered() -> None:
    io = cluster_io()
    conn, rec, events = connect(io)
    io.broker.close_connection(320, "CONNECTION_FORCED - closed via management plugin")
    io.transport.pump()
    io.run(60)
    assert conn.is_open and kinds(events) == ["ConnectionLost", "Recovering", "Recovered"]
    assert isinstance(events[0].reason, exc.ConnectionClosedByBroker)
    assert rec.named("close") == []


def test_close_while_recovering_stops_it() -> None:
    io = cluster_io()
    conn, rec, events = connect(io)
    io.endpoints = {}
    lose(io)
    io.run(0.5)
    conn.close()
    io.run(60)
    assert conn.is_closed and kinds(events) == ["ConnectionLost", "Recovering"]
    (close,) = rec.named("close")
    assert isinstance(close[1], exc.ConnectionClosedByClient)
    assert len(io.connects) == 1


def renaming_broker(start: int) -> Any:
    def make() -> FakeBroker:
        broker = FakeBroker()
        broker._names = itertools.count(start)
        return broker

    return make


def test_topology_is_replayed_in_order_and_server_named_queues_follow() -> None:
    io = cluster_io()
    conn, rec, events = connect(io, hosts=("h1", "h2"))
    ch = open_channel(io, conn)
    ch.exchange_declare("x", "direct", durable=True, callback=rec("ok"))
    ch.queue_declare("", exclusive=True, callback=rec("anon"))
    ch.queue_declare("q", durable=True, arguments={"x-queue-type": "quorum"}, callback=rec("ok"))
    ch.queue_declare("gone", callback=rec("ok"))
    ch.exchange_declare("x2", "fanout", callback=rec("ok"))
    ch.exchange_declare("x2", passive=True, callback=rec("ok"))  # passive: not recorded
    io.run()
    anon = rec.named("anon")[0][0].method.queue
    ch.queue_bind(anon, "x", callback=rec("ok"))  # the default key: the queue's name
    ch.queue_bind("q", "x", "k", callback=rec("ok"))
    ch.queue_bind("gone", "x", "g", callback=rec("ok"))
    ch.exchange_bind("x2", "x", "e", callback=rec("ok"))
    ch.exchange_bind("x", "x2", "tmp", callback=rec("ok"))
    ch.exchange_unbind("x", "x2", "tmp", callback=rec("ok"))
    ch.queue_delete("gone", callback=rec("ok"))
    ch.basic_qos(prefetch_count=7, callback=rec("ok"))
    ch.confirm_delivery(rec("confirm"), callback=rec("ok"))
    tag = ch.basic_consume(anon, rec("msg"), callback=rec("ok"))
    tag2 = ch.basic_consume("q", rec("msg_q"), callback=rec("ok"))
    io.run()
    assert len(rec.named("ok")) == 16
    io.endpoints["10.0.0.2"] = renaming_broker(100)
    lose(io)
    io.run(5)
    assert conn.is_open and ch.is_open
    assert kinds(events) == [
        "ConnectionLost",
        "Recovering",
        "QueueRenamed",
        "Recovered",
    ]
    renamed = events[2]
    assert renamed.old == anon and renamed.new == "amq.gen-100"
    broker = io.broker
    sent = [
        m
        for m in broker.received
        if not isinstance(m, (spec.Connection.StartOk, spec.Connection.TuneOk))
        and not isinstance(m, spec.Connection.Open)
    ]
    described = [
        (type(m).__name__, getattr(m, "queue", getattr(m, "exchange", "")))
        for m in sent
        if not isinstance(m, (spec.Channel.Open, spec.Channel.Close))
    ]
    assert described == [
        ("Declare", "x"),
        ("Declare", "x2"),
        ("Declare", ""),
        ("Declare", "q"),
        ("Bind", "amq.gen-100"),
        ("Bind", "q"),
        ("Bind", ""),  # Exchange.Bind x2 <- x
        ("Qos", ""),
        ("Select", ""),
        ("Consume", "amq.gen-100"),
        ("Consume", "q"),
    ]
    declares = [m for m in sent if isinstance(m, spec.Queue.Declare)]
    assert declares[0].exclusive and declares[1].arguments == {"x-queue-type": "quorum"}
    binds = [m for m in sent if isinstance(m, spec.Queue.Bind)]
    assert binds[0].routing_key == "amq.gen-100"
    assert [m.consumer_tag for m in sent if isinstance(m, spec.Basic.Consume)] == [tag, tag2]
    assert [m.prefetch_count for m in sent if isinstance(m, spec.Basic.Qos)] == [7]
    # The replay channel is not the application's, and it is closed again.
    opens = [m for m in sent if isinstance(m, spec.Channel.Open)]
    assert len(opens) == 2 and ch.channel_number == 1
    # The consumer keeps its callback.
    broker.enqueue("amq.gen-100", b"after")
    io.transport.pump()
    io.run()
    (msg,) = rec.named("msg")
    assert msg[0] is ch and msg[3] == b"after"
    assert rec.named("open") == [(conn,)]


def test_a_declaration_refused_on_recovery_is_reported_and_the_rest_goes_on() -> None:
    io = cluster_io()
    conn, rec, events = connect(io, hosts=("h1", "h2"))
    ch = open_channel(io, conn)
    ch.queue_declare("a", durable=True, callback=rec("ok"))
    ch.queue_declare("b", callback=rec("ok"))
    io.run()
    ch.basic_consume("b", rec("msg"), callback=rec("ok"))
    io.run()

    def conflicting() -> FakeBroker:
        broker = FakeBroker()
        broker.queues["a"] = _queue("a", durable=False)
        return broker

    io.endpoints["10.0.0.2"] = conflicting
    lose(io)
    io.run(5)
    failed = [e for e in events if isinstance(e, rc.TopologyRecoveryFailed)]
    assert len(failed) == 1 and failed[0].what == "queue 'a'"
    assert isinstance(failed[0].error, exc.ChannelClosedByBroker)
    assert failed[0].error.reply_code == 406
    assert isinstance(events[-1], rc.Recovered) and events[-1].failures == 1
    assert "b" in io.broker.queues and ch.is_open and ch.consumer_tags


def _queue(name: str, durable: bool) -> Any:
    from amqp_core.testing.peer import _Queue

    return _Queue(name, durable, False, False, {})


def test_a_consumer_that_cannot_come_back_closes_its_channel_and_is_reported() -> None:
    io = cluster_io()
    conn, rec, events = connect(io, policy=rc.RecoveryPolicy(initial_delay=0, topology=False))
    ch = open_channel(io, conn)
    ch.queue_declare("q", callback=rec("ok"))
    io.run()
    ch.basic_consume("q", rec("msg"), callback=rec("ok"))
    ch.add_on_close_callback(rec("ch_close"))
    io.run()
    lose(io)
    io.run(5)  # topology off: "q" is not declared again, so the consume is refused
    failed = [e for e in events if isinstance(e, rc.TopologyRecoveryFailed)]
    assert len(failed) == 1 and failed[0].channel_number == 1
    assert "consumer" in failed[0].what
    assert ch.is_closed and rec.named("ch_close")
    assert conn.is_open and isinstance(events[-1], rc.Recovered)


def test_stale_delivery_tags_are_dropped_and_reported_new_ones_translated() -> None:
    io = cluster_io()
    conn, rec, events = connect(io, hosts=("h1", "h2"))
    ch = open_channel(io, conn)
    ch.queue_declare("q", callback=rec("ok"))
    io.run()
    ch.basic_consume("q", rec("msg"), callback=rec("ok"))
    io.run()
    io.broker.enqueue("q", b"one")
    io.transport.pump()
    io.broker.enqueue("q", b"two")
    io.transport.pump()
    io.run()
    assert [m[1].delivery_tag for m in rec.named("msg")] == [1, 2]
    lose(io)
    io.run(5)
    assert conn.is_open
    ch.basic_ack(1)
    ch.basic_nack(2, multiple=True)
    ch.basic_reject(2)
    stale = [e for e in events if isinstance(e, rc.StaleDeliveryTag)]
    assert [(e.delivery_tag, e.method) for e in stale] == [
        (1, "basic_ack"),
        (2, "basic_nack"),
        (2, "basic_reject"),
    ]
    io.broker.enqueue("q", b"three")
    io.transport.pump()
    io.run()
    third = rec.named("msg")[-1][1]
    assert third.delivery_tag == 3  # continues above every earlier tag
    ch.basic_ack(third.delivery_tag)
    io.run()
    acks = [m for m in io.broker.received if isinstance(m, spec.Basic.Ack)]
    assert [a.delivery_tag for a in acks] == [1]  # the broker's own numbering
    # A second recovery stacks the offsets.
    lose(io)
    io.run(5)
    io.broker.enqueue("q", b"four")
    io.transport.pump()
    io.run()
    assert rec.named("msg")[-1][1].delivery_tag == 4
    ch.basic_ack(3)
    assert isinstance(events[-1], rc.StaleDeliveryTag)


def test_stale_ack_while_recovering_is_dropped_not_raised() -> None:
    io = cluster_io()
    conn, rec, events = connect(io)
    ch = open_channel(io, conn)
    ch.queue_declare("q", callback=rec("ok"))
    ch.basic_consume("q", rec("msg"), callback=rec("ok"))
    io.run()
    io.broker.enqueue("q", b"one")
    io.transport.pump()
    io.run()
    io.endpoints = {}
    lose(io)
    io.run(0)
    ch.basic_ack(1)
    assert isinstance(events[-1], rc.StaleDeliveryTag)
    with pytest.raises(exc.ChannelWrongStateError):
        ch.basic_publish("", "q", b"x")


def test_unconfirmed_publishes_are_nacked_never_acked() -> None:
    io = cluster_io()
    io.endpoints["10.0.0.1"] = lambda: FakeBroker(confirm_batch=3)
    conn, rec, events = connect(io, hosts=("h1", "h2"))
    ch = open_channel(io, conn)
    ch.confirm_delivery(rec("confirm"), callback=rec("ok"))
    io.run()
    for i in range(5):
        ch.basic_publish("", "nowhere", b"m%d" % i)
    io.run()
    # The broker confirmed 1..3 with one multiple ack; 4 and 5 wait.
    assert [(m[0].method.delivery_tag, m[0].method.multiple) for m in rec.named("confirm")] == [
        (3, True)
    ]
    lose(io)
    io.run(5)
    confirms = [m[0].method for m in rec.named("confirm")]
    assert isinstance(confirms[-1], spec.Basic.Nack)
    assert confirms[-1].delivery_tag == 5 and confirms[-1].multiple
    (unconfirmed,) = [e for e in events if isinstance(e, rc.PublishesUnconfirmed)]
    assert unconfirmed.last_sequence == 5 and unconfirmed.count == 2
    assert not any(isinstance(m, spec.Basic.Ack) and m.delivery_tag > 3 for m in confirms)
    # Confirm mode is back, and sequence numbers continue.
    ch.basic_publish("", "nowhere", b"after")
    io.run()
    last = rec.named("confirm")[-1][0]
    assert isinstance(last, frame.Method)
    assert isinstance(last.method, spec.Basic.Ack) and last.method.delivery_tag == 6


def test_nothing_unconfirmed_nothing_reported() -> None:
    io = cluster_io()
    conn, rec, events = connect(io, hosts=("h1", "h2"))
    ch = open_channel(io, conn)
    ch.confirm_delivery(rec("confirm"), callback=rec("ok"))
    io.run()
    ch.basic_publish("", "nowhere", b"x")
    io.run()
    lose(io)
    io.run(5)
    assert not [e for e in events if isinstance(e, rc.PublishesUnconfirmed)]
    assert len(rec.named("confirm")) == 1


def test_loss_during_topology_replay_starts_over() -> None:
    io = cluster_io()
    conn, rec, events = connect(io, hosts=("h1", "h2"))
    ch = open_channel(io, conn)
    ch.queue_declare("q", callback=rec("ok"))
    ch.basic_qos(prefetch_count=3, callback=rec("ok"))
    ch.basic_consume("q", rec("msg"), callback=rec("ok"))
    io.run()
    lose(io)
    # Step timer by timer until the new connection is open and the replay under way.
    steps = 0
    while not (conn.is_open and conn.is_recovering and io.broker.queues):
        timer = heapq.heappop(io._timers)
        if not timer.cancelled:
            io.time = max(io.time, timer.at)
            timer.callback()
        steps += 1
        assert steps < 1000
    lose(io)
    io.run(10)
    assert conn.is_open and ch.is_open and ch.consumer_tags == ["ctag1.1"]
    assert kinds(events).count("Recovered") == 1
    io.broker.enqueue("q", b"x")
    io.transport.pump()
    io.run()
    assert rec.named("msg")


def test_deleted_and_cancelled_things_are_forgotten() -> None:
    io = cluster_io()
    conn, rec, events = connect(io, hosts=("h1", "h2"))
    ch = open_channel(io, conn)
    ch.exchange_declare("x", callback=rec("ok"))
    ch.queue_declare("q", callback=rec("ok"))
    io.run()
    ch.queue_bind("q", "x", "k", callback=rec("ok"))
    tag = ch.basic_consume("q", rec("msg"), callback=rec("ok"))
    io.run()
    ch.basic_cancel(tag, callback=rec("ok"))
    ch.exchange_delete("x", callback=rec("ok"))
    closed = open_channel(io, conn)
    closed.close()
    io.run()
    lose(io)
    io.run(5)
    received = io.broker.received
    assert not any(isinstance(m, (spec.Exchange.Declare, spec.Queue.Bind)) for m in received)
    assert not any(isinstance(m, spec.Basic.Consume) for m in received)
    assert ch.is_open and closed.is_closed
    assert len([m for m in received if isinstance(m, spec.Channel.Open)]) == 2  # replay + ch


def test_policy_validation_and_parameters() -> None:
    with pytest.raises(ValueError):
        rc.RecoveryPolicy(jitter=2)
    with pytest.raises(ValueError):
        rc.RecoveryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        rc.RecoveryPolicy(multiplier=0.5)
    with pytest.raises(TypeError):
        ConnectionParameters(recovery=object())  # type: ignore[arg-type]
    assert ConnectionParameters().recovery is None
    policy = rc.RecoveryPolicy()
    params = ConnectionParameters(recovery=policy)
    import copy

    assert copy.deepcopy(params).recovery is policy
    assert policy.delay(1) == 0.5 and policy.delay(100) == 30.0
    assert policy.delay(2, 1.0) == pytest.approx(0.5)


def test_a_node_closing_during_the_handshake_is_retried() -> None:
    io = cluster_io()
    conn, rec, events = connect(io, hosts=("h1", "h2"))

    class ShuttingDown(FakeBroker):
        def _connection_method(self, method: Any) -> None:
            if isinstance(method, spec.Connection.StartOk):
                self.close_connection(320, "CONNECTION_FORCED - shutdown")
                return
            super()._connection_method(method)

    io.endpoints = {"10.0.0.1": ShuttingDown, "10.0.0.2": ShuttingDown}
    lose(io)
    io.run(1.5)
    assert conn.is_recovering
    io.endpoints["10.0.0.1"] = FakeBroker
    io.run(10)
    assert conn.is_open and isinstance(events[-1], rc.Recovered)
    assert kinds(events).count("Recovering") >= 2


def test_an_attached_stream_is_recovered_through_connect_stream() -> None:
    # Twisted's case: the adapter connected the first stream itself; the reconnections are
    # the core's (host, moment), through the adapter's connect_stream.
    io = cluster_io()
    params = [ConnectionParameters(host=h, recovery=POLICY) for h in ("h1", "h2")]
    rec = Recorder()
    conn = TestConnection(
        io,
        params,
        on_open_callback=rec("open"),
        on_close_callback=rec("close"),
        external_stream=True,
    )
    events: list[Any] = []
    conn.add_recovery_listener(lambda _c, event: events.append(event))
    relay = _Relay()
    first = FakeTransport(io, FakeBroker(), relay)
    relay.target = conn.attach_stream(first)
    io.run()
    assert conn.is_open and io.connects == []
    ch = open_channel(io, conn)
    first.lose(ConnectionResetError(104, "reset by peer"))
    io.run(10)
    assert kinds(events) == ["ConnectionLost", "Recovering", "Recovered"]
    # The first stream counts as the first host's: the recovery starts with the next one.
    assert [s.host for _, s in io.connects] == ["h2"]
    assert conn.is_open and ch.is_open and conn.params.host == "h2"
    assert rec.named("open") == [(conn,)] and rec.named("close") == []
    # A second attach is still refused: the stream is the core's now.
    with pytest.raises(exc.ConnectionWrongStateError):
        conn.attach_stream(first)
