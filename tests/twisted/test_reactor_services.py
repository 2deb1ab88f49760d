# ruff: noqa: PT018
# mypy: disable-error-code="no-untyped-call"
"""amqp_twisted's reactor services (the streams of a recovery) without a reactor running.

The services and the transport wrapper are private names of ``twisted_connection``; the
streams themselves are ``amqp_twisted._reactor``.

A ``MemoryReactorClock`` records ``connectTCP``; the tests play Twisted's part (building the
protocol, connecting it to a ``StringTransport``, reporting failures) and, for TLS, the
server's, with the standard library's TLS over memory BIOs and a trustme certificate. The
real-broker scenarios (tests/twisted/scenarios.py) cover the same code end to end.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest
import trustme
from twisted.internet import error
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from amqp_core.transport import AddressInfo, StreamSettings
from amqp_twisted.twisted_connection import _ReactorServices, _TwistedTransport

ADDRESS = AddressInfo(socket.AF_INET, socket.SOCK_STREAM, 6, ("127.0.0.1", 5671))


class Listener:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.drained = 0
        self.lost: list[BaseException | None] = []

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def write_drained(self) -> None:
        self.drained += 1

    def connection_lost(self, error: BaseException | None) -> None:
        self.lost.append(error)


def settings(context: ssl.SSLContext | None = None, **kwargs: Any) -> StreamSettings:
    return StreamSettings(
        address=ADDRESS,
        host="localhost",
        connect_timeout=kwargs.pop("connect_timeout", 5.0),
        tcp_options=kwargs.pop("tcp_options", None),
        ssl_context=context,
        server_hostname=kwargs.pop("server_hostname", None),
    )


class Stream:
    """One connect_stream call on a memory reactor."""

    def __init__(self, context: ssl.SSLContext | None = None, **kwargs: Any) -> None:
        self.reactor = MemoryReactorClock()
        self.services = _ReactorServices(self.reactor)
        self.listener = Listener()
        self.outcome: list[Any] = []
        self.operation = self.services.connect_stream(
            settings(context, **kwargs), self.listener, self.outcome.append
        )
        ((self.host, self.port, self.factory, timeout, _bind),) = self.reactor.tcpClients
        self.timeout: float | None = timeout
        self.connector: Any = self.reactor.connectors[0]
        self.transport = StringTransport()
        self.protocol: Any = None

    def connect(self) -> None:
        self.protocol = self.factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)

    def sent(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return bytes(data)


def test_plain_stream_is_handed_over_and_reports_to_the_listener() -> None:
    stream = Stream(connect_timeout=None)
    assert (stream.host, stream.port, stream.timeout) == ("127.0.0.1", 5671, None)
    stream.connect()
    (transport,) = stream.outcome
    assert isinstance(transport, _TwistedTransport)
    transport.write(b"AMQP")
    transport.write(memoryview(b"\x00\x00\x09\x01"))
    assert stream.sent() == b"AMQP\x00\x00\x09\x01"
    stream.protocol.dataReceived(b"frame")
    assert stream.listener.data == [b"frame"]
    # Twisted pauses the producer: the transport reports a full buffer until it resumes.
    transport.pauseProducing()
    assert transport.write_buffer_size() > 0
    transport.resumeProducing()
    assert transport.write_buffer_size() == 0 and stream.listener.drained == 1
    stream.operation.cancel()  # too late: harmless
    assert not stream.transport.disconnecting
    stream.protocol.connectionLost(Failure(error.ConnectionLost("reset")))
    (lost,) = stream.listener.lost
    assert isinstance(lost, ConnectionError) and isinstance(lost.__cause__, error.ConnectionLost)
    stream.protocol.connectionLost(Failure(error.ConnectionDone()))  # only once
    assert len(stream.listener.lost) == 1


def test_orderly_end_is_reported_as_none() -> None:
    stream = Stream()
    stream.connect()
    (transport,) = stream.outcome
    transport.close()
    assert stream.transport.disconnecting
    stream.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert stream.listener.lost == [None]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (error.ConnectionRefusedError(), ConnectionRefusedError),
        (error.TimeoutError(), TimeoutError),
        (error.ConnectError(), ConnectionError),
        (error.DNSLookupError(), error.DNSLookupError),  # an OSError already
        (OSError(101, "Network is unreachable"), OSError),
    ],
)
def test_connect_failures_are_os_errors(failure: Exception, expected: type) -> None:
    stream = Stream()
    stream.factory.clientConnectionFailed(stream.connector, Failure(failure))
    (reported,) = stream.outcome
    assert type(reported) is expected


def test_cancel_before_the_tcp_connect_stops_connecting() -> None:
    stream = Stream()
    stream.operation.cancel()
    stream.operation.cancel()
    (connector,) = stream.reactor.connectors
    assert connector.stoppedConnecting
    # Connected anyway (a race): dropped at once, nobody told.
    stream.connect()
    stream.factory.clientConnectionFailed(stream.connector, Failure(error.ConnectionRefusedError()))
    stream.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert stream.transport.disconnecting and stream.outcome == [] and not stream.listener.lost


def test_name_resolution_of_an_address_needs_no_thread() -> None:
    reactor = MemoryReactorClock()
    services = _ReactorServices(reactor)
    got: list[Any] = []
    services.getaddrinfo("127.0.0.1", 5672, got.append)
    cancelled = services.getaddrinfo("::1", 5672, got.append)
    cancelled.cancel()
    reactor.advance(0)
    ((info,),) = got
    assert info.sockaddr == ("127.0.0.1", 5672) and info.socktype == socket.SOCK_STREAM
    services.getaddrinfo("::1", 5672, got.append)
    services.getaddrinfo("1.2.3.4.5", 5672, got.append)
    reactor.advance(0)
    (ipv6,), malformed = got[1:]
    assert ipv6.sockaddr == ("::1", 5672, 0, 0) and isinstance(malformed, socket.gaierror)
    assert 0 <= services.random() < 1
    assert services.now() == reactor.seconds()


# ---------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


class Server:
    """The broker's side of TLS, over memory BIOs."""

    def __init__(self, authority: trustme.CA) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        authority.issue_cert("localhost").configure_cert(context)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.session = context.wrap_bio(self.incoming, self.outgoing, server_side=True)

    def feed(self, data: bytes) -> bytes:
        self.incoming.write(data)
        try:
            self.session.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as alert:  # the client refused our certificate
            self.alert = alert
        return self.outgoing.read()

    alert: ssl.SSLError | None = None

    def read(self, data: bytes) -> bytes:
        self.incoming.write(data)
        try:
            return self.session.read(65536)
        except ssl.SSLWantReadError:
            return b""

    def write(self, data: bytes) -> bytes:
        self.session.write(data)
        return self.outgoing.read()


