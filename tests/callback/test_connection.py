# ruff: noqa: PT018, RUF059
from __future__ import annotations

from typing import Any

import pytest

from amqp_core import exceptions as exc
from amqp_core import frame, spec
from amqp_core.connection import Connection
from amqp_core.parameters import ConnectionParameters
from amqp_core.testing.peer import FakeBroker

from .helpers import FakeIO, Recorder, TestConnection, Timer, open_connection


def open_channel(io: FakeIO, conn: Connection) -> Any:
    ch = conn.channel()
    io.run()
    assert ch.is_open
    return ch


def test_open_channel_publish_consume_close() -> None:
    io, conn, rec = open_connection()
    assert conn.publisher_confirms and conn.basic_nack and conn.consumer_cancel_notify
    assert conn.exchange_exchange_bindings and conn.server_properties["product"] == "FakeBroker"
    assert "OPEN" in repr(conn)
    ch = conn.channel(on_open_callback=rec("ch_open"))
    assert ch.is_opening
    io.run()
    assert rec.named("ch_open") == [(ch,)] and int(ch) == 1
    ch.queue_declare("q", callback=rec("declared"))
    ch.basic_publish("", "q", "héllo")
    tag = ch.basic_consume("q", rec("msg"), callback=rec("consume_ok"))
    assert tag == "ctag1.1" and ch.consumer_tags == [tag]
    io.run()
    (declared,) = rec.named("declared")
    assert isinstance(declared[0], frame.Method)
    assert isinstance(declared[0].method, spec.Queue.DeclareOk)
    (msg,) = rec.named("msg")
    assert msg[0] is ch and msg[3] == "héllo".encode()
    assert isinstance(msg[1], spec.Basic.Deliver)
    ch.basic_ack(msg[1].delivery_tag)
    ch.add_on_close_callback(rec("ch_close"))
    conn.close()
    assert conn.is_closing
    with pytest.raises(exc.ConnectionWrongStateError):
        conn.close()
    io.run()
    assert conn.is_closed and ch.is_closed
    assert [type(a[1]) for a in rec.named("ch_close")] == [exc.ChannelClosedByClient]
    (close,) = rec.named("close")
    assert isinstance(close[1], exc.ConnectionClosedByClient) and close[1].reply_code == 200
    assert isinstance(io.broker.received[-1], spec.Connection.CloseOk) or any(
        isinstance(m, spec.Basic.Cancel) for m in io.broker.received
    )
    with pytest.raises(exc.ConnectionWrongStateError):
        conn.close()
    with pytest.raises(exc.ConnectionWrongStateError):
        conn.channel()


def test_every_rpc_wire_effect_and_callback() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    ch.exchange_declare("x", "fanout", callback=rec("r"))
    ch.exchange_declare("x2", callback=rec("r"))
    ch.exchange_bind("x2", "x", callback=rec("r"))
    ch.exchange_unbind("x2", "x", callback=rec("r"))
    ch.queue_declare("q", callback=rec("r"))
    ch.queue_bind("q", "x", callback=rec("r"))
    ch.queue_unbind("q", "x", callback=rec("r"))
    ch.queue_purge("q", callback=rec("r"))
    ch.basic_qos(prefetch_count=5, callback=rec("r"))
    ch.basic_recover(requeue=True, callback=rec("r"))
    ch.tx_select(callback=rec("r"))
    ch.tx_commit(callback=rec("r"))
    ch.tx_rollback(callback=rec("r"))
    ch.flow(True, callback=rec("flow"))
    ch.queue_delete("q", callback=rec("r"))
    ch.exchange_delete("x2", callback=rec("r"))
    io.run()
    names = [args[0].method.NAME for args in rec.named("r")]
    assert names == [
        "Exchange.DeclareOk",
        "Exchange.DeclareOk",
        "Exchange.BindOk",
        "Exchange.UnbindOk",
        "Queue.DeclareOk",
        "Queue.BindOk",
        "Queue.UnbindOk",
        "Queue.PurgeOk",
        "Basic.QosOk",
        "Basic.RecoverOk",
        "Tx.SelectOk",
        "Tx.CommitOk",
        "Tx.RollbackOk",
        "Queue.DeleteOk",
        "Exchange.DeleteOk",
    ]
    assert rec.named("flow") == [(True,)]
    bind = next(m for m in io.broker.received if isinstance(m, spec.Queue.Bind))
    assert bind.routing_key == "q"
    # callback=None sends nowait where the method has the flag
    ch.queue_declare("q2")
    ch.exchange_declare("x3")
    ch.queue_bind("q2", "x3", routing_key="k")
    ch.queue_purge("q2")
    ch.queue_delete("q2")
    ch.exchange_delete("x3")
    ch.queue_unbind("q", "x")  # no nowait flag: waits anyway, no callback
    ch.basic_qos()
    io.run()
    nowaits = [m for m in io.broker.received if getattr(m, "nowait", False)]
    assert len(nowaits) == 6


