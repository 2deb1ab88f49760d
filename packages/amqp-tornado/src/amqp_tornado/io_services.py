"""amqp_core's I/O services on a Tornado IOLoop.

:class:`TornadoIOServices` gives amqp_core's ``Connection`` the IOLoop's clock, timers and
thread-safe callbacks, resolves names with Tornado's default (non-blocking) resolver, and opens
streams as Tornado :class:`~tornado.iostream.IOStream` objects: ``connect`` under a time limit,
then ``start_tls`` when a TLS context is given.

Nothing here knows AMQP: bytes go in and out, and every decision about them is amqp_core's.
"""

from __future__ import annotations

import contextlib
import datetime
import random
import socket
from collections.abc import Callable, Sequence
from typing import Any

from tornado import gen
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError
from tornado.netutil import Resolver, is_valid_ip
from tornado.util import TimeoutError as TornadoTimeoutError

from amqp_core._types import Buffer
from amqp_core.transport import (
    AddressInfo,
    Cancellable,
    StreamListener,
    StreamSettings,
    Transport,
    apply_tcp_options,
)

__all__ = ("TornadoIOServices",)

_READ_CHUNK = 256 * 1024
# The listener hears write_drained when what Tornado still holds falls below this.
_WRITE_LOW_WATER = 64 * 1024


def _real_error(error: BaseException) -> BaseException:
    # Tornado wraps the socket's own error; amqp_core wants the original (OSError, SSLError).
    if isinstance(error, StreamClosedError):
        return error.real_error or ConnectionError("the stream closed")
    return error


class _Timeout:
    """A pending IOLoop timeout."""

    __slots__ = ("_handle", "_ioloop")

    def __init__(self, ioloop: IOLoop, handle: object) -> None:
        self._ioloop = ioloop
        self._handle = handle

    def cancel(self) -> None:
        self._ioloop.remove_timeout(self._handle)


class _Operation:
    """A resolution or a connect in progress; cancelling it drops its result."""

    __slots__ = ("cancelled", "future", "stream")

    def __init__(self) -> None:
        self.cancelled = False
        self.stream: IOStream | None = None
        self.future: Any = None

    def cancel(self) -> None:
        self.cancelled = True
        if self.stream is not None:
            self.stream.close()
        if self.future is not None:
            self.future.cancel()


class _StreamTransport:
    """amqp_core's Transport over a Tornado IOStream; reports to the listener.

    IOStream's futures belong to the loop that is running when they are made, so every call
    into the stream that makes one happens on the IOLoop: a write or close from outside it
    (a test's body, a thread) is handed to the loop, and later writes queue behind it.
    """

    def __init__(self, ioloop: IOLoop, stream: IOStream, listener: StreamListener) -> None:
        self._ioloop = ioloop
        self._stream = stream
        self._listener = listener
        self._written = 0  # bytes given to write() so far
        self._flushed = 0  # of which Tornado has passed this many to the OS
        self._handed_over = 0  # writes waiting for the IOLoop
        self._lost = False
        stream.set_close_callback(self._on_close)
        self._read()

    def _read(self) -> None:
        try:
            future: Any = self._stream.read_bytes(_READ_CHUNK, partial=True)
        except StreamClosedError:
            # Closed before we asked (the peer may end the stream at once): the close callback
            # may never come, so report the end ourselves, after what is being delivered now.
            self._ioloop.add_callback(self._on_close)
            return
        future.add_done_callback(self._on_read)

    def _on_read(self, future: Any) -> None:
        if future.cancelled() or future.exception() is not None:
            self._ioloop.add_callback(self._on_close)
            return
        # Ask for more first: a callback that raises must not stop the reading.
        self._read()
        self._listener.data_received(future.result())

    def _on_close(self) -> None:
        if not self._lost:
            self._lost = True
            self._listener.connection_lost(self._stream.error)

    def _on_loop(self) -> bool:
        return self._handed_over == 0 and IOLoop.current(instance=False) is self._ioloop

    def write(self, data: Buffer) -> None:
        if self._stream.closed():
            return
        # Tornado may keep a reference to the data; the caller may reuse a mutable buffer.
        chunk = data if type(data) is bytes else bytes(data)
        self._written += len(chunk)
        if self._on_loop():
            self._write_now(chunk, self._written)
        else:
            self._handed_over += 1
            self._ioloop.add_callback(self._write_handed_over, chunk, self._written)

    def _write_handed_over(self, chunk: bytes, mark: int) -> None:
        self._handed_over -= 1
        self._write_now(chunk, mark)

    def _write_now(self, chunk: bytes, mark: int) -> None:
        if self._stream.closed():
            return
        future: Any = self._stream.write(chunk)
        future.add_done_callback(lambda done: self._on_flushed(done, mark))

    def _on_flushed(self, future: Any, mark: int) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        before = self._written - self._flushed
        self._flushed = max(self._flushed, mark)
        if before >= _WRITE_LOW_WATER > self._written - self._flushed:
            self._listener.write_drained()

    def write_buffer_size(self) -> int:
        if self._stream.closed():
            return 0
        return self._written - self._flushed

    def close(self) -> None:
        if self._on_loop():
            self._close_now()
        else:
            self._ioloop.add_callback(self._close_now)

    def _close_now(self) -> None:
        if self._stream.closed():
            return
        # IOStream.close drops unsent data: close once what is queued has gone out.
        future: Any = self._stream.write(b"")
        future.add_done_callback(lambda done: self._stream.close())

    def abort(self) -> None:
        self._stream.close()


