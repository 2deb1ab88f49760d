# ruff: noqa: PT018, RUF059
"""A Connection over a stream the adapter connected itself (``external_stream=True``)."""

from __future__ import annotations

from typing import Any

import pytest

from amqp_core import exceptions as exc
from amqp_core.parameters import ConnectionParameters
from amqp_core.testing.peer import FakeBroker
from amqp_core.transport import StreamListener

from .helpers import FakeIO, FakeTransport, Recorder, TestConnection


class _Relay:
    """A listener stand-in until the connection hands out the real one."""

    def __init__(self) -> None:
        self.target: StreamListener | None = None

    def data_received(self, data: bytes) -> None:
        assert self.target is not None
        self.target.data_received(data)

    def write_drained(self) -> None:
        assert self.target is not None
        self.target.write_drained()

    def connection_lost(self, error: BaseException | None) -> None:
        assert self.target is not None
        self.target.connection_lost(error)


def make(
    broker: Any = FakeBroker, **params: Any
) -> tuple[FakeIO, TestConnection, Recorder, FakeTransport]:
    io = FakeIO()
    rec = Recorder()
    conn = TestConnection(
        io,
        ConnectionParameters(host="never.resolved.invalid", **params),
        on_open_callback=rec("open"),
        on_open_error_callback=rec("open_error"),
        on_close_callback=rec("close"),
        external_stream=True,
    )
    relay = _Relay()
    transport = FakeTransport(io, broker(), relay)
    io.run()
    # No workflow: nothing resolved or connected by the connection itself.
    assert io.resolves == [] and io.connects == [] and rec.calls == []
    relay.target = conn.attach_stream(transport)
    return io, conn, rec, transport


def test_handshake_channel_and_close_over_an_attached_stream() -> None:
    io, conn, rec, transport = make()
    io.run()
    assert rec.named("open") == [(conn,)] and conn.is_open
    channel = conn.channel(on_open_callback=rec("channel"))
    io.run()
    assert rec.named("channel") == [(channel,)]
    with pytest.raises(exc.ConnectionWrongStateError):
        conn.attach_stream(transport)
    conn.close()
    io.run()
    (close,) = rec.named("close")
    assert isinstance(close[1], exc.ConnectionClosedByClient)
    assert transport.lost and not transport.aborted


def test_stream_lost_during_handshake_is_an_open_error() -> None:
    io, conn, rec, transport = make()
    transport.lose(ConnectionResetError(104, "reset"))
    io.run()
    (error,) = rec.named("open_error")
    assert isinstance(error[1], exc.IncompatibleProtocolError) and conn.is_closed
    assert rec.named("open") == [] and rec.named("close") == []


def test_refused_login_is_reported_as_pika_does() -> None:
    class Refusing(FakeBroker):
        def __init__(self) -> None:
            super().__init__(users={"someone": "else"})

    io, conn, rec, _ = make(Refusing)
    io.run()
    (error,) = rec.named("open_error")
    assert isinstance(error[1], exc.ProbableAuthenticationError)
    assert rec.named("open") == []


def test_close_before_open_aborts_and_reports() -> None:
    io, conn, rec, transport = make()
    conn.close()
    io.run()
    (error,) = rec.named("open_error")
    assert isinstance(error[1], exc.ConnectionOpenAborted)
    assert transport.aborted and conn.is_closed
    assert rec.named("open") == []


def test_close_before_attach_then_attach_refused() -> None:
    io = FakeIO()
    rec = Recorder()
    conn = TestConnection(io, None, on_open_error_callback=rec("open_error"), external_stream=True)
    conn.close()
    io.run()
    (error,) = rec.named("open_error")
    assert isinstance(error[1], exc.ConnectionOpenAborted)
    with pytest.raises(exc.ConnectionWrongStateError):
        conn.attach_stream(FakeTransport(io, FakeBroker(), _Relay()))


def test_attach_refused_without_external_stream() -> None:
    io = FakeIO()
    conn = TestConnection(io, None, on_open_error_callback=lambda c, e: None)
    with pytest.raises(exc.ConnectionWrongStateError):
        conn.attach_stream(FakeTransport(io, FakeBroker(), _Relay()))
    conn.close()
    io.run()