def test_validation_errors() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    with pytest.raises(TypeError, match="on_message_callback"):
        ch.basic_consume("q", None)
    with pytest.raises(TypeError, match="queue"):
        ch.queue_declare(1)
    with pytest.raises(TypeError, match="callback"):
        ch.queue_declare("q", callback=1)
    with pytest.raises(ValueError, match="prefetch_count"):
        ch.basic_qos(prefetch_count=-1)
    with pytest.raises(TypeError, match="prefetch_size"):
        ch.basic_qos(prefetch_size="x")
    with pytest.raises(TypeError, match="delivery_tag"):
        ch.basic_reject("x")
    with pytest.raises(TypeError, match="body"):
        ch.basic_publish("", "q", 1)
    with pytest.raises(ValueError, match="ack_nack_callback"):
        ch.confirm_delivery(None)
    with pytest.raises(TypeError):
        conn.add_on_close_callback(1)  # type: ignore[arg-type]
    with pytest.raises(exc.InvalidChannelNumber):
        type(ch)(conn, 0)
    ch.queue_declare("q", callback=rec("d"))
    ch.basic_consume("q", rec("m"), consumer_tag="t")
    with pytest.raises(exc.DuplicateConsumerTag):
        ch.basic_consume("q", rec("m"), consumer_tag="t")
    ch.basic_get("q", rec("get"))
    with pytest.raises(exc.DuplicateGetOkCallback):
        ch.basic_get("q", rec("get"))
    io.run()


def test_get_ok_get_empty_and_add_callback() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    ch.queue_declare("q", callback=rec("d"))
    ch.add_callback(rec("empty"), [spec.Basic.GetEmpty])
    ch.add_callback(rec("anyget"), [spec.Basic.GetOk, spec.Basic.GetEmpty], one_shot=False)
    ch.basic_get("q", rec("get"))
    io.run()
    assert rec.named("get") == [] and len(rec.named("empty")) == 1
    ch.basic_publish("", "q", b"x", spec.BasicProperties(content_type="t"))
    ch.basic_get("q", rec("get"), auto_ack=True)
    io.run()
    (got,) = rec.named("get")
    assert got[0] is ch and isinstance(got[1], spec.Basic.GetOk) and got[3] == b"x"
    assert got[2].content_type == "t"
    assert len(rec.named("anyget")) == 2 and len(rec.named("empty")) == 1
    assert ch.remove_callback(rec.named("anyget") and ch._observers[0][0])
    assert not ch.remove_callback(lambda f: None)


def test_confirms_with_multiple_and_nack() -> None:
    io = FakeIO()
    io.endpoints["127.0.0.1"] = lambda: FakeBroker(confirm_batch=3)
    io, conn, rec = open_connection(io)
    ch = open_channel(io, conn)
    ch.queue_declare("q", callback=rec("d"))
    ch.confirm_delivery(rec("confirm"), callback=rec("selected"))
    ch.confirm_delivery(rec("confirm2"))  # replaces the callback (pika's HEAD)
    for _ in range(3):
        ch.basic_publish("", "q", b"m")
    io.run()
    assert len(rec.named("selected")) == 1
    (confirm,) = rec.named("confirm2")
    assert isinstance(confirm[0].method, spec.Basic.Ack)
    assert confirm[0].method.delivery_tag == 3 and confirm[0].method.multiple
    io2 = FakeIO()
    io2.endpoints["127.0.0.1"] = lambda: FakeBroker(nack_publishes=True)
    io2, conn2, rec2 = open_connection(io2)
    ch2 = open_channel(io2, conn2)
    ch2.confirm_delivery(rec2("confirm"))
    ch2.confirm_delivery(rec2("confirm"), callback=rec2("again"))
    ch2.basic_publish("amq.direct", "nowhere", b"m")
    io2.run()
    assert isinstance(rec2.named("confirm")[0][0].method, spec.Basic.Nack)
    assert len(rec2.named("again")) == 1


def test_confirm_unsupported() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    conn.server_properties = {"capabilities": {}}
    with pytest.raises(exc.MethodNotImplemented):
        ch.confirm_delivery(rec("c"))
    conn.server_properties = {}
    assert conn.server_capabilities == {}


