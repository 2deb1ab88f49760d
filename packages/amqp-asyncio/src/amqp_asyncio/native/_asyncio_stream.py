"""Plain TCP on asyncio through the loop's own transport, for :class:`AnyioServices`.

Imported only when a connection runs on asyncio, so that a program on trio does not load
asyncio (see :mod:`amqp_asyncio.native._services`).
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
from collections.abc import Callable
from typing import Final

import anyio

from amqp_asyncio.io_services import _BufferedReads, _StreamTransport
from amqp_asyncio.native._services import _Handle, _name_asyncio_for_callbacks
from amqp_core.transport import StreamListener, StreamSettings, Transport, apply_tcp_options

__all__ = ("WakeupFuture", "Wakeups", "run_protocol_stream")

# An asyncio transport pauses its protocol above the high mark, resumes it at the low mark.
_TRANSPORT_HIGH_WATER: Final = 256 * 1024
_TRANSPORT_LOW_WATER: Final = 64 * 1024


async def run_protocol_stream(
    settings: StreamSettings,
    listener: StreamListener,
    on_done: Callable[[Transport | BaseException], None],
    handle: _Handle,
    on_sent: Callable[[], None],
    wakeups: Wakeups,
) -> None:
    """Plain TCP on asyncio: the loop's transport, owned by this task until it ends.

    The loop hands received data straight to the listener and sends writes at once,
    with no reader or writer task to wake: a round trip costs no task switches. This
    task keeps the stream inside the task group: leaving the group aborts it, and an
    exception raised by a callback ends the group, as on the anyio path. The tasks whose
    replies arrive in a piece of data are woken by ``wakeups`` once it has been handled.
    """
    loop = wakeups.loop
    address = settings.address
    error: BaseException | None = None
    transport: asyncio.BaseTransport | None = None
    protocol = _Protocol(listener, on_sent, wakeups)
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


class _Protocol(_BufferedReads):
    """Hands what an asyncio transport reports to amqp_core's listener.

    An exception from the listener (a callback of the application raised it) is kept for
    the stream's task to raise, and the stream is aborted: asyncio would only log it.
    """

    def __init__(
        self, listener: StreamListener, on_sent: Callable[[], None], wakeups: Wakeups
    ) -> None:
        super().__init__()
        self._listener = listener
        self._wakeups = wakeups
        self._on_sent = on_sent
        self.transport: asyncio.Transport | None = None
        self.ended = anyio.Event()
        self.error: BaseException | None = None
        self.lost = False

    def data_received(self, data: bytes) -> None:
        wakeups = self._wakeups
        wakeups.handling()
        try:
            self._listener.data_received(data)
        except BaseException as error:  # the stream's task raises it in the task group
            self._fail(error)
        finally:
            wakeups.handled()

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


class Wakeups:
    """Wakes the tasks whose replies arrived in the data being handled, once it is handled.

    A task that waits for a reply (see ``AnyioServices.wait``) awaits a :class:`WakeupFuture`.
    Settled while the protocol hands received data to amqp_core, it wakes its task as soon
    as amqp_core has handled that data, in the same round of the loop; an asyncio future
    would wake it in the loop's next round, one more round per request and reply than a
    callback needs. Settled at any other time, it wakes its task as a future does.

    The woken task then runs inside the protocol's ``data_received``, as a callback of the
    callback API does, but only once amqp_core has dispatched every event of the data:
    it finds amqp_core as a task woken on the next round would.
    """

    __slots__ = ("_batch", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._batch: list[WakeupFuture] | None = None

    def future(self) -> WakeupFuture:
        """What a task waiting for a reply awaits."""
        return WakeupFuture(self)

    def handling(self) -> None:
        """Received data is about to be handled: wake tasks settled meanwhile at :meth:`handled`."""
        self._batch = []

    def handled(self) -> None:
        """Received data was handled: wake the tasks settled meanwhile, one after the other."""
        batch = self._batch
        self._batch = None
        if not batch:
            return
        for index, future in enumerate(batch):
            try:
                future.wake()
            except BaseException:
                # A task let KeyboardInterrupt or SystemExit out (asyncio re-raises those):
                # the others still wake, on the loop's next round.
                for rest in batch[index + 1 :]:
                    rest.wake_soon()
                raise


class WakeupFuture(asyncio.Future[None]):
    """An asyncio future whose awaiting task :class:`Wakeups` may wake without a loop round.

    Everything but how its one task is woken is asyncio's: a cancelled task cancels it, and
    ``done()`` tells the truth, so anyio's cancel scopes treat it as any future.
    """

    __slots__ = ("_task_context", "_task_wakeup", "_wakeups")

    def __init__(self, wakeups: Wakeups) -> None:
        super().__init__(loop=wakeups.loop)
        self._wakeups = wakeups
        self._task_wakeup: Callable[[WakeupFuture], object] | None = None
        self._task_context: contextvars.Context | None = None

    def add_done_callback(
        self,
        fn: Callable[[WakeupFuture], object],
        *,
        context: contextvars.Context | None = None,
    ) -> None:
        # The first callback is the awaiting task's wakeup (only our own code awaits it).
        if self._task_wakeup is None and not self.done():
            self._task_wakeup = fn
            self._task_context = context
        else:
            super().add_done_callback(fn, context=context)

    def remove_done_callback(self, fn: Callable[[WakeupFuture], object]) -> int:
        removed = super().remove_done_callback(fn)
        if self._task_wakeup is not None and self._task_wakeup == fn:
            self._task_wakeup = None
            removed += 1
        return removed

    def set_result(self, result: None) -> None:
        """Settle it (ignored once done: its task may have been cancelled)."""
        if self.done():
            return
        super().set_result(result)
        if self._task_wakeup is not None:
            batch = self._wakeups._batch
            if batch is not None:
                batch.append(self)
            else:
                self.wake_soon()

    def cancel(self, msg: object = None) -> bool:
        if not super().cancel(msg):
            return False
        self.wake_soon()
        return True

    def wake(self) -> None:
        """Run the awaiting task's wakeup now, in the task's context."""
        wakeup = self._task_wakeup
        if wakeup is not None:
            self._task_wakeup = None
            context = self._task_context
            if context is None:
                wakeup(self)
            else:
                context.run(wakeup, self)

    def wake_soon(self) -> None:
        """Wake the awaiting task on the loop's next round, as an asyncio future does."""
        wakeup = self._task_wakeup
        if wakeup is not None:
            self._task_wakeup = None
            self.get_loop().call_soon(wakeup, self, context=self._task_context)
