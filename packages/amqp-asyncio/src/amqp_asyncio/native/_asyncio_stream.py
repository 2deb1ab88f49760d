"""Plain TCP on asyncio through the loop's own transport, for :class:`AnyioServices`.

Imported only when a connection runs on asyncio, so that a program on trio does not load
asyncio (see :mod:`amqp_asyncio.native._services`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Final

import anyio

from amqp_asyncio.io_services import _StreamTransport
from amqp_asyncio.native._services import _Handle, _name_asyncio_for_callbacks
from amqp_core.transport import StreamListener, StreamSettings, Transport, apply_tcp_options

__all__ = ("run_protocol_stream",)

# An asyncio transport pauses its protocol above the high mark, resumes it at the low mark.
_TRANSPORT_HIGH_WATER: Final = 256 * 1024
_TRANSPORT_LOW_WATER: Final = 64 * 1024


async def run_protocol_stream(
    loop: asyncio.AbstractEventLoop,
    settings: StreamSettings,
    listener: StreamListener,
    on_done: Callable[[Transport | BaseException], None],
    handle: _Handle,
    on_sent: Callable[[], None],
) -> None:
    """Plain TCP on asyncio: the loop's transport, owned by this task until it ends.

    The loop hands received data straight to the listener and sends writes at once,
    with no reader or writer task to wake: a round trip costs no task switches. This
    task keeps the stream inside the task group: leaving the group aborts it, and an
    exception raised by a callback ends the group, as on the anyio path.
    """
    address = settings.address
    error: BaseException | None = None
    transport: asyncio.BaseTransport | None = None
    protocol = _Protocol(listener, on_sent)
    _name_asyncio_for_callbacks()
    sock = socket.socket(address.family, address.socktype, address.proto)
    sock.setblocking(False)
    with anyio.CancelScope() as scope:
        if handle.cancelled:
            sock.close()
            return
        handle.scope = scope
        try:
            with anyio.fail_after(settings.connect_timeout):
                await loop.sock_connect(sock, address.sockaddr)
            apply_tcp_options(sock, settings.tcp_options, socket)
            transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
        except OSError as exc:
            error = exc
    if handle.cancelled or scope.cancelled_caught or error is not None:
        if transport is not None:
            transport.abort()  # type: ignore[attr-defined]
        else:
            sock.close()
        if error is not None and not handle.cancelled:
            handle.scope = None
            on_done(error)
        return
    handle.scope = None
    assert isinstance(transport, asyncio.Transport)
    transport.set_write_buffer_limits(high=_TRANSPORT_HIGH_WATER, low=_TRANSPORT_LOW_WATER)
    protocol.transport = transport
    on_done(_StreamTransport(transport))
    try:
        await protocol.ended.wait()
    finally:
        if not protocol.lost:
            transport.abort()
            protocol.connection_lost(None)  # now, not once the loop gets to it
    if protocol.error is not None:
        raise protocol.error


class _Protocol(asyncio.Protocol):
    """Hands what an asyncio transport reports to amqp_core's listener.

    An exception from the listener (a callback of the application raised it) is kept for
    the stream's task to raise, and the stream is aborted: asyncio would only log it.
    """

    def __init__(self, listener: StreamListener, on_sent: Callable[[], None]) -> None:
        self._listener = listener
        self._on_sent = on_sent
        self.transport: asyncio.Transport | None = None
        self.ended = anyio.Event()
        self.error: BaseException | None = None
        self.lost = False

    def data_received(self, data: bytes) -> None:
        try:
            self._listener.data_received(data)
        except BaseException as error:  # the stream's task raises it in the task group
            self._fail(error)

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost(None) follows

    def resume_writing(self) -> None:
        self._on_sent()
        try:
            self._listener.write_drained()
        except BaseException as error:
            self._fail(error)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost:
            return
        self.lost = True
        # asyncio calls this in the context of whoever closed the transport (an application
        # task, perhaps under asyncio.run): anyio must still find out it runs on asyncio.
        _name_asyncio_for_callbacks()
        try:
            self._listener.connection_lost(exc)
        except BaseException as error:
            if self.error is None:
                self.error = error
        self._on_sent()
        self.ended.set()

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if self.transport is not None:
            self.transport.abort()  # connection_lost follows, then the task raises
        else:
            self.ended.set()