def client_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


def handshake(stream: Stream, server: Server) -> None:
    for _ in range(10):
        answer = server.feed(stream.sent())
        if answer:
            stream.protocol.dataReceived(answer)
        if stream.outcome and not answer:
            return


def test_tls_stream_encrypts_both_ways_and_says_goodbye(authority: trustme.CA) -> None:
    stream = Stream(client_context(authority))
    stream.connect()
    assert stream.outcome == []  # not before the handshake completed
    server = Server(authority)
    handshake(stream, server)
    (transport,) = stream.outcome
    transport.write(b"AMQP\x00\x00\x09\x01")
    assert server.read(stream.sent()) == b"AMQP\x00\x00\x09\x01"
    stream.protocol.dataReceived(server.write(b"Connection.Start"))
    assert b"".join(stream.listener.data) == b"Connection.Start"
    transport.close()
    assert stream.transport.disconnecting
    # The client's close_notify: a clean end of the TLS stream (read gives b"").
    assert server.read(stream.sent()) == b""
    stream.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert stream.listener.lost == [None]


def test_tls_close_from_the_server_ends_the_stream(authority: trustme.CA) -> None:
    stream = Stream(client_context(authority))
    stream.connect()
    server = Server(authority)
    handshake(stream, server)
    server.session.write(b"last words")
    with pytest.raises(ssl.SSLWantReadError):
        server.session.unwrap()
    stream.protocol.dataReceived(server.outgoing.read())
    assert stream.listener.data == [b"last words"] and stream.transport.disconnecting


