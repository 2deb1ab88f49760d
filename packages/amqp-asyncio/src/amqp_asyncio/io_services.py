"""amqp_core's I/O services on an asyncio event loop.

:class:`AsyncioIOServices` gives amqp_core's ``Connection`` the loop's clock, timers and
thread-safe callbacks, resolves names with the loop's own resolver, and opens streams with the
loop's transports: ``sock_connect`` under a time limit for TCP, then ``create_connection`` over
the connected socket, which does the TLS handshake when a context is given. A small protocol
object forwards what the stream reports to amqp_core's listener.

Nothing here knows AMQP: bytes go in and out, and every decision about them is amqp_core's.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from typing import Any

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

__all__ = ("AsyncioIOServices",)

# asyncio pauses the protocol above the high mark and resumes it at the low mark; the resume is
# what the listener hears as write_drained.
_WRITE_HIGH_WATER = 256 * 1024
_WRITE_LOW_WATER = 64 * 1024


class _BufferedReads(asyncio.BufferedProtocol):
    """An asyncio protocol that reads into a buffer of its own and hands ``data_received`` bytes.

    A plain ``asyncio.Protocol`` is read with ``recv(256 KiB)``, which costs an ``mmap`` and a
    ``munmap`` per read however little arrives (see ``amqp_core.transport.READ_SIZE``); this
    asks for :data:`~amqp_core.transport.READ_SIZE` at a time and copies out what came.
    """

    def __init__(self) -> None:
        self._read_view = memoryview(bytearray(READ_SIZE))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._read_view[:nbytes]))

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError


class _StreamProtocol(_BufferedReads):
    """Forwards what an asyncio transport reports to amqp_core's listener."""

    def __init__(self, listener: StreamListener) -> None:
        super().__init__()
        self._listener = listener
        self._lost = False

    def data_received(self, data: bytes) -> None:
        self._listener.data_received(data)

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost(None) follows

    def resume_writing(self) -> None:
        self._listener.write_drained()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost:
            self._lost = True
            self._listener.connection_lost(exc)


class _StreamTransport:
    """amqp_core's Transport over an asyncio transport."""

    __slots__ = ("_transport",)

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: Buffer) -> None:
        if self._transport.is_closing():
            return
        # asyncio may keep a reference to what it cannot send at once; the caller may reuse a
        # mutable buffer after write returns.
        self._transport.write(data if type(data) is bytes else bytes(data))

    def write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()


class _Task:
    """A running coroutine, cancellable without its callback running."""

    __slots__ = ("_task",)

    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    def cancel(self) -> None:
        self._task.cancel()


class AsyncioIOServices:
    """:class:`amqp_core.transport.IOServices` on an asyncio event loop.

    Args:
        loop: The event loop to run on.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def random(self) -> float:
        """Return a float in ``[0, 1)``: the jitter source of connection recovery."""
        import random  # only recovery's jitter needs it: not loaded by every program

        return random.random()

    def now(self) -> float:
        """Return the loop's monotonic clock, in seconds."""
        return self.loop.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """Run ``callback`` on the loop after ``delay`` seconds."""
        return self.loop.call_later(max(delay, 0.0), callback)

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop soon; callable from any thread."""
        self.loop.call_soon_threadsafe(callback)

    def getaddrinfo(
        self,
        host: str,
        port: int,
        on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
    ) -> Cancellable:
        """Resolve ``host`` with the loop's resolver (numeric addresses without a thread)."""
        return _Task(self.loop.create_task(self._resolve(host, port, on_done)))

    async def _resolve(
        self,
        host: str,
        port: int,
        on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
    ) -> None:
        result: Sequence[AddressInfo] | BaseException
        try:
            # Numeric: answered locally at once, no executor thread to start or shut down.
            numeric = numeric_address_infos(host, port, socket)
            if numeric is not None:
                result = numeric
            else:
                result = address_infos(
                    await self.loop.getaddrinfo(lookup_host(host), port, type=socket.SOCK_STREAM)
                )
        except Exception as exc:
            result = exc
        on_done(result)

    def connect_stream(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> Cancellable:
        """Open a TCP (and TLS) stream with the loop's transports."""
        return _Task(self.loop.create_task(self._connect(settings, listener, on_done)))

    async def _connect(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> None:
        address = settings.address
        sock: socket.socket | None = None
        transport: asyncio.BaseTransport | None = None
        try:
            sock = socket.socket(address.family, address.socktype, address.proto)
            sock.setblocking(False)
            connect = self.loop.sock_connect(sock, address.sockaddr)
            try:
                await asyncio.wait_for(connect, settings.connect_timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"TCP connect timed out after {settings.connect_timeout} s"
                ) from None
            apply_tcp_options(sock, settings.tcp_options, socket)
            extra: dict[str, Any] = {}
            if settings.ssl_context is not None:
                extra["ssl"] = settings.ssl_context
                extra["server_hostname"] = settings.server_hostname or settings.host
            transport, _ = await self.loop.create_connection(
                lambda: _StreamProtocol(listener), sock=sock, **extra
            )
        except asyncio.CancelledError:
            if transport is not None:
                transport.abort()  # type: ignore[attr-defined]
            elif sock is not None:
                sock.close()
            raise
        except Exception as exc:
            if sock is not None:
                sock.close()
            on_done(exc)
            return
        assert isinstance(transport, asyncio.Transport)
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER, low=_WRITE_LOW_WATER)
        on_done(_StreamTransport(transport))
