"""The streams of a recovery, opened with a Twisted reactor when amqp_core asks for them.

The first stream of a ``TwistedProtocolConnection`` is connected by the application (an
endpoint, ``ClientCreator`` ...). The streams of a recovery are amqp_core's: it picks the host
and the moment, and asks the adapter's I/O services to resolve the name and connect. This
module does that on the reactor: the name is resolved in the reactor's thread pool, the TCP
connection made with ``reactor.connectTCP``, and TLS is the standard library's ``ssl`` over
memory BIOs, so the ``ssl.SSLContext`` of ``SSLOptions`` serves here as for every adapter.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from twisted.internet import error as twisted_error
from twisted.internet import protocol, threads
from twisted.python.failure import Failure

from amqp_core._types import Buffer
from amqp_core.tls import TLSSession
from amqp_core.transport import (
    AddressInfo,
    Cancellable,
    StreamListener,
    StreamSettings,
    Transport,
    address_infos,
    apply_tcp_options,
    lookup_host,
    numeric_address_infos,
)


class _Operation:
    """A resolution or a connect under way; cancelling it drops its outcome."""

    __slots__ = ("cancelled", "on_cancel")

    def __init__(self) -> None:
        self.cancelled = False
        self.on_cancel: Callable[[], None] | None = None

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        if self.on_cancel is not None:
            self.on_cancel()


class AdapterTransport(Transport, Protocol):
    """The adapter's Transport over a Twisted transport, told where to report write drains."""

    listener: StreamListener | None


class _Encrypting:
    """A Twisted transport seen through a TLS session: what is written leaves encrypted."""

    def __init__(self, transport: Any, tls: TLSSession) -> None:
        self._transport = transport
        self._tls = tls

    def write(self, data: Buffer) -> None:
        self._transport.write(self._tls.encrypt(data))

    def loseConnection(self) -> None:
        # Say goodbye in TLS (close_notify) before the TCP close; the peer's answer is not
        # waited for.
        self._transport.write(self._tls.goodbye())
        self._transport.loseConnection()

    def abortConnection(self) -> None:
        self._transport.abortConnection()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._transport.unregisterProducer()


def _set_tcp_options(transport: Any, options: Mapping[str, int] | None) -> None:
    # Twisted's TCP transport hands out its socket; amqp_core decides what is set on it.
    handle = getattr(transport, "getHandle", None)
    sock = handle() if handle is not None else None
    if isinstance(sock, socket.socket):
        apply_tcp_options(sock, options, socket)


def _stream_error(failure: Failure) -> BaseException:
    """Twisted's connect errors as the OSError / TimeoutError the Transport contract names."""
    value = failure.value
    assert isinstance(value, BaseException)
    if isinstance(value, (OSError, ssl.SSLError)):
        return value
    mapped: BaseException
    if isinstance(value, twisted_error.TimeoutError):
        mapped = TimeoutError(str(value))
    elif isinstance(value, twisted_error.ConnectionRefusedError):
        mapped = ConnectionRefusedError(str(value))
    else:
        mapped = ConnectionError(str(value))
    mapped.__cause__ = value
    return mapped


Wrap = Callable[[Any], AdapterTransport]