def test_tls_garbage_after_the_handshake_is_a_lost_stream(authority: trustme.CA) -> None:
    stream = Stream(client_context(authority))
    stream.connect()
    handshake(stream, Server(authority))
    stream.protocol.dataReceived(b"\x17\x03\x03\x00\x05garbage")
    assert stream.transport.disconnecting
    stream.protocol.connectionLost(Failure(error.ConnectionLost()))
    (lost,) = stream.listener.lost
    assert isinstance(lost, ssl.SSLError)


def test_tls_wrong_name_fails_with_the_certificate_error(authority: trustme.CA) -> None:
    stream = Stream(client_context(authority), server_hostname="rabbit.example")
    stream.connect()
    server = Server(authority)
    handshake(stream, server)
    (failure,) = stream.outcome
    assert isinstance(failure, ssl.SSLCertVerificationError)
    assert server.alert is not None  # the client told the server why
    assert stream.transport.disconnecting
    stream.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert stream.listener.lost == [] and len(stream.outcome) == 1


def test_tls_stream_ended_in_the_handshake(authority: trustme.CA) -> None:
    stream = Stream(client_context(authority))
    stream.connect()
    stream.protocol.connectionLost(Failure(error.ConnectionDone()))
    (failure,) = stream.outcome
    assert isinstance(failure, ssl.SSLEOFError)


def test_cancel_in_the_tls_handshake_drops_the_stream(authority: trustme.CA) -> None:
    stream = Stream(client_context(authority))
    stream.connect()
    stream.operation.cancel()
    assert stream.transport.disconnecting
    stream.protocol.dataReceived(Server(authority).feed(stream.sent()))
    stream.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert stream.outcome == [] and stream.listener.lost == []


class _SocketTransport(StringTransport):
    """A StringTransport that, like Twisted's TCP transport, hands out a socket."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def getHandle(self) -> socket.socket:
        return self.sock


def test_tcp_options_are_set_on_the_socket() -> None:
    stream = Stream(tcp_options={"TCP_KEEPIDLE": 31, "TCP_KEEPCNT": 2})
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        stream.transport = _SocketTransport(sock)
        stream.connect()
        assert len(stream.outcome) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 31
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 2


class _SocketLikeTransport(StringTransport):
    """A StringTransport with a Twisted socket transport's doWrite, which counts its calls."""

    connected = True

    def __init__(self) -> None:
        super().__init__()
        self.sends = 0

    def doWrite(self) -> None:
        self.sends += 1


def test_a_write_on_a_socket_transport_is_sent_at_once_unless_paused_or_closing() -> None:
    wrapped = _SocketLikeTransport()
    transport = _TwistedTransport(wrapped)
    transport.write(b"a")
    assert wrapped.sends == 1
    transport.pauseProducing()  # Twisted's doWrite would resume it from inside write()
    transport.write(b"b")
    assert wrapped.sends == 1
    transport.resumeProducing()
    wrapped.disconnecting = True  # its doWrite would finish the close for the reactor
    transport.write(b"c")
    wrapped.disconnecting = False
    wrapped.connected = False
    transport.write(b"d")
    assert wrapped.sends == 1
    assert wrapped.value() == b"abcd"  # all of it handed to Twisted, in order


def test_a_transport_without_do_write_is_left_to_the_reactor() -> None:
    wrapped = StringTransport()
    transport = _TwistedTransport(wrapped)
    transport.write(b"hello")
    assert wrapped.value() == b"hello"
