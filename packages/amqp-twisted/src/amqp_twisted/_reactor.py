"""amqp_core's I/O services on a Twisted reactor: clock, timers, name resolution, streams.

The first stream of a ``TwistedProtocolConnection`` is connected by the application (an
endpoint, ``ClientCreator`` ...). The streams of a recovery are asked for by amqp_core, which
picks the host and the moment; :class:`ReactorServices` only resolves the name (in the
reactor's thread pool) and connects with ``reactor.connectTCP``. TLS is the standard library's
``ssl`` over memory BIOs, so the same ``ssl.SSLContext`` of ``SSLOptions`` serves every adapter.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet import error as twisted_error
from twisted.internet import interfaces, threads
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure
from zope.interface import classImplements  # type: ignore[import-untyped]

from amqp_core._types import Buffer
from amqp_core.connection import WRITE_HIGH_WATER
from amqp_core.transport import AddressInfo, Cancellable, StreamListener, StreamSettings, Transport

_READ_CHUNK = 256 * 1024


class _Timer:
    __slots__ = ("_call",)

    def __init__(self, call: Any) -> None:
        self._call = call

    def cancel(self) -> None:
        if self._call.active():
            self._call.cancel()


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


class TwistedTransport:
    """amqp_core's Transport over a Twisted transport.

    Twisted does not tell how much it buffers, only when to pause (as a push producer): while
    paused, the transport reports a full buffer, so amqp_core holds its output back.
    """

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._paused = False
        self.listener: StreamListener | None = None
        transport.registerProducer(self, True)
        self._registered = True

    def write(self, data: Buffer) -> None:
        self._transport.write(data if type(data) is bytes else bytes(data))

    def write_buffer_size(self) -> int:
        return WRITE_HIGH_WATER if self._paused else 0

    def close(self) -> None:
        # A transport with a registered producer (TLS's in particular) waits for it to go
        # away before it closes.
        self._unregister()
        self._transport.loseConnection()

    def abort(self) -> None:
        self._unregister()
        self._transport.abortConnection()

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            self._transport.unregisterProducer()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        if self.listener is not None:
            self.listener.write_drained()

    def stopProducing(self) -> None:
        self._paused = False


# Twisted pauses and resumes a registered producer; say what the transport wrapper is.
classImplements(TwistedTransport, interfaces.IPushProducer)


class _TLSTransport(TwistedTransport):
    """The same, with what amqp_core writes encrypted by a memory-BIO TLS session."""

    def __init__(self, transport: Any, tls: _TLS) -> None:
        super().__init__(transport)
        self._tls = tls

    def write(self, data: Buffer) -> None:
        self._transport.write(self._tls.encrypt(data))

    def close(self) -> None:
        # Say goodbye in TLS (close_notify) before the TCP close; the peer's answer is not
        # waited for.
        with contextlib.suppress(ssl.SSLError):
            self._tls.session.unwrap()
        self._transport.write(self._tls.outgoing.read())
        super().close()


class _TLS:
    """A TLS client session over memory BIOs: the stream carries what ``outgoing`` collects."""

    def __init__(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.session = context.wrap_bio(
            self.incoming, self.outgoing, server_hostname=server_hostname
        )

    def handshake(self, data: bytes) -> bool:
        """Feed ``data`` to the handshake; return whether it is done (raises if it failed)."""
        self.incoming.write(data)
        try:
            self.session.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def decrypt(self, data: bytes) -> tuple[bytes, bool]:
        """Return the plaintext that ``data`` completes, and whether the peer closed TLS."""
        self.incoming.write(data)
        pieces: list[bytes] = []
        while True:
            try:
                piece = self.session.read(_READ_CHUNK)
            except ssl.SSLWantReadError:
                return b"".join(pieces), False
            except ssl.SSLZeroReturnError:
                return b"".join(pieces), True
            if not piece:
                # The peer's close_notify: Python's SSLObject.read returns b"" for it.
                return b"".join(pieces), True
            pieces.append(piece)

    def encrypt(self, data: Buffer) -> bytes:
        self.session.write(data)
        return self.outgoing.read()


def _set_tcp_options(transport: Any, options: Mapping[str, int] | None) -> None:
    # TCP_NODELAY always; then each named option this platform has (keepalive on with them).
    handle = getattr(transport, "getHandle", None)
    sock = handle() if handle is not None else None
    if not isinstance(sock, socket.socket):
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    keepalive = False
    for name, value in (options or {}).items():
        option = getattr(socket, name, None)
        if not name.startswith("TCP_") or not isinstance(option, int):
            continue
        sock.setsockopt(socket.IPPROTO_TCP, option, value)
        keepalive = keepalive or name.startswith("TCP_KEEP")
    if keepalive:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


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


class _StreamProtocol(Protocol):
    """The protocol of one stream amqp_core asked for: TLS if wanted, then its listener."""

    def __init__(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
        operation: _Operation,
    ) -> None:
        self.settings = settings
        self.listener = listener
        self.on_done: Callable[[Transport | BaseException], None] | None = on_done
        self.operation = operation
        self.tls: _TLS | None = None
        self.wrapper: TwistedTransport | None = None

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
            self._ready(TwistedTransport(self.transport))
            return
        try:
            self.tls = _TLS(context, self.settings.server_hostname or self.settings.host)
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
            self._ready(_TLSTransport(self.transport, tls))
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

    def _ready(self, wrapper: TwistedTransport) -> None:
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


class _StreamFactory(ClientFactory):
    def __init__(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
        operation: _Operation,
    ) -> None:
        self.settings = settings
        self.listener = listener
        self.on_done = on_done
        self.operation = operation

    def buildProtocol(self, addr: Any) -> _StreamProtocol:
        return _StreamProtocol(self.settings, self.listener, self.on_done, self.operation)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if not self.operation.cancelled:
            self.on_done(_stream_error(reason))


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


class ReactorServices:
    """amqp_core's I/O services on a reactor.

    Args:
        reactor: the reactor.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def random(self) -> float:
        """Return a float in ``[0, 1)``: the jitter source of connection recovery."""
        return random.random()

    def now(self) -> float:
        """Return the reactor's clock, in seconds."""
        return float(self.reactor.seconds())

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """Run ``callback`` on the reactor after ``delay`` seconds."""
        return _Timer(self.reactor.callLater(max(delay, 0.0), callback))

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the reactor soon; callable from any thread."""
        self.reactor.callFromThread(callback)

    def getaddrinfo(
        self,
        host: str,
        port: int,
        on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
    ) -> Cancellable:
        """Resolve ``host`` in the reactor's thread pool (numeric addresses at once)."""
        operation = _Operation()

        def resolve() -> list[AddressInfo]:
            flags = socket.AI_NUMERICHOST if _is_ip_literal(host) else 0
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=flags)
            return [
                AddressInfo(int(family), int(socktype), proto, sockaddr)  # type: ignore[arg-type]
                for family, socktype, proto, _, sockaddr in infos
            ]

        def finish(result: Any) -> None:
            if operation.cancelled:
                return
            if isinstance(result, Failure):
                assert isinstance(result.value, BaseException)
                result = result.value
            on_done(result)

        if _is_ip_literal(host):
            # Answered locally: no thread pool to start (or to stop with the reactor).
            def answer() -> None:
                try:
                    result: Any = resolve()
                except OSError as exc:
                    result = exc
                finish(result)

            self.reactor.callLater(0, answer)
        else:
            deferred = threads.deferToThreadPool(
                self.reactor, self.reactor.getThreadPool(), resolve
            )
            deferred.addBoth(finish)
        return operation

    def connect_stream(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> Cancellable:
        """Connect TCP with ``reactor.connectTCP``, then TLS over it when asked."""
        operation = _Operation()
        factory = _StreamFactory(settings, listener, on_done, operation)
        sockaddr = settings.address.sockaddr
        connector = self.reactor.connectTCP(
            sockaddr[0], sockaddr[1], factory, timeout=settings.connect_timeout
        )

        def stop() -> None:
            # Connected meanwhile: the protocol took over cancelling (see _StreamProtocol).
            with contextlib.suppress(twisted_error.NotConnectingError):
                connector.stopConnecting()

        operation.on_cancel = stop
        return operation