class TornadoIOServices:
    """:class:`amqp_core.transport.IOServices` on a Tornado IOLoop.

    Args:
        ioloop: The IOLoop to run on.
    """

    def __init__(self, ioloop: IOLoop) -> None:
        self.ioloop = ioloop
        self._resolver = Resolver()

    def random(self) -> float:
        """Return a float in ``[0, 1)``: the jitter source of connection recovery."""
        return random.random()

    def now(self) -> float:
        """Return the IOLoop's monotonic clock, in seconds."""
        return self.ioloop.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """Run ``callback`` on the IOLoop after ``delay`` seconds."""
        return _Timeout(self.ioloop, self.ioloop.call_later(max(delay, 0.0), callback))

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the IOLoop soon; callable from any thread."""
        self.ioloop.add_callback(callback)

    def getaddrinfo(
        self,
        host: str,
        port: int,
        on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
    ) -> Cancellable:
        """Resolve ``host`` with Tornado's resolver, without blocking the IOLoop."""
        operation = _Operation()

        async def resolve() -> None:
            result: Sequence[AddressInfo] | BaseException
            found: list[tuple[int, Any]]
            try:
                if is_valid_ip(host):
                    # Numeric: answered locally at once, without the resolver's thread.
                    infos = socket.getaddrinfo(
                        host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
                    )
                    found = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
                else:
                    found = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
                result = [
                    AddressInfo(int(family), socket.SOCK_STREAM, socket.IPPROTO_TCP, sockaddr)
                    for family, sockaddr in found
                ]
            except Exception as exc:
                result = exc
            if not operation.cancelled:
                on_done(result)

        self.ioloop.add_callback(resolve)
        return operation

    def connect_stream(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> Cancellable:
        """Open a TCP (and TLS) stream as a Tornado IOStream."""
        operation = _Operation()
        self.ioloop.add_callback(self._connect, settings, listener, on_done, operation)
        return operation

    async def _connect(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
        operation: _Operation,
    ) -> None:
        address = settings.address
        try:
            sock = socket.socket(address.family, address.socktype, address.proto)
            stream = operation.stream = IOStream(sock)
            connect: Any = stream.connect(address.sockaddr)
            if settings.connect_timeout is not None:
                limit = datetime.timedelta(seconds=settings.connect_timeout)
                connect = gen.with_timeout(limit, connect)
            try:
                await connect
            except TornadoTimeoutError:
                stream.close()
                raise TimeoutError(
                    f"TCP connect timed out after {settings.connect_timeout} s"
                ) from None
            with contextlib.suppress(OSError):
                # The peer may have ended the stream already; the transport reports that.
                apply_tcp_options(sock, settings.tcp_options, socket)
            if settings.ssl_context is not None:
                # start_tls takes the socket over; cancelling its future closes the new stream.
                operation.stream = None
                handshake: Any = stream.start_tls(
                    False,
                    ssl_options=settings.ssl_context,
                    server_hostname=settings.server_hostname or settings.host,
                )
                operation.future = handshake
                stream = await handshake
                operation.future = None
        except Exception as exc:
            if operation.stream is not None:
                operation.stream.close()
            if not operation.cancelled:
                on_done(_real_error(exc))
            return
        if operation.cancelled:
            stream.close()
            return
        operation.stream = None
        on_done(_StreamTransport(self.ioloop, stream, listener))
