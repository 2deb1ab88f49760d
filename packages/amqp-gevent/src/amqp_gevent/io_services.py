"""amqp_core's I/O services on gevent's hub, with greenlets doing the socket work.

:class:`GeventIOServices` runs every callback of amqp_core in a greenlet of its own (never in
the hub itself, so user callbacks may use gevent's blocking calls). A connected stream has two
greenlets: one reads and feeds the listener, one sends what is queued. TLS runs over memory
BIOs (``ssl.SSLContext.wrap_bio``), so any standard ``ssl.SSLContext`` works and nothing of
gevent's private SSL machinery is needed; the process does not have to be monkey-patched.

Nothing here knows AMQP: bytes go in and out, and every decision about them is amqp_core's.

:mod:`ssl` is imported only by the TLS code: with the OpenSSL libraries it loads it costs about
6 MiB of resident memory that a plain-TCP client does not need.
"""

from __future__ import annotations

import collections
import contextlib
import socket as stdlib_socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
import gevent.socket
from gevent.hub import Hub

from amqp_core._types import Buffer
from amqp_core.transport import (
    READ_SIZE,
    AddressInfo,
    Cancellable,
    StreamListener,
    StreamSettings,
    Transport,
    address_infos,
    apply_tcp_options,
    numeric_address_infos,
)

if TYPE_CHECKING:
    import ssl

    from amqp_core.tls import TLSSession

__all__ = ("GeventIOServices",)

# The listener hears write_drained when the send queue falls below this.
_WRITE_LOW_WATER = 64 * 1024


class _Greenlet:
    """A spawned greenlet, called off by killing it (it never runs if not started yet)."""

    __slots__ = ("_greenlet",)

    def __init__(self, greenlet: gevent.Greenlet[Any, Any]) -> None:
        self._greenlet = greenlet

    def cancel(self) -> None:
        self._greenlet.kill(block=False)


def _tls_handshake(context: ssl.SSLContext, server_hostname: str, sock: Any) -> TLSSession:
    """Run a whole TLS handshake over the (cooperative) socket ``sock``; return the session.

    Raises:
        ssl.SSLError: the handshake failed (our alert was sent to the peer first).
    """
    import ssl

    from amqp_core.tls import TLSSession

    tls = TLSSession(context, server_hostname)
    data = b""
    while True:
        try:
            done = tls.handshake(data)
        except ssl.SSLError:
            # Send our alert, so the peer learns why, then report the failure.
            with contextlib.suppress(OSError):
                sock.sendall(tls.outgoing.read())
            raise
        if tls.outgoing.pending:
            sock.sendall(tls.outgoing.read())
        if done:
            return tls
        data = sock.recv(READ_SIZE)
        if not data:
            raise ssl.SSLEOFError(8, "the peer closed the stream in the TLS handshake")


