# ruff: noqa: PT018, RUF059
from __future__ import annotations

import ssl
from typing import Any

import pytest

from amqp_core import exceptions as exc
from amqp_core.parameters import ConnectionParameters, URLParameters
from amqp_core.testing.peer import FakeBroker

from .helpers import FakeIO, Recorder, TestConnection, addr


def start(io: FakeIO, params: Any) -> tuple[TestConnection, Recorder]:
    rec = Recorder()
    conn = TestConnection(
        io,
        params,
        on_open_callback=rec("open"),
        on_open_error_callback=rec("err"),
        on_close_callback=rec("close"),
    )
    return conn, rec


def test_first_host_fails_second_works() -> None:
    io = FakeIO()
    io.hosts["a"] = [addr("10.0.0.1")]
    io.hosts["b"] = [addr("127.0.0.1")]
    conn, rec = start(io, [ConnectionParameters("a"), ConnectionParameters("b")])
    io.run()
    assert conn.is_open and conn.params.host == "b"
    assert [r[1] for r in io.resolves] == ["a", "b"]


def test_every_address_tried_in_order() -> None:
    io = FakeIO()
    io.hosts["h"] = [addr("10.0.0.1"), addr("10.0.0.2"), addr("127.0.0.1")]
    conn, rec = start(io, ConnectionParameters("h", port=5))
    io.run()
    assert conn.is_open
    assert [s.address.sockaddr for _, s in io.connects] == [
        ("10.0.0.1", 5),
        ("10.0.0.2", 5),
        ("127.0.0.1", 5),
    ]
    assert io.connects[0][1].connect_timeout == 10.0


def test_attempts_and_retry_delay_timings() -> None:
    io = FakeIO()
    io.hosts["h"] = OSError("no such host")
    t0 = io.time
    conn, rec = start(io, ConnectionParameters("h", connection_attempts=3, retry_delay=2.5))
    io.run(100)
    assert [t - t0 for t, _, _ in io.resolves] == [0, 2.5, 5.0]
    (err,) = rec.named("err")
    assert isinstance(err[1], exc.AMQPConnectionError) and "h:5672" in str(err[1])
    assert "name resolution" in str(err[1])
    failed = err[1].__cause__
    assert isinstance(failed, exc.AMQPConnectionWorkflowFailed) and len(failed.exceptions) == 3
    assert "3 exceptions" in repr(failed)
    io2 = FakeIO()
    io2.hosts["h"] = []
    conn2, rec2 = start(io2, ConnectionParameters("h"))
    io2.run()
    assert "no address" in repr(rec2.named("err")[0][1])


def test_stack_timeout_moves_on() -> None:
    io = FakeIO()
    io.hosts["h"] = [addr("10.0.0.9"), addr("127.0.0.1")]
    io.endpoints["10.0.0.9"] = "hang"
    conn, rec = start(io, ConnectionParameters("h", stack_timeout=3))
    io.run(2.9)
    assert not conn.is_open
    io.run(0.2)
    assert conn.connection_state == conn.CONNECTION_OPEN
    io = FakeIO()
    io.endpoints["127.0.0.1"] = "hang"
    conn, rec = start(io, ConnectionParameters(stack_timeout=3, socket_timeout=None))
    io.run(5)
    (err,) = rec.named("err")
    assert "stack_timeout" in str(err[1]) and err[1].port == 5672


def test_stack_timeout_during_amqp_handshake() -> None:
    class Silent(FakeBroker):
        def receive_data(self, data: bytes) -> None:
            pass

    io = FakeIO()
    io.endpoints["127.0.0.1"] = Silent
    conn, rec = start(io, ConnectionParameters(stack_timeout=2))
    io.run(3)
    assert io.transport.aborted and "stack_timeout" in str(rec.named("err")[0][1])


def test_auth_failure_vs_access_refused() -> None:
    io = FakeIO()
    conn, rec = start(io, URLParameters("amqp://guest:wr0ngpass@localhost/"))
    io.run()
    (err,) = rec.named("err")
    assert isinstance(err[1], exc.ProbableAuthenticationError)
    assert "403" in repr(err[1]) and "wr0ngpass" not in repr(err[1]) + str(err[1])
    assert err[1].host == "localhost"
    io = FakeIO()
    conn, rec = start(io, URLParameters("amqp://guest:guest@localhost/nope"))
    io.run()
    assert isinstance(rec.named("err")[0][1], exc.ProbableAccessDeniedError)
    io = FakeIO()
    io.endpoints["127.0.0.1"] = lambda: FakeBroker(authentication_failure_close=False)
    conn, rec = start(io, URLParameters("amqp://guest:wr0ngpass@localhost/"))
    io.run()
    assert isinstance(rec.named("err")[0][1], exc.ProbableAuthenticationError)


def test_tls_phase_error_and_settings() -> None:
    io = FakeIO()
    io.endpoints["127.0.0.1"] = ssl.SSLCertVerificationError(1, "certificate verify failed")
    io.hosts["h"] = [addr("127.0.0.1")]
    conn, rec = start(
        io, URLParameters("amqps://u:t0psecret@h?ssl_options={'server_hostname':'sni'}")
    )
    io.run()
    (err,) = rec.named("err")
    assert "TLS phase" in str(err[1]) and "h:5671" in str(err[1])
    assert "t0psecret" not in str(err[1]) + repr(err[1]) + repr(err[1].__cause__)
    settings = io.connects[0][1]
    assert settings.ssl_context is not None and settings.server_hostname == "sni"


def test_incompatible_protocol() -> None:
    class NotAmqp(FakeBroker):
        def receive_data(self, data: bytes) -> None:
            self.send_raw(b"HTTP/1.1 400 Bad\r\n\r\n")

    io = FakeIO()
    io.endpoints["127.0.0.1"] = NotAmqp
    conn, rec = start(io, None)
    io.run()
    assert isinstance(rec.named("err")[0][1], exc.AMQPConnectionError)


def test_abort_after_done_is_harmless() -> None:
    io = FakeIO()
    conn, rec = start(io, None)
    io.run()
    conn._workflow.abort()
    assert conn.is_open


def test_internal_connection_workflow_false_is_refused_in_the_core_for_every_adapter() -> None:
    from amqp_asyncio import AsyncioConnection
    from amqp_core.connection import Connection
    from amqp_select import SelectConnection

    Connection.check_workflow_option(True)
    with pytest.raises(NotImplementedError, match="pass several parameters"):
        Connection.check_workflow_option(False)
    # The adapters refuse it before building any loop services (nothing to leak or close).
    for adapter in (SelectConnection, AsyncioConnection):
        with pytest.raises(NotImplementedError, match="internal_connection_workflow=False"):
            adapter(internal_connection_workflow=False)
