"""amqp_core's I/O services on a Tornado IOLoop.

:class:`TornadoIOServices` gives amqp_core's ``Connection`` the IOLoop's clock, timers and
thread-safe callbacks, resolves names with Tornado's default (non-blocking) resolver, and opens
streams: a non-blocking TCP connect under a time limit, then either a plain socket watched with
the IOLoop's ``add_handler`` (each read reaches amqp_core in the callback that made it, each
write is sent at once) or, when a TLS context is given, a Tornado
:class:`~tornado.iostream.IOStream` after ``start_tls``.

Nothing here knows AMQP: bytes go in and out, and every decision about them is amqp_core's.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tornado.ioloop import IOLoop

from amqp_core._types import Buffer
from amqp_core.transport import (
    READ_SIZE,
    AddressInfo,
    Cancellable,
    StreamListener,
    StreamSettings,
    Transport,
    apply_tcp_options,
    numeric_address_infos,
)

if TYPE_CHECKING:
    # Imported where they are used: a plain connection to a numeric address needs neither, and
    # the two modules weigh about 0.6 MiB.
    from tornado.iostream import IOStream
    from tornado.netutil import Resolver

__all__ = ("TornadoIOServices",)

# The listener hears write_drained when the unsent bytes fall to this size or below, after they
# had been above it.
_WRITE_LOW_WATER = 64 * 1024
# Queued writes smaller than this are joined into one send of up to this size.
_JOIN_LIMIT = 256 * 1024


def _real_error(error: BaseException) -> BaseException:
    # Tornado wraps the socket's own error; amqp_core wants the original (OSError, SSLError).
    from tornado.iostream import StreamClosedError

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
    """A name resolution in progress; cancelling it drops its result."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def _on_loop_check(ioloop: IOLoop) -> Callable[[], bool]:
    """Return a cheap test of "this code runs inside ``ioloop`` now"."""
    asyncio_loop = getattr(ioloop, "asyncio_loop", None)
    if asyncio_loop is not None:
        # Tornado 6 runs on asyncio: asking asyncio for the running loop is a C call, much
        # cheaper than IOLoop.current(), and this test runs on every write.
        return lambda: asyncio._get_running_loop() is asyncio_loop
    return lambda: IOLoop.current(instance=False) is ioloop