class _StreamTransport:
    """amqp_core's Transport over a gevent socket, with a reader and a writer greenlet."""

    def __init__(self, sock: Any, tls: TLSSession | None, listener: StreamListener) -> None:
        self._sock = sock
        self._tls = tls
        self._listener = listener
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._sending = False  # the writer greenlet is sending (it may be waiting for room)
        self._wake = gevent.event.Event()
        self._closing = False  # close(): send what is queued, then close
        self._closed = False  # the socket is closed by us
        self._lost = False
        self._hub = gevent.get_hub()
        self._reader = gevent.spawn(self._read_loop)
        self._writer = gevent.spawn(self._write_loop)

    # -- reading

    def _read_loop(self) -> None:
        error: BaseException | None = None
        try:
            while True:
                data = self._sock.recv(READ_SIZE)
                if not data:
                    break
                ended = False
                if self._tls is not None:
                    data, ended = self._tls.decrypt(data)
                    self._send_tls_output()
                if data:
                    self._deliver(data)
                if ended:
                    break
        except OSError as exc:  # ssl.SSLError included
            error = None if self._closed else exc
        self._shut()
        self._report(error)

    def _deliver(self, data: bytes) -> None:
        try:
            self._listener.data_received(data)
        except Exception:
            # A user callback raised. Report it the way gevent reports a failed greenlet, and
            # keep reading: amqp_core picks up the events still pending on its own.
            self._hub.handle_error(self, *sys.exc_info())

    def _report(self, error: BaseException | None) -> None:
        if not self._lost:
            self._lost = True
            self._listener.connection_lost(error)

    # -- writing

    def write(self, data: Buffer) -> None:
        if self._closing or self._closed:
            return
        if self._tls is not None:
            chunk = self._tls.encrypt(data)
        else:
            # The caller may reuse a mutable buffer once write returns.
            chunk = data if type(data) is bytes else bytes(data)
        if not self._queue and not self._sending:
            # Nothing ahead of it: the socket takes what it can now, without waiting (a
            # timeout of 0). Waking the writer greenlet instead costs a turn of the hub
            # before the bytes leave: on every request of a request/reply exchange.
            try:
                sent = self._sock.send(chunk, 0, 0.0)
            except OSError:
                sent = 0  # full (BlockingIOError), or broken: the writer meets the error
            if sent == len(chunk):
                return
            chunk = chunk[sent:]
        self._queue.append(chunk)
        self._queued += len(chunk)
        self._wake.set()

    def _send_tls_output(self) -> None:
        # Reading can make TLS answer by itself (key updates ...): queue what it produced.
        assert self._tls is not None
        if self._tls.outgoing.pending and not self._closed:
            chunk = self._tls.outgoing.read()
            self._queue.append(chunk)
            self._queued += len(chunk)
            self._wake.set()

    def _write_loop(self) -> None:
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                while self._queue:
                    chunk = self._queue.popleft()
                    self._send_all(chunk)
                    before = self._queued
                    self._queued -= len(chunk)
                    if before >= _WRITE_LOW_WATER > self._queued:
                        self._listener.write_drained()
                if self._closing:
                    self._shut()
                    return
        except OSError:
            # The reader sees the broken stream too and reports it.
            self._shut()

    def _send_all(self, chunk: bytes) -> None:
        # gevent's sendall asks the kernel for SO_SNDBUF on every call: plain sends here.
        self._sending = True
        try:
            view = memoryview(chunk)
            while view:
                view = view[self._sock.send(view) :]
        finally:
            self._sending = False

    def write_buffer_size(self) -> int:
        return self._queued

    # -- ending

    def _shut(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(stdlib_socket.SHUT_RDWR)
            self._sock.close()

    def close(self) -> None:
        if self._closing or self._closed:
            return
        self._closing = True
        self._wake.set()

    def abort(self) -> None:
        self._queue.clear()
        self._queued = 0
        self._writer.kill(block=False)
        self._shut()


class GeventIOServices:
    """:class:`amqp_core.transport.IOServices` on a gevent hub.

    The object also serves as the connection's ``ioloop``: :meth:`start` blocks the calling
    greenlet until :meth:`stop` (pika's ``connection.ioloop.start()`` idiom).

    Args:
        hub: The hub to run on; by default the current thread's.
    """

    def __init__(self, hub: Hub | None = None) -> None:
        self.hub: Hub = hub if hub is not None else gevent.get_hub()
        self._stopped = gevent.event.Event()

    def random(self) -> float:
        """Return a float in ``[0, 1)``: the jitter source of connection recovery."""
        import random  # only recovery's jitter needs it: not loaded by every program

        return random.random()

    def now(self) -> float:
        """Return a monotonic clock, in seconds."""
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """Run ``callback`` in a new greenlet after ``delay`` seconds."""
        return _Greenlet(gevent.spawn_later(max(delay, 0.0), callback))

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in a greenlet of the hub's thread soon; callable from any thread."""
        self.hub.loop.run_callback_threadsafe(gevent.spawn, callback)

    def getaddrinfo(
        self,
        host: str,
        port: int,
        on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
    ) -> Cancellable:
        """Resolve ``host`` with gevent's resolver (numeric addresses locally), in a greenlet."""

        def resolve() -> None:
            result: Sequence[AddressInfo] | BaseException
            try:
                numeric = numeric_address_infos(host, port, stdlib_socket)
                if numeric is not None:
                    result = numeric
                else:
                    result = address_infos(
                        gevent.socket.getaddrinfo(host, port, 0, stdlib_socket.SOCK_STREAM)
                    )
            except Exception as exc:
                result = exc
            on_done(result)

        return _Greenlet(gevent.spawn(resolve))

    def connect_stream(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> Cancellable:
        """Open a TCP (and TLS) stream with a gevent socket, in a greenlet."""
        return _Greenlet(gevent.spawn(self._connect, settings, listener, on_done))

    @staticmethod
    def _connect(
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> None:
        address = settings.address
        sock: Any = None
        try:
            sock = gevent.socket.socket(address.family, address.socktype, address.proto)
            sock.settimeout(settings.connect_timeout)
            try:
                sock.connect(address.sockaddr)
            except TimeoutError:
                raise TimeoutError(
                    f"TCP connect timed out after {settings.connect_timeout} s"
                ) from None
            sock.settimeout(None)
            apply_tcp_options(sock, settings.tcp_options, stdlib_socket)
            tls = None
            if settings.ssl_context is not None:
                tls = _tls_handshake(
                    settings.ssl_context, settings.server_hostname or settings.host, sock
                )
        except Exception as exc:
            if sock is not None:
                sock.close()
            on_done(exc)
            return
        except BaseException:
            # Cancelled (the greenlet was killed): drop the half-made stream.
            if sock is not None:
                sock.close()
            raise
        on_done(_StreamTransport(sock, tls, listener))

    def start(self) -> None:
        """Block the calling greenlet until :meth:`stop` is called."""
        self._stopped.wait()
        self._stopped.clear()

    def stop(self) -> None:
        """End a :meth:`start`; a stop before the start ends the next start at once."""
        self._stopped.set()