def test_return_cancel_flow_callbacks() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    ch.add_on_return_callback(rec("ret"))
    ch.add_on_cancel_callback(rec("cancel"))
    ch.add_on_flow_callback(rec("flow"))
    ch.basic_publish("amq.direct", "nowhere", b"r", mandatory=True)
    ch.queue_declare("q", callback=rec("d"))
    tag = ch.basic_consume("q", rec("m"))
    io.run()
    (ret,) = rec.named("ret")
    assert ret[0] is ch and isinstance(ret[1], spec.Basic.Return) and ret[3] == b"r"
    io.broker.cancel_consumer(1, tag)
    io.broker.set_flow(1, False)
    io.transport.pump()
    io.run()
    (cancel,) = rec.named("cancel")
    assert isinstance(cancel[0].method, spec.Basic.Cancel) and cancel[0].method.consumer_tag == tag
    assert ch.consumer_tags == [] and rec.named("flow") == [(False,)] and not ch.flow_active
    for name, cb in (
        ("ret", ch.remove_on_return_callback),
        ("cancel", ch.remove_on_cancel_callback),
        ("flow", ch.remove_on_flow_callback),
    ):
        assert not cb(rec(name))
    f = rec("x")
    ch.add_on_close_callback(f)
    assert ch.remove_on_close_callback(f) and not ch.remove_on_close_callback(f)


def test_basic_cancel_variants_and_close_cancels_consumers() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    ch.queue_declare("q", callback=rec("d"))
    t1 = ch.basic_consume("q", rec("m"))
    t2 = ch.basic_consume("q", rec("m"))
    t3 = ch.basic_consume("q", rec("m"))
    io.run()
    ch.basic_cancel(t1, callback=rec("cancel_ok"))
    ch.basic_cancel(t1, callback=rec("cancel_ok"))  # already cancelling: ignored
    ch.basic_cancel("unknown")
    ch.basic_cancel(t2)  # nowait
    io.run()
    assert len(rec.named("cancel_ok")) == 1 and ch.consumer_tags == [t3]
    ch.add_on_close_callback(rec("closed"))
    ch.close()
    with pytest.raises(exc.ChannelWrongStateError):
        ch.close()
    with pytest.raises(exc.ChannelWrongStateError):
        ch.basic_publish("", "q", b"")
    io.run()
    received = [type(m).__name__ for m in io.broker.received[-3:]]
    assert received == ["Cancel", "Close", "CloseOk"] or received[-2:] == ["Cancel", "Close"]
    (closed,) = rec.named("closed")
    assert isinstance(closed[1], exc.ChannelClosedByClient) and closed[1].reply_code == 0
    ch.open()
    io.run()
    assert ch.is_open
    with pytest.raises(exc.ChannelWrongStateError):
        ch.open()


def test_channel_closed_by_broker_then_new_channel() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    ch.add_on_close_callback(rec("closed"))
    ch.queue_declare("missing", passive=True, callback=rec("d"))
    io.run()
    (closed,) = rec.named("closed")
    assert isinstance(closed[1], exc.ChannelClosedByBroker) and closed[1].reply_code == 404
    assert ch.is_closed and rec.named("d") == []
    ch2 = open_channel(io, conn)
    assert ch2.channel_number == 1 and ch2 is not ch


def test_close_while_channel_opening() -> None:
    io, conn, rec = open_connection()
    ch = conn.channel()
    ch.add_on_close_callback(rec("closed"))
    ch.close(200, "bye")
    io.run()
    assert ch.is_closed and rec.named("closed")[0][1].reply_code == 200


def test_connection_closed_by_broker() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    ch.add_on_close_callback(rec("ch_closed"))
    io.broker.close_connection(320, "CONNECTION_FORCED - shutdown")
    io.transport.pump()
    io.run()
    (close,) = rec.named("close")
    reason = close[1]
    assert isinstance(reason, exc.ConnectionClosedByBroker) and reason.reply_code == 320
    assert reason.host == "localhost" and reason.port == 5672
    assert rec.named("ch_closed")[0][1] is reason and conn.is_closed


def test_stream_lost() -> None:
    io, conn, rec = open_connection()
    io.transport.lose(ConnectionResetError(104, "reset"))
    io.run()
    (close,) = rec.named("close")
    assert isinstance(close[1], exc.StreamLostError) and "reset" in str(close[1])
    io2, conn2, rec2 = open_connection()
    io2.transport.lose(None)
    assert isinstance(rec2.named("close")[0][1], exc.StreamLostError)