class _StreamProtocol(protocol.Protocol):
    """The protocol of one stream amqp_core asked for: TLS if wanted, then its listener."""

    def __init__(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
        operation: _Operation,
        wrap: Wrap,
    ) -> None:
        self.settings = settings
        self.listener = listener
        self.on_done: Callable[[Transport | BaseException], None] | None = on_done
        self.operation = operation
        self.wrap = wrap
        self.tls: TLSSession | None = None
        self.wrapper: AdapterTransport | None = None

    def _tcp(self) -> Any:
        # Twisted's transport, untyped: the interface stubs do not type its methods.
        return self.transport

    def connectionMade(self) -> None:
        if self.operation.cancelled:
            self.on_done = None
            self._tcp().abortConnection()
            return
        self.operation.on_cancel = self._cancel
        with contextlib.suppress(OSError):
            _set_tcp_options(self.transport, self.settings.tcp_options)
        context = self.settings.ssl_context
        if context is None:
            self._ready(self.wrap(self.transport))
            return
        try:
            self.tls = TLSSession(context, self.settings.server_hostname or self.settings.host)
            self._handshake(b"")
        except ssl.SSLError as exc:
            self._fail(exc)

    def _cancel(self) -> None:
        # Cancelled in the TLS handshake: the stream was never handed over.
        if self.on_done is not None:
            self.on_done = None
            self._tcp().abortConnection()

    def _handshake(self, data: bytes) -> None:
        tls = self.tls
        assert tls is not None
        done = tls.handshake(data)
        if tls.outgoing.pending:
            self._tcp().write(tls.outgoing.read())
        if done:
            self._ready(self.wrap(_Encrypting(self.transport, tls)))
            # Application data that came with the end of the handshake.
            self._deliver(b"")

    def _fail(self, exc: BaseException) -> None:
        tls = self.tls
        if tls is not None and tls.outgoing.pending:
            # Send our alert, so the peer learns why.
            self._tcp().write(tls.outgoing.read())
        on_done, self.on_done = self.on_done, None
        self._tcp().abortConnection()
        if on_done is not None:
            on_done(exc)

    def _ready(self, wrapper: AdapterTransport) -> None:
        on_done, self.on_done = self.on_done, None
        self.operation.on_cancel = None
        self.wrapper = wrapper
        wrapper.listener = self.listener
        assert on_done is not None
        on_done(wrapper)

    def dataReceived(self, data: bytes) -> None:
        if self.wrapper is None:
            if self.on_done is None:
                return
            try:
                self._handshake(data)
            except ssl.SSLError as exc:
                self._fail(exc)
            return
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        tls = self.tls
        if tls is None:
            self.listener.data_received(data)
            return
        try:
            plain, closed = tls.decrypt(data)
        except ssl.SSLError as exc:
            # A broken TLS stream: end it, and report why when it has ended.
            self._tls_error = exc
            self._tcp().abortConnection()
            return
        if plain:
            self.listener.data_received(plain)
        if closed:
            self._tcp().loseConnection()

    _tls_error: BaseException | None = None

    def connectionLost(self, reason: Failure = twisted_error.ConnectionDone) -> None:  # type: ignore[assignment]
        on_done, self.on_done = self.on_done, None
        if on_done is not None:
            # Ended in the TLS handshake.
            failure = reason.value
            error = ssl.SSLEOFError(8, f"the stream ended in the TLS handshake: {failure!r}")
            on_done(error)
            return
        wrapper = self.wrapper
        if wrapper is None:
            return
        wrapper.listener = None
        self.wrapper = None
        if self._tls_error is not None:
            self.listener.connection_lost(self._tls_error)
        elif isinstance(reason.value, twisted_error.ConnectionDone):
            self.listener.connection_lost(None)
        else:
            self.listener.connection_lost(_stream_error(reason))


class _StreamFactory(protocol.ClientFactory):
    def __init__(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
        operation: _Operation,
        wrap: Wrap,
    ) -> None:
        self.settings = settings
        self.listener = listener
        self.on_done = on_done
        self.operation = operation
        self.wrap = wrap

    def buildProtocol(self, addr: Any) -> _StreamProtocol:
        return _StreamProtocol(
            self.settings, self.listener, self.on_done, self.operation, self.wrap
        )

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if not self.operation.cancelled:
            self.on_done(_stream_error(reason))


def resolve(
    reactor: Any,
    host: str,
    port: int,
    on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
) -> Cancellable:
    """Resolve ``host`` in the reactor's thread pool (a numeric address at once).

    Args:
        reactor: the reactor.
        host: the name or address.
        port: the port the addresses get.
        on_done: gets the addresses, or the exception the resolver raised.

    Returns:
        What cancels it (``on_done`` is then not called).
    """
    operation = _Operation()

    def lookup() -> list[AddressInfo]:
        infos = socket.getaddrinfo(lookup_host(host), port, type=socket.SOCK_STREAM)
        return address_infos(infos)

    def finish(result: Any) -> None:
        if operation.cancelled:
            return
        if isinstance(result, Failure):
            assert isinstance(result.value, BaseException)
            result = result.value
        on_done(result)

    numeric = numeric_address_infos(host, port, socket)
    if numeric is not None:
        # Answered locally: no thread pool to start (or to stop with the reactor).
        reactor.callLater(0, finish, numeric)
    else:
        deferred = threads.deferToThreadPool(reactor, reactor.getThreadPool(), lookup)
        deferred.addBoth(finish)
    return operation


def connect(
    reactor: Any,
    settings: StreamSettings,
    listener: StreamListener,
    on_done: Callable[[Transport | BaseException], None],
    wrap: Wrap,
) -> Cancellable:
    """Connect TCP with ``reactor.connectTCP``, then TLS over it when ``settings`` ask.

    Args:
        reactor: the reactor.
        settings: where to, and how (amqp_core's choice).
        listener: what the stream reports to once handed over.
        on_done: gets the Transport (``wrap`` of the Twisted transport, or of its TLS view)
            once the stream is ready, or the ``OSError`` / ``ssl.SSLError`` that stopped it.
        wrap: makes the adapter's Transport of a Twisted transport.

    Returns:
        What cancels it before the stream is handed over.
    """
    operation = _Operation()
    factory = _StreamFactory(settings, listener, on_done, operation, wrap)
    sockaddr = settings.address.sockaddr
    connector = reactor.connectTCP(
        sockaddr[0], sockaddr[1], factory, timeout=settings.connect_timeout
    )

    def stop() -> None:
        # Connected meanwhile: the protocol took over cancelling (see _StreamProtocol).
        with contextlib.suppress(twisted_error.NotConnectingError):
            connector.stopConnecting()

    operation.on_cancel = stop
    return operation