class _SocketTransport:
    """amqp_core's Transport over a plain non-blocking TCP socket watched by the IOLoop.

    The socket is watched with ``add_handler`` (pika's TornadoConnection does the same): what
    arrives is read in the READ handler and given to the listener in that same callback, and a
    write goes to the socket at once when nothing is queued. IOStream would instead resolve a
    future per read and per write, whose callbacks run one loop iteration later; on a
    request/response protocol that iteration is on every round trip.

    The socket and its queue belong to the IOLoop's thread: a write or close from outside the
    loop (a test's body, another thread) is handed to the loop, and later writes queue behind
    it so the order holds.
    """

    def __init__(self, ioloop: IOLoop, sock: socket.socket, listener: StreamListener) -> None:
        self._ioloop = ioloop
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._listener = listener
        self._on_loop_now = _on_loop_check(ioloop)
        self._outgoing: deque[bytes | memoryview] = deque()
        self._outgoing_size = 0  # bytes queued here, not yet taken by the OS
        self._handed_size = 0  # bytes of writes handed to the loop, not yet queued
        self._handed_over = 0  # how many such writes
        # Other threads add to those two counts while the loop takes from them.
        self._handed_lock = threading.Lock()
        self._above_low_water = False
        self._events = IOLoop.READ
        self._closing = False  # close() was asked: no more writes, shut once drained
        self._lost = False
        ioloop.add_handler(self._fd, self._on_events, self._events)

    def _on_loop(self) -> bool:
        return self._handed_over == 0 and self._on_loop_now()

    # -- Transport ------------------------------------------------------------------------

    def write(self, data: Buffer) -> None:
        if self._sock is None or self._closing:
            return
        if self._on_loop():
            self._write_now(data)
            return
        # The caller may reuse a mutable buffer once write returns.
        chunk = data if type(data) is bytes else bytes(data)
        if not chunk:
            return
        with self._handed_lock:
            self._handed_over += 1
            self._handed_size += len(chunk)
        self._ioloop.add_callback(self._write_handed_over, chunk)

    def _write_handed_over(self, chunk: bytes) -> None:
        with self._handed_lock:
            self._handed_over -= 1
            self._handed_size -= len(chunk)
        self._write_now(chunk)

    def _write_now(self, data: Buffer) -> None:
        sock = self._sock
        if sock is None:
            return
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        if not size:
            return
        sent = 0
        if not self._outgoing:
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
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
        if self._outgoing_size > _WRITE_LOW_WATER:
            self._above_low_water = True
        self._watch(IOLoop.READ | IOLoop.WRITE)

    def write_buffer_size(self) -> int:
        return self._outgoing_size + self._handed_size

    def close(self) -> None:
        if self._sock is None or self._closing:
            return
        self._closing = True
        if self._on_loop():
            self._close_now()
        else:
            # Behind the writes already handed over, which must go out first.
            self._ioloop.add_callback(self._close_now)

    def _close_now(self) -> None:
        if self._sock is not None and not self._outgoing:
            self._shut(None)
        # Otherwise _flush shuts the socket once the queue has drained.

    def abort(self) -> None:
        if self._on_loop_now():
            self._abort_now()
        else:
            self._ioloop.add_callback(self._abort_now)

    def _abort_now(self) -> None:
        self._shut(None)

    # -- the IOLoop's side ----------------------------------------------------------------

    def _watch(self, events: int) -> None:
        if events != self._events and self._sock is not None:
            self._events = events
            self._ioloop.update_handler(self._fd, events)

    def _on_events(self, fd: Any, events: int) -> None:
        if events & IOLoop.WRITE:
            self._flush()
        if events & (IOLoop.READ | IOLoop.ERROR) and self._sock is not None:
            self._read()

    def _read(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._shut(exc)
            return
        if not data:
            self._shut(None)
            return
        self._listener.data_received(data)

    def _flush(self) -> None:
        outgoing = self._outgoing
        while outgoing and self._sock is not None:
            if len(outgoing) > 1 and len(outgoing[0]) < _JOIN_LIMIT:
                # Many small frames (a publisher's) go out in one send rather than one each.
                pieces = [outgoing.popleft()]
                joined = len(pieces[0])
                while outgoing and joined + len(outgoing[0]) <= _JOIN_LIMIT:
                    joined += len(outgoing[0])
                    pieces.append(outgoing.popleft())
                outgoing.appendleft(b"".join(pieces))
            chunk = outgoing[0]
            try:
                sent = self._sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._shut(exc)
                return
            self._outgoing_size -= sent
            if sent == len(chunk):
                outgoing.popleft()
            else:
                outgoing[0] = memoryview(chunk)[sent:]
                break
        if self._sock is None:
            return
        if not outgoing:
            self._watch(IOLoop.READ)
            if self._closing:
                self._shut(None)
                return
        if self._above_low_water and self._outgoing_size <= _WRITE_LOW_WATER:
            self._above_low_water = False
            self._listener.write_drained()

    def _shut(self, error: BaseException | None) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._outgoing.clear()
        self._outgoing_size = 0
        self._ioloop.remove_handler(self._fd)
        sock.close()
        # Reported from the loop, never from inside the call (write, close) that caused it.
        self._ioloop.add_callback(self._report_lost, error)

    def _report_lost(self, error: BaseException | None) -> None:
        if not self._lost:
            self._lost = True
            self._listener.connection_lost(error)


class _StreamTransport:
    """amqp_core's Transport over a Tornado IOStream (TLS streams); reports to the listener.

    IOStream's futures belong to the loop that is running when they are made, so every call
    into the stream that makes one happens on the IOLoop: a write or close from outside it
    (a test's body, a thread) is handed to the loop, and later writes queue behind it.
    """

    def __init__(self, ioloop: IOLoop, stream: IOStream, listener: StreamListener) -> None:
        from tornado.iostream import StreamClosedError  # loaded with the stream: TLS only

        self._closed_error = StreamClosedError  # looked up once, not per read
        self._ioloop = ioloop
        self._stream = stream
        self._listener = listener
        self._on_loop_now = _on_loop_check(ioloop)
        self._written = 0  # bytes given to write() so far
        self._flushed = 0  # of which Tornado has passed this many to the OS
        self._handed_over = 0  # writes waiting for the IOLoop
        self._lost = False
        stream.set_close_callback(self._on_close)
        self._read()

    def _read(self) -> None:
        try:
            future: Any = self._stream.read_bytes(READ_SIZE, partial=True)
        except self._closed_error:
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
        # Not IOLoop.current(): outside a running loop it has asyncio make (and leak) one.
        return self._handed_over == 0 and self._on_loop_now()

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


class _Connector:
    """Opens one stream: a non-blocking TCP connect under a time limit, then TCP options.

    A TLS stream then becomes a Tornado IOStream, whose ``start_tls`` does the handshake.
    """

    def __init__(
        self,
        ioloop: IOLoop,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> None:
        self._ioloop = ioloop
        self._settings = settings
        self._listener = listener
        self._on_done: Callable[[Transport | BaseException], None] | None = on_done
        self._sock: socket.socket | None = None
        self._fd = -1
        self._watching = False
        self._timer: object | None = None
        self._handshake: Any = None

    def start(self) -> None:
        if self._on_done is None:
            return  # cancelled before the IOLoop got to it
        address = self._settings.address
        try:
            sock = socket.socket(address.family, address.socktype, address.proto)
        except OSError as exc:
            self._ioloop.add_callback(self._finish, exc)
            return
        self._sock = sock
        self._fd = sock.fileno()
        sock.setblocking(False)
        status = sock.connect_ex(address.sockaddr)
        if status not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self._ioloop.add_callback(self._finish, OSError(status, os.strerror(status)))
            return
        if self._settings.connect_timeout is not None:
            self._timer = self._ioloop.call_later(
                max(self._settings.connect_timeout, 0.0), self._on_timeout
            )
        self._ioloop.add_handler(self._fd, self._on_connected, IOLoop.WRITE)
        self._watching = True

    def _on_timeout(self) -> None:
        self._timer = None
        timeout = self._settings.connect_timeout
        self._finish(TimeoutError(f"TCP connect timed out after {timeout} s"))

    def _unwatch(self) -> None:
        if self._watching:
            self._watching = False
            self._ioloop.remove_handler(self._fd)

    def _on_connected(self, fd: Any, events: int) -> None:
        sock = self._sock
        if sock is None:
            return
        status = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if status != 0:
            self._finish(OSError(status, os.strerror(status)))
            return
        self._unwatch()
        if self._timer is not None:
            self._ioloop.remove_timeout(self._timer)
            self._timer = None
        try:
            apply_tcp_options(sock, self._settings.tcp_options, socket)
        except OSError as exc:
            self._finish(exc)
            return
        context = self._settings.ssl_context
        if context is None:
            self._sock = None
            self._finish(_SocketTransport(self._ioloop, sock, self._listener))
            return
        # start_tls takes the socket over; cancelling its future closes the new stream.
        self._sock = None
        try:
            from tornado.iostream import IOStream

            stream = IOStream(sock)
            handshake: Any = stream.start_tls(
                False,
                ssl_options=context,
                server_hostname=self._settings.server_hostname or self._settings.host,
            )
        except Exception as exc:
            sock.close()
            self._finish(exc)
            return
        self._handshake = handshake
        handshake.add_done_callback(self._on_handshake)

    def _on_handshake(self, handshake: Any) -> None:
        self._handshake = None
        if handshake.cancelled():
            return
        error = handshake.exception()
        if error is not None:
            self._finish(_real_error(error))
            return
        stream: IOStream = handshake.result()
        if self._on_done is None:
            stream.close()
            return
        self._finish(_StreamTransport(self._ioloop, stream, self._listener))

    def _finish(self, result: Transport | BaseException) -> None:
        on_done, self._on_done = self._on_done, None
        if isinstance(result, BaseException):
            self._release()
        if on_done is not None:
            on_done(result)

    def _release(self) -> None:
        if self._timer is not None:
            self._ioloop.remove_timeout(self._timer)
            self._timer = None
        self._unwatch()
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        handshake, self._handshake = self._handshake, None
        if handshake is not None:
            handshake.cancel()

    def cancel(self) -> None:
        if self._on_done is not None:
            self._on_done = None
            self._release()


class TornadoIOServices:
    """:class:`amqp_core.transport.IOServices` on a Tornado IOLoop.

    Args:
        ioloop: The IOLoop to run on.
    """

    def __init__(self, ioloop: IOLoop) -> None:
        self.ioloop = ioloop
        self._resolver: Resolver | None = None  # made for the first name that is not numeric

    def random(self) -> float:
        """Return a float in ``[0, 1)``: the jitter source of connection recovery."""
        import random  # only recovery's jitter needs it: not loaded by every program

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
            try:
                # Numeric: answered locally at once, without the resolver's thread.
                numeric = numeric_address_infos(host, port, socket)
                if numeric is not None:
                    result = numeric
                else:
                    if self._resolver is None:
                        from tornado.netutil import Resolver

                        self._resolver = Resolver()
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
        """Open a TCP stream (on the IOLoop's handlers) or a TLS one (a Tornado IOStream)."""
        connector = _Connector(self.ioloop, settings, listener, on_done)
        self.ioloop.add_callback(connector.start)
        return connector