def test_heartbeat_sent_and_timeout_one_timer() -> None:
    io = FakeIO()
    io.endpoints["127.0.0.1"] = lambda: FakeBroker(heartbeat=10)
    io, conn, rec = open_connection(io)
    assert len(io.pending()) == 1  # the engine's one timer
    io.run(5.5)
    assert io.broker.heartbeats_received >= 1
    io.transport.pump()
    io.run(25)
    (close,) = rec.named("close")
    assert isinstance(close[1], exc.AMQPHeartbeatTimeout) and io.transport.aborted


def test_heartbeat_callable_gets_connection() -> None:
    seen: list[Any] = []

    def choose(connection: Any, value: int) -> int:
        seen.append((connection, value))
        return 0

    io, conn, rec = open_connection(parameters=ConnectionParameters(heartbeat=choose))
    assert seen == [(conn, 60)] and io.broker.tune_ok is not None
    assert io.broker.tune_ok.heartbeat == 0 and not io.pending()


def test_blocked_unblocked_and_timeout() -> None:
    io, conn, rec = open_connection(parameters=ConnectionParameters(blocked_connection_timeout=5))
    conn.add_on_connection_blocked_callback(rec("blocked"))
    conn.add_on_connection_unblocked_callback(rec("unblocked"))
    io.broker.block("low on memory")
    io.transport.pump()
    io.run(1)
    io.broker.unblock()
    io.transport.pump()
    io.run(10)
    assert rec.named("blocked")[0][1].method.reason == "low on memory"
    assert isinstance(rec.named("unblocked")[0][1].method, spec.Connection.Unblocked)
    assert conn.is_open
    io.broker.block()
    io.transport.pump()
    io.run(6)
    (close,) = rec.named("close")
    assert isinstance(close[1], exc.ConnectionBlockedTimeout) and conn.is_closed
    assert conn.remove_on_connection_blocked_callback(conn._on_blocked[0])
    assert not conn.remove_on_connection_unblocked_callback(lambda c, m: None)


def test_update_secret() -> None:
    io, conn, rec = open_connection()
    conn.update_secret("tok-s3cret", "refresh", rec("ok"))
    conn.update_secret("tok2", "refresh")
    io.run()
    (ok,) = rec.named("ok")
    assert isinstance(ok[0].method, spec.Connection.UpdateSecretOk)


def test_callback_exception_propagates_and_events_resume() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    ch.queue_declare("q", callback=rec("d"))

    def boom(*args: Any) -> None:
        rec("boom")(*args)
        raise RuntimeError("user bug")

    ch.basic_consume("q", boom)
    ch.basic_publish("", "q", b"1")
    ch.basic_publish("", "q", b"2")
    with pytest.raises(RuntimeError, match="user bug"):
        io.run()
    with pytest.raises(RuntimeError, match="user bug"):
        io.run()
    io.run()
    assert [a[3] for a in rec.named("boom")] == [b"1", b"2"] and conn.is_open


def test_default_open_error_raises_and_remove_default() -> None:
    io = FakeIO()
    io.endpoints["127.0.0.1"] = ConnectionRefusedError(111, "refused")
    TestConnection(io)
    with pytest.raises(exc.AMQPConnectionError, match="TCP phase"):
        io.run()
    io = FakeIO()
    io.endpoints["127.0.0.1"] = ConnectionRefusedError(111, "refused")
    rec = Recorder()
    conn = TestConnection(io, on_open_error_callback=rec("e1"))
    conn.add_on_open_error_callback(rec("e2"), remove_default=False)
    conn.add_on_open_callback(rec("o"))
    assert conn.remove_on_open_callback(conn._on_open[0])
    assert not conn.remove_on_open_error_callback(lambda c, e: None)
    assert conn.remove_on_close_callback(rec("x")) is False
    io.run()
    assert len(rec.named("e1")) == 1 and len(rec.named("e2")) == 1 and conn.is_closed


def test_parameters_argument_forms() -> None:
    io = FakeIO()
    with pytest.raises(ValueError, match="empty"):
        TestConnection(io, [])
    with pytest.raises(TypeError):
        TestConnection(io, ["x"])  # type: ignore[list-item]
    params = ConnectionParameters()
    conn = TestConnection(io, params)
    assert conn.params == params and conn.params is not params
    io.run()
    assert conn.is_open


