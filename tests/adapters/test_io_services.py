"""The adapters' IOServices over real loopback sockets: resolve, connect, TLS, stream, close.

Each case runs on every loop (select, poll, epoll ... and asyncio) against a small threaded
echo server; nothing here involves AMQP.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme

from amqp_core.transport import AddressInfo, StreamSettings, Transport, apply_tcp_options
from tests.adapters.loops import LoopDriver

TIMEOUT = 10.0


class EchoServer:
    """Accepts connections on 127.0.0.1 and echoes, each on its own thread."""

    def __init__(
        self,
        context: ssl.SSLContext | None = None,
        *,
        behaviour: str = "echo",
    ) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._closing = threading.Event()
        self.port = self._listener.getsockname()[1]
        self._context = context
        self._behaviour = behaviour
        self.received = bytearray()
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
                break
            except TimeoutError:
                if self._closing.is_set():
                    return
            except OSError as exc:
                self.errors.append(exc)
                return
        with contextlib.ExitStack() as stack:
            stack.callback(conn.close)
            if self._context is not None:
                try:
                    conn = self._context.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError) as exc:
                    self.errors.append(exc)
                    return
                stack.callback(conn.close)
            if self._behaviour == "close":
                return
            if self._behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            conn.settimeout(TIMEOUT)
            try:
                while chunk := conn.recv(65536):
                    self.received += chunk
                    conn.sendall(chunk)
            except OSError as exc:
                self.errors.append(exc)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(TIMEOUT)
        self._listener.close()


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@dataclass
class Listener:
    """Records what a stream reports, and stops the loop when told to."""

    driver: LoopDriver
    data: bytearray = field(default_factory=bytearray)
    drained: int = 0
    lost: list[BaseException | None] = field(default_factory=list)
    stop_after: int | None = None

    def data_received(self, data: bytes) -> None:
        self.data += data
        if self.stop_after is not None and len(self.data) >= self.stop_after:
            self.driver.stop()

    def write_drained(self) -> None:
        self.drained += 1

    def connection_lost(self, error: BaseException | None) -> None:
        self.lost.append(error)
        self.driver.stop()


def settings(
    port: int,
    *,
    context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float | None = 5.0,
    host: str = "localhost",
    address: str = "127.0.0.1",
) -> StreamSettings:
    return StreamSettings(
        address=AddressInfo(
            socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, (address, port)
        ),
        host=host,
        connect_timeout=connect_timeout,
        tcp_options={"TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3, "TCP_BOGUS": 1},
        ssl_context=context,
        server_hostname=server_hostname,
    )


def connect(
    driver: LoopDriver, stream_settings: StreamSettings, listener: Listener
) -> Transport | BaseException:
    results: list[Transport | BaseException] = []

    def on_done(result: Transport | BaseException) -> None:
        results.append(result)
        driver.stop()

    driver.services().connect_stream(stream_settings, listener, on_done)
    driver.run(TIMEOUT)
    assert len(results) == 1
    return results[0]


def resolve(driver: LoopDriver, host: str, port: int) -> Sequence[AddressInfo] | BaseException:
    results: list[Sequence[AddressInfo] | BaseException] = []

    def on_done(result: Sequence[AddressInfo] | BaseException) -> None:
        results.append(result)
        driver.stop()

    driver.services().getaddrinfo(host, port, on_done)
    driver.run(TIMEOUT)
    assert len(results) == 1
    return results[0]


def test_clock_is_monotonic_seconds(driver: LoopDriver) -> None:
    services = driver.services()
    first = services.now()
    assert services.now() >= first


def test_call_later_and_cancel(driver: LoopDriver) -> None:
    services = driver.services()
    ran: list[str] = []
    cancelled = services.call_later(0.01, lambda: ran.append("cancelled"))
    cancelled.cancel()
    cancelled.cancel()
    services.call_later(0.02, lambda: ran.append("kept"))
    services.call_later(0.05, driver.stop)
    driver.run(TIMEOUT)
    assert ran == ["kept"]


def test_add_callback_threadsafe_from_another_thread(driver: LoopDriver) -> None:
    services = driver.services()
    seen: list[str] = []

    def work() -> None:
        services.add_callback_threadsafe(lambda: seen.append(threading.current_thread().name))
        services.add_callback_threadsafe(driver.stop)

    thread = threading.Thread(target=work)
    thread.start()
    driver.run(TIMEOUT)
    thread.join()
    assert seen == [threading.main_thread().name]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_getaddrinfo(driver: LoopDriver, host: str) -> None:
    result = resolve(driver, host, 5672)
    assert not isinstance(result, BaseException)
    assert ("127.0.0.1", 5672) in [info.sockaddr[:2] for info in result]
    assert all(info.socktype == socket.SOCK_STREAM for info in result)


def test_getaddrinfo_keeps_an_ipv6_address_whole(driver: LoopDriver) -> None:
    result = resolve(driver, "::1", 5672)
    assert not isinstance(result, BaseException)
    assert [info.sockaddr for info in result] == [("::1", 5672, 0, 0)]
    assert [info.family for info in result] == [socket.AF_INET6]


def test_getaddrinfo_of_a_malformed_address_fails_at_once(driver: LoopDriver) -> None:
    # Taken for an address (digits and dots), refused by getaddrinfo: never asked of DNS.
    assert isinstance(resolve(driver, "1.2.3.4.5", 5672), socket.gaierror)


def test_getaddrinfo_failure_is_reported(driver: LoopDriver) -> None:
    result = resolve(driver, "no-such-host.invalid", 5672)
    assert isinstance(result, socket.gaierror)


def test_getaddrinfo_cancelled_never_answers(driver: LoopDriver) -> None:
    answers: list[object] = []
    driver.services().getaddrinfo("localhost", 1, answers.append).cancel()
    driver.services().call_later(0.2, driver.stop)
    driver.run(TIMEOUT)
    assert answers == []


def test_plain_stream_echoes_and_closes(driver: LoopDriver, echo_server: EchoServer) -> None:
    listener = Listener(driver, stop_after=5)
    transport = connect(driver, settings(echo_server.port), listener)
    assert not isinstance(transport, BaseException)
    transport.write(b"hel")
    transport.write(bytearray(b"lo"))
    driver.run(TIMEOUT)
    assert bytes(listener.data) == b"hello"
    transport.close()
    driver.run(TIMEOUT)
    assert listener.lost == [None]
    transport.write(b"ignored after close")
    transport.close()
    assert listener.lost == [None]


#: Where each loop's adapter applies the socket options (the name it imported from amqp_core).
_TCP_OPTIONS_USER = {
    "asyncio": "amqp_asyncio.io_services",
    "tornado": "amqp_tornado.io_services",
    "gevent": "amqp_gevent.io_services",
}


def test_tcp_options_reach_the_socket(
    driver: LoopDriver, echo_server: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module(
        _TCP_OPTIONS_USER.get(driver.name, "amqp_select.selector_services")
    )
    seen: list[tuple[int, int, int, int]] = []

    def spy(sock: Any, options: Any, socket_module: Any) -> None:
        apply_tcp_options(sock, options, socket_module)
        seen.append(
            (
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            )
        )

    monkeypatch.setattr(module, "apply_tcp_options", spy)
    listener = Listener(driver, stop_after=2)
    transport = connect(driver, settings(echo_server.port), listener)
    assert not isinstance(transport, BaseException)
    transport.write(b"ok")
    driver.run(TIMEOUT)
    transport.close()
    assert len(seen) == 1
    nodelay, keepalive, keepidle, keepcnt = seen[0]
    assert nodelay
    assert keepalive
    assert (keepidle, keepcnt) == (30, 3)


def test_a_socket_option_error_fails_the_connect(
    driver: LoopDriver, echo_server: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module(
        _TCP_OPTIONS_USER.get(driver.name, "amqp_select.selector_services")
    )

    def refuse(sock: Any, options: Any, socket_module: Any) -> None:
        raise OSError(92, "Protocol not available")

    monkeypatch.setattr(module, "apply_tcp_options", refuse)
    result = connect(driver, settings(echo_server.port), Listener(driver))
    assert isinstance(result, OSError)
    assert "Protocol not available" in str(result)


def test_a_lone_write_leaves_before_the_loop_turns(
    driver: LoopDriver, echo_server: EchoServer
) -> None:
    # A request is on the wire when write() returns, not a turn of the loop later: on a
    # request/reply exchange that turn would be paid on every request.
    listener = Listener(driver, stop_after=4)
    transport = connect(driver, settings(echo_server.port), listener)
    assert not isinstance(transport, BaseException)
    seen_by_the_peer: list[bytes] = []

    def write_then_wait_in_the_callback() -> None:
        transport.write(b"ping")
        deadline = time.monotonic() + 5.0
        while bytes(echo_server.received) != b"ping" and time.monotonic() < deadline:
            time.sleep(0.01)  # a plain sleep: the loop cannot turn while this callback runs
        seen_by_the_peer.append(bytes(echo_server.received))

    driver.call_soon(write_then_wait_in_the_callback)
    driver.run(TIMEOUT)
    assert seen_by_the_peer == [b"ping"]
    assert bytes(listener.data) == b"ping"
    transport.abort()
    driver.run(TIMEOUT)


def test_big_writes_buffer_and_drain(driver: LoopDriver, echo_server: EchoServer) -> None:
    payload = bytes(range(256)) * (16 * 4096)  # 16 MiB: more than any socket buffer holds
    listener = Listener(driver, stop_after=len(payload) + 8)
    transport = connect(driver, settings(echo_server.port), listener)
    assert not isinstance(transport, BaseException)
    transport.write(payload)
    assert transport.write_buffer_size() > 0
    transport.write(b"tail")
    # And while the loop is sending the rest: still after it, in order.
    driver.call_soon(lambda: transport.write(b"end!"))
    driver.run(30.0)
    assert bytes(listener.data) == payload + b"tailend!"
    assert transport.write_buffer_size() == 0
    assert listener.drained >= 1
    transport.abort()
    driver.run(TIMEOUT)
    assert listener.lost == [None]


def test_peer_close_reports_orderly_end(driver: LoopDriver) -> None:
    server = EchoServer(behaviour="close")
    try:
        listener = Listener(driver)
        transport = connect(driver, settings(server.port), listener)
        assert not isinstance(transport, BaseException)
        if not listener.lost:  # it may have ended within the connect's own run
            driver.run(TIMEOUT)
        assert listener.lost == [None]
    finally:
        server.close()


def test_peer_reset_reports_an_error(driver: LoopDriver) -> None:
    server = EchoServer(behaviour="reset")
    try:
        listener = Listener(driver)
        transport = connect(driver, settings(server.port), listener)
        if isinstance(transport, BaseException):
            # The reset can beat the end of the connect step (setting the TCP options).
            assert isinstance(transport, ConnectionResetError)
            return
        if not listener.lost:  # it may have ended within the connect's own run
            driver.run(TIMEOUT)
        assert len(listener.lost) == 1
        assert isinstance(listener.lost[0], ConnectionResetError)
    finally:
        server.close()


def test_connection_refused(driver: LoopDriver) -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    result = connect(driver, settings(port), Listener(driver))
    assert isinstance(result, ConnectionRefusedError)


def test_connect_timeout(driver: LoopDriver) -> None:
    # A listener whose accept queue is full drops further SYNs, so the connect hangs.
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                filler = socket.socket()
                filler.setblocking(False)
                fillers.append(filler)
                filler.connect_ex(("127.0.0.1", port))
            result = connect(driver, settings(port, connect_timeout=0.3), Listener(driver))
        finally:
            for filler in fillers:
                filler.close()
    assert isinstance(result, TimeoutError)
    assert "0.3" in str(result)


def test_cancelled_connect_never_answers(driver: LoopDriver, echo_server: EchoServer) -> None:
    answers: list[object] = []
    driver.services().connect_stream(
        settings(echo_server.port), Listener(driver), answers.append
    ).cancel()
    driver.services().call_later(0.2, driver.stop)
    driver.run(TIMEOUT)
    assert answers == []


def _server_context(server_cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    return context


def test_tls_stream_echoes(
    driver: LoopDriver, ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    server = EchoServer(_server_context(server_cert))
    try:
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        payload = b"x" * 1_000_000
        listener = Listener(driver, stop_after=len(payload))
        transport = connect(driver, settings(server.port, context=client_context), listener)
        assert not isinstance(transport, BaseException)
        transport.write(payload)
        driver.run(TIMEOUT)
        assert bytes(listener.data) == payload
        transport.close()
        driver.run(TIMEOUT)
        assert listener.lost == [None]
    finally:
        server.close()


def test_a_tls_write_from_outside_the_loop_makes_no_event_loop(
    driver: LoopDriver,
    ca: trustme.CA,
    server_cert: trustme.LeafCert,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Outside a running loop, asyncio.get_event_loop() makes a loop (which then leaks) to
    # answer "which loop is current": a write must find out where it runs without it.
    def no_loop_made() -> None:
        raise AssertionError("asyncio.get_event_loop() called by a write outside the loop")

    server = EchoServer(_server_context(server_cert))
    try:
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        listener = Listener(driver, stop_after=5)
        transport = connect(driver, settings(server.port, context=client_context), listener)
        assert not isinstance(transport, BaseException)
        with monkeypatch.context() as patched:
            patched.setattr(asyncio, "get_event_loop", no_loop_made)
            transport.write(b"hello")
        driver.run(TIMEOUT)
        assert bytes(listener.data) == b"hello"
        transport.close()
        driver.run(TIMEOUT)
    finally:
        server.close()


@pytest.mark.parametrize("problem", ["untrusted", "wrong-name"])
def test_tls_verification_failure(
    driver: LoopDriver, ca: trustme.CA, server_cert: trustme.LeafCert, problem: str
) -> None:
    server = EchoServer(_server_context(server_cert))
    try:
        client_context = ssl.create_default_context()
        if problem == "wrong-name":
            ca.configure_trust(client_context)
        name = "rabbit.example" if problem == "wrong-name" else None
        result = connect(
            driver,
            settings(server.port, context=client_context, server_hostname=name),
            Listener(driver),
        )
        assert isinstance(result, ssl.SSLCertVerificationError)
        expected = "Hostname mismatch" if problem == "wrong-name" else "unable to get local issuer"
        assert expected in str(result)
    finally:
        server.close()


def test_tls_hostname_defaults_to_the_settings_host(
    driver: LoopDriver, ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    server = EchoServer(_server_context(server_cert))
    try:
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        result = connect(
            driver,
            settings(server.port, context=client_context, host="not-localhost.example"),
            Listener(driver),
        )
        assert isinstance(result, ssl.SSLCertVerificationError)
    finally:
        server.close()
