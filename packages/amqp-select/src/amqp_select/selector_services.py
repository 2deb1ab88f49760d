"""amqp_core's I/O services on any loop that watches file descriptors pika's way.

:class:`SelectorIOServices` turns a loop with ``call_later``/``remove_timeout``,
``add_callback_threadsafe`` and ``add_handler``/``update_handler``/``remove_handler`` (this
package's :class:`~amqp_select.IOLoop`, and the same shape as Tornado's IOLoop) into the
:class:`amqp_core.transport.IOServices` that amqp_core's ``Connection`` runs on. It does the
socket work itself: a non-blocking connect with a time limit, TCP options, a non-blocking TLS
handshake, and a buffered stream transport.

Nothing here knows AMQP: bytes go in and out, and every decision about them is amqp_core's.

:mod:`ssl` is imported only when a TLS connection is made: with the OpenSSL libraries it loads
it costs about 6 MiB of resident memory that a plain-TCP client does not need.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

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
    lookup_host,
    numeric_address_infos,
)

__all__ = ("SelectorIOServices", "SelectorLoop", "set_tcp_options")

# The listener's write_drained fires when the unsent bytes fall to this size or below, after
# they had been above it.
WRITE_LOW_WATER = 64 * 1024

_READ = 0x0001
_WRITE = 0x0004


class SelectorLoop(Protocol):
    """The loop interface :class:`SelectorIOServices` needs (pika's selector-loop shape)."""

    READ: int
    WRITE: int

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        """Run ``callback`` after ``delay`` seconds; return a handle for remove_timeout."""

    def remove_timeout(self, timeout_handle: Any) -> None:
        """Cancel a timer made by call_later."""

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop's thread soon, from any thread."""

    def add_handler(self, fd: int, handler: Callable[[int, int], None], events: int) -> None:
        """Watch ``fd`` for ``events``."""

    def update_handler(self, fd: int, events: int) -> None:
        """Change what ``fd`` is watched for."""

    def remove_handler(self, fd: int) -> None:
        """Stop watching ``fd``."""


def set_tcp_options(sock: socket.socket, options: Mapping[str, int] | None) -> None:
    """Turn on TCP_NODELAY and set the named TCP options that this platform has.

    The rule is amqp_core's, shared by every adapter: see
    :func:`amqp_core.transport.apply_tcp_options`.
    """
    apply_tcp_options(sock, options, socket)


class _Call:
    """A timer on the loop, cancellable through amqp_core's ``Cancellable`` protocol."""

    __slots__ = ("_handle", "_loop")

    def __init__(self, loop: SelectorLoop, handle: Any) -> None:
        self._loop = loop
        self._handle = handle

    def cancel(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            self._loop.remove_timeout(handle)


class _Resolution:
    """One name lookup, run on a worker thread and reported on the loop's thread."""

    def __init__(
        self,
        loop: SelectorLoop,
        host: str,
        port: int,
        on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
    ) -> None:
        self._loop = loop
        self._on_done: Callable[[Sequence[AddressInfo] | BaseException], None] | None = on_done
        self._host = host
        self._port = port

    def start(self) -> None:
        numeric = numeric_address_infos(self._host, self._port, socket)
        if numeric is not None:
            # A numeric address resolves without asking anyone, so no thread is needed; the
            # answer still arrives from the loop, as a lookup's would.
            self._loop.call_later(0, functools.partial(self._deliver, numeric))
        else:
            threading.Thread(
                target=self._run_in_thread, name="amqp-getaddrinfo", daemon=True
            ).start()

    def _lookup(self) -> Sequence[AddressInfo] | BaseException:
        try:
            return address_infos(
                socket.getaddrinfo(lookup_host(self._host), self._port, type=socket.SOCK_STREAM)
            )
        except Exception as exc:
            return exc

    def _run_in_thread(self) -> None:
        result = self._lookup()
        try:
            self._loop.add_callback_threadsafe(lambda: self._deliver(result))
        except Exception:
            # The loop was closed meanwhile: nobody is waiting for the answer any more.
            self._on_done = None

    def _deliver(self, result: Sequence[AddressInfo] | BaseException) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done(result)

    def cancel(self) -> None:
        self._on_done = None


class _Connector:
    """Opens one stream: TCP connect (with a time limit), TCP options, then TLS if asked."""

    def __init__(
        self,
        loop: SelectorLoop,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> None:
        self._loop = loop
        self._settings = settings
        self._listener = listener
        self._on_done: Callable[[Transport | BaseException], None] | None = on_done
        self._sock: socket.socket | None = None
        self._fd = -1
        self._timer: _Call | None = None

    def start(self) -> None:
        address = self._settings.address
        try:
            sock = socket.socket(address.family, address.socktype, address.proto)
        except OSError as exc:
            error: BaseException = exc  # `exc` is unbound once the except block ends
            self._loop.call_later(0, lambda: self._finish(error))
            return
        self._sock = sock
        self._fd = sock.fileno()
        sock.setblocking(False)
        status = sock.connect_ex(address.sockaddr)
        if status not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            refused: BaseException = OSError(status, os.strerror(status))
            self._loop.call_later(0, lambda: self._finish(refused))
            return
        if self._settings.connect_timeout is not None:
            handle = self._loop.call_later(self._settings.connect_timeout, self._on_timeout)
            self._timer = _Call(self._loop, handle)
        self._loop.add_handler(self._fd, self._on_connect_event, self._loop.WRITE)

    def _on_timeout(self) -> None:
        self._timer = None
        timeout = self._settings.connect_timeout
        self._finish(TimeoutError(f"TCP connect timed out after {timeout} s"))

    def _on_connect_event(self, fd: int, events: int) -> None:
        sock = self._sock
        assert sock is not None
        status = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if status != 0:
            self._finish(OSError(status, os.strerror(status)))
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            set_tcp_options(sock, self._settings.tcp_options)
        except OSError as exc:
            self._finish(exc)
            return
        context = self._settings.ssl_context
        if context is None:
            self._loop.remove_handler(self._fd)
            self._finish(_SocketTransport(self._loop, sock, self._listener, tls=False))
            return
        try:
            tls_sock = context.wrap_socket(
                sock,
                server_side=False,
                do_handshake_on_connect=False,
                server_hostname=self._settings.server_hostname or self._settings.host,
            )
        except (OSError, ValueError) as exc:
            self._finish(exc)
            return
        # wrap_socket detached the plain socket: the TLS one owns the descriptor now.
        self._sock = tls_sock
        self._loop.remove_handler(self._fd)
        self._loop.add_handler(self._fd, self._on_handshake_event, self._loop.WRITE)

    def _on_handshake_event(self, fd: int, events: int) -> None:
        import ssl

        sock = self._sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._loop.update_handler(self._fd, self._loop.READ)
            return
        except ssl.SSLWantWriteError:
            self._loop.update_handler(self._fd, self._loop.WRITE)
            return
        except (OSError, ValueError) as exc:
            self._finish(exc)
            return
        self._loop.remove_handler(self._fd)
        self._finish(_SocketTransport(self._loop, sock, self._listener, tls=True))

    def _finish(self, result: Transport | BaseException) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is None:
            return
        if isinstance(result, BaseException):
            self._release()
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None
        on_done(result)

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sock, self._sock = self._sock, None
        if sock is not None:
            self._loop.remove_handler(self._fd)
            sock.close()

    def cancel(self) -> None:
        if self._on_done is not None:
            self._on_done = None
            self._release()


#: What a non-blocking plain socket raises when it cannot move data now.
_PLAIN_WOULD_BLOCK: Final[tuple[type[OSError], ...]] = (BlockingIOError, InterruptedError)


def _tls_errors() -> tuple[tuple[type[OSError], ...], tuple[type[OSError], ...]]:
    """A TLS socket's "try again" errors and its "the peer closed" errors (imports ssl)."""
    import ssl

    return (
        (*_PLAIN_WOULD_BLOCK, ssl.SSLWantReadError, ssl.SSLWantWriteError),
        (ssl.SSLZeroReturnError, ssl.SSLEOFError),
    )


class _SocketTransport:
    """A connected (plain or TLS) socket, pumping bytes between the OS and the listener."""

    def __init__(
        self, loop: SelectorLoop, sock: socket.socket, listener: StreamListener, *, tls: bool
    ) -> None:
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._tls = tls
        # A TLS socket also says "try again" with SSLWantRead/WriteError (either way, as
        # renegotiation may need the other direction) and "closed" with SSLZeroReturnError or
        # SSLEOFError; a plain socket raises none of them, so it never needs ssl imported.
        self._would_block, self._eof = _tls_errors() if tls else (_PLAIN_WOULD_BLOCK, ())
        self._listener = listener
        self._outgoing: deque[bytes | memoryview] = deque()
        self._outgoing_size = 0
        self._above_low_water = False
        self._events = loop.READ
        self._closing = False
        self._lost = False
        loop.add_handler(self._fd, self._on_events, self._events)
        if self._tls:
            # The handshake may have left application data inside the TLS object, where the
            # descriptor's readiness cannot announce it.
            loop.call_later(0, self._read)

    # -- Transport ------------------------------------------------------------------------

    def write(self, data: Buffer) -> None:
        if self._sock is None or self._closing:
            return
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        if not size:
            return
        sent = 0
        if not self._outgoing:
            try:
                sent = self._sock.send(data)
            except self._would_block:
                sent = 0
            except OSError as exc:
                self._shut(exc)
                return
            if sent == size:
                return
        # What stays queued is copied unless it is a whole immutable bytes: the caller may
        # reuse a mutable buffer once write returns.
        if sent or type(data) is not bytes:
            data = bytes(memoryview(data).cast("B")[sent:])
        self._outgoing.append(data)
        self._outgoing_size += size - sent
        if self._outgoing_size > WRITE_LOW_WATER:
            self._above_low_water = True
        self._watch(self._loop.READ | self._loop.WRITE)

    def write_buffer_size(self) -> int:
        return self._outgoing_size

    def close(self) -> None:
        if self._sock is None or self._closing:
            return
        self._closing = True
        if not self._outgoing:
            self._shut(None)

    def abort(self) -> None:
        if self._sock is None:
            return
        self._outgoing.clear()
        self._outgoing_size = 0
        self._shut(None)

    # -- the loop's side ------------------------------------------------------------------

    def _watch(self, events: int) -> None:
        if events != self._events and self._sock is not None:
            self._events = events
            self._loop.update_handler(self._fd, events)

    def _on_events(self, fd: int, events: int) -> None:
        if events & self._loop.WRITE:
            self._flush()
        if events & self._loop.READ and self._sock is not None and not self._closing:
            self._read()

    def _read(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(READ_SIZE)
            if self._tls:
                # TLS decrypts record by record; what it already holds must be taken now.
                pending = sock.pending()  # type: ignore[attr-defined]
                if pending and data:
                    data += sock.recv(pending)
        except self._would_block:
            return
        except self._eof:
            data = b""
        except OSError as exc:
            self._shut(exc)
            return
        if not data:
            self._shut(None)
            return
        self._listener.data_received(data)

    def _flush(self) -> None:
        sock = self._sock
        while self._outgoing and sock is not None:
            chunk = self._outgoing[0]
            try:
                sent = sock.send(chunk)
            except self._would_block:
                break
            except OSError as exc:
                self._shut(exc)
                return
            self._outgoing_size -= sent
            if sent == len(chunk):
                self._outgoing.popleft()
            else:
                # TLS needs the same buffer again after a partial or refused write, so the
                # remainder stays one object at the head of the queue.
                self._outgoing[0] = memoryview(chunk)[sent:]
                break
        if self._sock is None:
            return
        if not self._outgoing:
            self._watch(self._loop.READ)
            if self._closing:
                self._shut(None)
                return
        if self._above_low_water and self._outgoing_size <= WRITE_LOW_WATER:
            self._above_low_water = False
            self._listener.write_drained()

    def _shut(self, error: BaseException | None) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._outgoing.clear()
        self._outgoing_size = 0
        self._loop.remove_handler(self._fd)
        sock.close()
        # Reported from the loop, never from inside the call (write, close) that caused it.
        self._loop.call_later(0, lambda: self._report_lost(error))

    def _report_lost(self, error: BaseException | None) -> None:
        if not self._lost:
            self._lost = True
            self._listener.connection_lost(error)


class SelectorIOServices:
    """:class:`amqp_core.transport.IOServices` on a selector-style loop.

    Args:
        loop: The loop, e.g. an :class:`amqp_select.IOLoop`.
        clock: The loop's monotonic clock (default: ``loop.now`` if it has one, else
            :func:`time.monotonic`).
    """

    def __init__(self, loop: SelectorLoop, clock: Callable[[], float] | None = None) -> None:
        self.loop = loop
        if clock is None:
            clock = getattr(loop, "now", None)
        if clock is None:
            clock = time.monotonic
        self._clock: Callable[[], float] = clock

    def random(self) -> float:
        """Return a float in ``[0, 1)``: the jitter source of connection recovery."""
        import random  # only recovery's jitter needs it: not loaded by every program

        return random.random()

    def now(self) -> float:
        """Return the loop's monotonic clock, in seconds."""
        return self._clock()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """Run ``callback`` on the loop after ``delay`` seconds."""
        return _Call(self.loop, self.loop.call_later(delay, callback))

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop soon; callable from any thread."""
        self.loop.add_callback_threadsafe(callback)

    def getaddrinfo(
        self,
        host: str,
        port: int,
        on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
    ) -> Cancellable:
        """Resolve ``host`` on a worker thread (numeric addresses on the loop itself)."""
        resolution = _Resolution(self.loop, host, port, on_done)
        resolution.start()
        return resolution

    def connect_stream(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> Cancellable:
        """Open a TCP (and TLS) stream without blocking the loop."""
        connector = _Connector(self.loop, settings, listener, on_done)
        connector.start()
        return connector