def test_close_during_workflow_reports_open_aborted() -> None:
    io = FakeIO()
    rec = Recorder()
    conn = TestConnection(io, on_open_error_callback=rec("err"))
    conn.close()
    io.run()
    assert isinstance(rec.named("err")[0][1], exc.ConnectionOpenAborted)
    io = FakeIO()
    conn = TestConnection(io, on_open_error_callback=rec("err2"))
    io.run(0)
    # mid-handshake close
    io2 = FakeIO()
    io2.endpoints["127.0.0.1"] = "hang"
    conn2 = TestConnection(io2, on_open_error_callback=rec("err3"))
    io2.run()
    conn2.close()
    io2.run()
    assert isinstance(rec.named("err3")[0][1], exc.ConnectionOpenAborted)


def test_backpressure_holds_output_until_drained() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    io.transport.buffered = 10**9
    ch.basic_publish("", "q", b"x")
    io.run()
    assert conn.outbound_buffer_size > 10**9
    io.transport.buffered = 0
    before = len(io.transport.written)
    io.transport.listener.write_drained()
    assert len(io.transport.written) == before + 1


def test_large_message_many_buffers() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    ch.queue_declare("q", callback=rec("d"))
    ch.basic_consume("q", rec("m"), auto_ack=True)
    body = bytes(range(256)) * 4096  # 1 MiB, many frames
    ch.basic_publish("", "q", body)
    io.run()
    assert rec.named("m")[0][3] == body


def test_output_joined_into_few_writes_large_bodies_not_copied() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    ch.queue_declare("q", callback=rec("d"))
    ch.basic_consume("q", rec("m"), auto_ack=True)
    io.run()
    before = len(io.transport.written)
    writes: list[Any] = []
    real_write = io.transport.write

    def spy(data: Any) -> None:
        writes.append(data)
        real_write(data)

    io.transport.write = spy  # type: ignore[method-assign]
    big = bytes(range(256)) * 1024  # 256 KiB: several body frames, views of the caller's body
    for i in range(3000):
        ch.basic_publish("", "q", b"%d" % i)
    ch.basic_publish("", "q", big)
    ch.basic_publish("", "q", b"last")
    io.run()
    bodies = [args[3] for args in rec.named("m")]
    assert bodies == [b"%d" % i for i in range(3000)] + [big, b"last"]
    # 3000 small messages (~90 KB each joined run), then the big body's frames: a few dozen
    # writes, not one per message; every view of the big body is handed over as it is.
    assert len(writes) < 20
    assert len(io.transport.written) - before == len(writes)
    views = [w for w in writes if type(w) is memoryview]
    assert views and all(w.obj is big for w in views)
    assert sum(len(w) for w in views) == len(big)


def test_flush_writes_at_once_and_drops_the_deferred_write() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    before = len(io.transport.written)
    ch.basic_publish("", "q", b"a")
    ch.basic_publish("", "q", b"b")
    assert len(io.transport.written) == before  # deferred to the loop's next round
    pending = conn._flush_pending
    assert isinstance(pending, Timer) and pending in io.pending()
    conn.flush()
    # Both publishes leave in one write, now; the deferred write is no longer due.
    assert len(io.transport.written) == before + 1
    assert pending not in io.pending() and conn._flush_pending is None
    conn.flush()  # nothing more to send: no empty write
    assert len(io.transport.written) == before + 1
    io.run()
    assert [m for m in io.broker.received if isinstance(m, spec.Basic.Publish)]


def test_flush_inside_a_callback_waits_for_the_dispatch_to_end() -> None:
    io, conn, rec = open_connection()
    ch = open_channel(io, conn)
    seen: list[int] = []

    def on_declared(_frame: Any) -> None:
        ch.basic_publish("", "q", b"from a callback")
        conn.flush()  # the dispatch writes once every callback has run
        seen.append(len(io.transport.written))

    before = len(io.transport.written)
    ch.queue_declare("q", callback=on_declared)
    conn.flush()
    assert len(io.transport.written) == before + 1
    ch.basic_publish("", "q", b"early")  # its deferred write is still due during the dispatch
    io.run()
    assert seen == [before + 1]
    # What the dispatch left behind, with the earlier publish, went in one write at its end.
    assert len(io.transport.written) == before + 2
    assert b"early" in io.transport.written[-1]
    assert b"from a callback" in io.transport.written[-1]


def test_flush_without_a_stream_does_nothing() -> None:
    io = FakeIO()
    conn = TestConnection(io)
    conn.flush()  # still connecting: no engine, no transport
    io.run()
    assert conn.is_open
    conn.close()
    io.run()
    assert conn.is_closed
    conn.flush()
