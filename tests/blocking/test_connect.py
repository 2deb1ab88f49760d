"""Opening a BlockingConnection: where names are resolved, and what fails how."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from amqp_blocking import BlockingConnection, _io
from amqp_core import recovery as rc
from amqp_core.exceptions import AMQPConnectionError
from amqp_core.parameters import ConnectionParameters, URLParameters
from amqp_core.transport import apply_tcp_options
from tests.blocking.proxy import TCPProxy

pytestmark = pytest.mark.timeout(60)


def test_first_resolution_runs_in_the_callers_thread(
    params: URLParameters, resolver_threads: list[str]
) -> None:
    with BlockingConnection(params) as connection:
        assert connection.is_open
    assert resolver_threads == [threading.current_thread().name]


def test_unknown_host_is_a_typed_error(params: URLParameters) -> None:
    bad = ConnectionParameters(
        host="no-such-host.invalid", port=params.port, connection_attempts=2, retry_delay=0.05
    )
    started = time.monotonic()
    with pytest.raises(AMQPConnectionError, match="name resolution"):
        BlockingConnection(bad)
    # The retry resolves on the I/O thread's side (aside from it), and still ends.
    assert time.monotonic() - started < 30


def test_a_slow_resolver_during_recovery_holds_up_no_thread(
    amqp_url: str, proxy: TCPProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = URLParameters(amqp_url)
    params = ConnectionParameters(
        host="127.0.0.1",
        port=proxy.port,
        virtual_host=url.virtual_host,
        credentials=url.credentials,
        recovery=rc.RecoveryPolicy(initial_delay=0.01, max_delay=0.1, max_duration=30),
    )
    connection = BlockingConnection(params)
    resolving = threading.Event()
    release = threading.Event()
    resolve = _io._resolve

    def slow(host: str, port: int) -> Any:
        resolving.set()
        release.wait(20)
        return resolve(host, port)

    monkeypatch.setattr(_io, "_resolve", slow)
    events: list[Any] = []
    connection.add_recovery_listener(lambda _c, event: events.append(event))
    try:
        proxy.cut()
        assert resolving.wait(10)
        # The resolver hangs; the connection still answers this thread at once.
        started = time.monotonic()
        ran: list[bool] = []
        connection.add_callback_threadsafe(lambda: ran.append(True))
        connection.process_data_events(0)
        assert ran == [True]
        assert connection.is_recovering
        assert time.monotonic() - started < 1.0
        release.set()
        deadline = time.monotonic() + 20
        while not any(isinstance(e, rc.Recovered) for e in events):
            assert time.monotonic() < deadline
            connection.process_data_events(0.05)
        channel = connection.channel()
        assert channel.queue_declare("", exclusive=True).method.message_count == 0
    finally:
        release.set()
        connection.close()


def test_tcp_options_reach_the_socket(
    params: URLParameters, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int, int]] = []

    def spy(sock: socket.socket, options: Any, socket_module: Any) -> None:
        apply_tcp_options(sock, options, socket_module)
        seen.append(
            (
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            )
        )

    monkeypatch.setattr(_io, "apply_tcp_options", spy)
    params.tcp_options = {"TCP_KEEPINTVL": 9}
    with BlockingConnection(params) as connection:
        assert connection.is_open
    assert seen == [(1, 1, 9)]


def test_a_socket_option_error_fails_the_attempt(
    params: URLParameters, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(sock: socket.socket, options: Any, socket_module: Any) -> None:
        raise OSError(92, "Protocol not available")

    monkeypatch.setattr(_io, "apply_tcp_options", refuse)
    bad = ConnectionParameters(host=params.host, port=params.port, connection_attempts=1)
    with pytest.raises(AMQPConnectionError, match="Protocol not available"):
        BlockingConnection(bad)
