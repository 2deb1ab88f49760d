"""amqp_core's :class:`~amqp_core.transport.IOServices` on anyio (asyncio or trio).

Every piece of work belongs to one task group, the connection's: a runner task for "as soon
as possible" callbacks and timers, one task per name resolution and one per stream (which, on
trio and for TLS, reads and writes through two child tasks of anyio's streams). Leaving the task
group therefore stops all of it, and an exception in any callback ends the task group instead of
vanishing.

On asyncio the loop's own machinery is cheaper and is used where it can be: ``call_soon`` and
``call_later`` for the callbacks, and for plain TCP the loop's transport with a protocol, so
that received data reaches amqp_core and writes reach the socket without a task switch. The
exceptions those callbacks raise are still raised in the task group.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import heapq
import math
import os
import socket
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import anyio
import anyio.abc
import anyio.lowlevel

from amqp_asyncio.native._waiter import Waiter
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
    import asyncio

    from amqp_asyncio.native._asyncio_stream import Wakeups

# What only some programs need is imported where it is used: asyncio's protocol stream
# (_asyncio_stream), TLS (anyio.streams.tls) and anyio.from_thread. A trio program then loads
# neither asyncio nor them, which is most of what this package would add to its memory.

__all__ = ("AnyioServices",)

# Writes waiting together up to this size are joined into one send.
_JOIN_LIMIT: Final = 256 * 1024
# After the write buffer went above this, the listener hears when it is empty again.
_DRAIN_MARK: Final = 1024 * 1024
# How long closing a TLS stream may wait for the peer to read the close_notify.
_CLOSE_GRACE: Final = 1.0
# How often a publisher held back by a full output buffer re-checks it.
_SENT_POLL: Final = 0.05
# How long after a waiting task stopped reading the socket for itself (nobody else waiting)
# the reader task takes the reading back: a task that waits again meanwhile reads on.
_HAND_BACK_DELAY: Final = 0.005

_T = TypeVar("_T")


class _Handle:
    """A cancellable piece of work: a flag, plus the scope of the task doing it, once started."""

    __slots__ = ("cancelled", "scope")

    def __init__(self) -> None:
        self.cancelled = False
        self.scope: anyio.CancelScope | None = None

    def cancel(self) -> None:
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


class AnyioServices:
    """The loop services of one connection, running in ``task_group``.

    :meth:`run` (a task of the group) runs the "as soon as possible" callbacks and the
    timers; on asyncio the loop runs them itself.

    Args:
        task_group: the connection's task group; :meth:`run` must be started in it.
    """

    def __init__(self, task_group: anyio.abc.TaskGroup) -> None:
        self._tg = task_group
        self._soon: deque[tuple[_Handle, Callable[[], None]]] = deque()
        self._timers: list[tuple[float, int, _Handle, Callable[[], None]]] = []
        self._timer_seq = 0
        self._wake = anyio.Event()
        # The scope run() sleeps in until its next timer is due; None while it runs.
        self._asleep: anyio.CancelScope | None = None
        self._token = anyio.lowlevel.current_token()
        # anyio.lowlevel.checkpoint_if_cancelled() looks the backend up on every call; the
        # hot paths (every publish, every delivery) call the backend's own once resolved.
        backend = self._token.backend_class
        self.checkpoint_if_cancelled: Callable[[], Awaitable[None]] = (
            backend.checkpoint_if_cancelled
        )
        self.checkpoint: Callable[[], Awaitable[None]] = backend.checkpoint
        self._sent: anyio.Event | None = None
        # On asyncio, plain TCP streams use the loop's transports directly (see
        # _asyncio_stream.run_protocol_stream); on trio, and for TLS, anyio's streams.
        self._loop: asyncio.AbstractEventLoop | None = None
        # No asyncio loop can be running if asyncio was never imported (trio): do not import it.
        running_asyncio = sys.modules.get("asyncio")
        if running_asyncio is not None:
            with contextlib.suppress(RuntimeError):  # asyncio imported, but not running here
                self._loop = running_asyncio.get_running_loop()
        # On asyncio, call_later uses the loop's own call_soon / call_later (no task switch
        # per callback), in a context where anyio knows it runs on asyncio; an exception
        # from a callback is kept here and raised by run(), in the task group.
        self._context: contextvars.Context | None = None
        if self._loop is not None:
            self._context = contextvars.copy_context()
            self._context.run(_name_asyncio_for_callbacks)
        self._error: BaseException | None = None
        self._stopped = False
        # On asyncio, what wakes a task waiting for a reply in the round its reply came in.
        self._wakeups: Wakeups | None = None
        if self._loop is not None:
            from amqp_asyncio.native._asyncio_stream import Wakeups

            self._wakeups = Wakeups(self._loop)
        # The open stream whose socket a waiting task may read itself (trio, plain TCP).
        self._lender: _Transport | None = None
        # While run_inline() runs its work: the "as soon as possible" callbacks it scheduled.
        self._inline: list[tuple[_Handle, Callable[[], None]]] | None = None

    async def wait(self, waiter: Waiter[_T]) -> _T:
        """Wait until ``waiter`` is settled; return its result or raise its error.

        On asyncio the task awaits a future that wakes it as soon as the received data that
        settled it has been handled (see ``_asyncio_stream.Wakeups``). On trio over plain TCP
        the waiting task reads the socket itself while nobody else does, instead of the
        stream's reader task reading the reply and then waking it. Either way a reply
        reaches its task in one scheduling round instead of two.
        """
        if not waiter.done:
            wakeups = self._wakeups
            if wakeups is not None:
                waiter.future = future = wakeups.future()
                try:
                    await future  # settled only by the waiter (or cancelled with the task)
                finally:
                    waiter.future = None
            else:
                lender = self._lender
                if lender is not None and lender.lendable():
                    await lender.read_for(waiter)
                if not waiter.done:
                    with self.expecting_input():
                        await waiter.wait()
        return waiter.result()

    @contextlib.contextmanager
    def expecting_input(self) -> Iterator[None]:
        """Around a wait for something only received data brings (a reply, a close).

        On trio over plain TCP, a task that read the socket for itself (``wait``) leaves the
        reading to the reader task only a little later, in case it waits again at once; a
        task waiting in this block has the reader read now, and for as long as it waits.
        """
        lender = self._lender
        if lender is None:
            yield
            return
        lender.plain_waiters += 1
        lender.hand_back()
        try:
            yield
        finally:
            lender.plain_waiters -= 1

    async def run(self) -> None:
        """Run the "as soon as possible" callbacks, in order, until cancelled.

        On asyncio the loop runs them; this task then only raises what one of them raised.
        """
        try:
            if self._loop is not None:
                await self._wake.wait()
                assert self._error is not None
                raise self._error
            soon = self._soon
            timers = self._timers
            backend = self._token.backend_class
            create_scope = backend.create_cancel_scope
            create_event = backend.create_event
            while True:
                # Callbacks queued while these run are taken in this same round.
                while soon:
                    handle, callback = soon.popleft()
                    if not handle.cancelled:
                        callback()
                if timers:
                    now = anyio.current_time()
                    while timers and timers[0][0] <= now:
                        _when, _seq, handle, callback = heapq.heappop(timers)
                        if not handle.cancelled:
                            callback()
                    if soon:
                        continue
                # Until the next timer is due, or something is queued. A timer added
                # meanwhile moves this deadline (call_later) instead of waking this task.
                with create_scope(deadline=timers[0][0] if timers else math.inf) as asleep:
                    self._asleep = asleep
                    try:
                        await self._wake.wait()
                    finally:
                        self._asleep = None
                if self._wake.is_set():
                    self._wake = create_event()
        finally:
            self._stopped = True  # the task group is ending: callbacks due later do nothing

    def _call(self, callback: Callable[[], None]) -> None:
        """Run a callback the asyncio loop calls; hand its exception to :meth:`run`."""
        if self._stopped:
            return
        try:
            callback()
        except BaseException as error:  # raised by run(), in the task group
            if self._error is None:
                self._error = error
                self._wake.set()

    async def wait_sent(self) -> None:
        """Wait until a stream's writer has handed output to the OS, or its stream ended.

        Publishers held back by a full output buffer (see ``NativeConnection``) wait here.
        """
        event = self._sent
        if event is None:
            event = self._sent = anyio.Event()
        # Bounded: the caller re-checks its condition even if no write completes meanwhile
        # (an asyncio transport reports progress only when it resumes writing).
        with anyio.move_on_after(_SENT_POLL):
            await event.wait()

    def _on_sent(self) -> None:
        event = self._sent
        if event is not None:
            self._sent = None
            event.set()

    # ------------------------------------------------------------------ IOServices

    def random(self) -> float:
        """Return a float in ``[0, 1)``: the jitter source of connection recovery."""
        import random  # only recovery's jitter needs it: not loaded by every program

        return random.random()

    def now(self) -> float:
        """Return anyio's clock (the event loop's monotonic time)."""
        if self._loop is not None:
            return self._loop.time()  # what anyio.current_time() returns on asyncio
        return anyio.current_time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """Run ``callback`` in the task group after ``delay`` seconds."""
        loop = self._loop
        if loop is not None:
            if delay <= 0:
                return loop.call_soon(self._call, callback, context=self._context)
            return loop.call_later(delay, self._call, callback, context=self._context)
        handle = _Handle()
        if delay <= 0:
            inline = self._inline
            if inline is not None:
                inline.append((handle, callback))
                return handle
            self._soon.append((handle, callback))
        else:
            # One heap of deadlines, kept by run(): no task per timer. A cancelled timer
            # stays in the heap until due, then is skipped.
            self._timer_seq += 1
            when = anyio.current_time() + delay
            heapq.heappush(self._timers, (when, self._timer_seq, handle, callback))
            # Most timers are timeouts that never fire (a socket timeout, a heartbeat check,
            # a request's): waking run() for each, only for it to go back to sleep, cost a
            # scheduling round apiece on trio. Running, it looks at the heap before it sleeps.
            asleep = self._asleep
            if asleep is not None and when < asleep.deadline:
                asleep.deadline = when
            return handle
        self._wake.set()
        return handle

    def writes_go_straight_out(self) -> bool:
        """True if output handed to the stream now would go straight to its socket.

        So on trio over plain TCP, while the stream holds nothing and the calling task has
        not written since the last input arrived (see ``_Transport.write``): a lone request.
        """
        lender = self._lender
        return lender is not None and lender.writes_go_straight_out()

    def run_inline(self, work: Callable[..., object], *args: object) -> None:
        """Call ``work(*args)``, then run what it scheduled "as soon as possible", here.

        For a lone request on trio (see :meth:`writes_go_straight_out`): amqp_core schedules
        the write of what it queued, and waking the callback runner's task for it costs a
        scheduling round trip, about 11 us per round trip measured. Run now, in the calling
        task, the write leaves at once. Not on asyncio, where scheduling is a cheap
        ``call_soon``, nor for a burst, whose commands must be joined into few writes.
        """
        inline: list[tuple[_Handle, Callable[[], None]]] = []
        self._inline = inline
        try:
            work(*args)
        finally:
            self._inline = None
            for index, (handle, callback) in enumerate(inline):
                if handle.cancelled:
                    continue
                try:
                    callback()
                except BaseException:
                    # The rest still runs, as the callback runner would have run it.
                    self._soon.extend(inline[index + 1 :])
                    self._wake.set()
                    raise

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in the loop soon; from another thread (waits until it is queued)."""
        import anyio.from_thread

        anyio.from_thread.run_sync(self.call_later, 0, callback, token=self._token)

    def getaddrinfo(
        self,
        host: str,
        port: int,
        on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
    ) -> Cancellable:
        """Resolve ``host`` in a task; ``on_done`` gets the addresses or the error."""
        # An IP address needs no resolver: skip the worker thread that asyncio's getaddrinfo
        # (and so anyio's) uses, a noticeable part of a short connection.
        numeric = numeric_address_infos(host, port, socket)
        if numeric is not None:
            return self.call_later(0, functools.partial(on_done, numeric))
        handle = _Handle()
        self._tg.start_soon(self._resolve, host, port, on_done, handle)
        return handle

    async def _resolve(
        self,
        host: str,
        port: int,
        on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
        handle: _Handle,
    ) -> None:
        result: Sequence[AddressInfo] | BaseException
        with anyio.CancelScope() as scope:
            if handle.cancelled:
                return
            handle.scope = scope
            try:
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as error:
                result = error
            else:
                result = address_infos(infos)
            handle.scope = None
        if not handle.cancelled:
            on_done(result)

    def connect_stream(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> _Handle:
        """Open TCP (and TLS) in a task; then the same task runs the stream until it ends."""
        handle = _Handle()
        self._tg.start_soon(self._run_stream, settings, listener, on_done, handle)
        return handle

    async def _run_stream(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
        handle: _Handle,
    ) -> None:
        wakeups = self._wakeups
        if wakeups is not None and settings.ssl_context is None:
            from amqp_asyncio.native._asyncio_stream import run_protocol_stream

            await run_protocol_stream(settings, listener, on_done, handle, self._on_sent, wakeups)
            return
        stream: anyio.abc.ByteStream | None = None
        error: BaseException | None = None
        with anyio.CancelScope() as scope:
            if handle.cancelled:
                return
            handle.scope = scope
            try:
                with anyio.fail_after(settings.connect_timeout):
                    tcp = await _connect_tcp(settings.address)
                stream = tcp
                apply_tcp_options(
                    tcp.extra(anyio.abc.SocketAttribute.raw_socket), settings.tcp_options, socket
                )
                if settings.ssl_context is not None:
                    from anyio.streams.tls import TLSStream

                    stream = await TLSStream.wrap(
                        tcp,
                        hostname=settings.server_hostname or settings.host,
                        ssl_context=settings.ssl_context,
                        standard_compatible=False,
                    )
            except (OSError, anyio.BrokenResourceError) as exc:
                error = _root_cause(exc)
        if handle.cancelled or scope.cancelled_caught:
            if stream is not None:
                await anyio.aclose_forcefully(stream)
            return
        handle.scope = None
        if error is not None:
            if stream is not None:
                await anyio.aclose_forcefully(stream)
            on_done(error)
            return
        assert stream is not None
        # Plain TCP (on trio): an idle writer lets write() hand data to the socket at once.
        direct = tcp.extra(anyio.abc.SocketAttribute.raw_socket) if stream is tcp else None
        transport = _Transport(stream, listener, self._on_sent, self.call_later, direct)
        on_done(transport)
        if direct is not None:
            self._lender = transport
        try:
            await transport.run()
        finally:
            if self._lender is transport:
                self._lender = None


async def _connect_tcp(address: AddressInfo) -> anyio.abc.SocketStream:
    """Connect to the one address amqp_core picked, as a non-blocking socket.

    amqp_core resolves and orders the addresses and tries them itself, so anyio.connect_tcp's
    happy eyeballs (a task group and a task per address) would only add work to every connect.
    """
    sock = socket.socket(address.family, address.socktype, address.proto)
    try:
        sock.setblocking(False)
        code = sock.connect_ex(address.sockaddr)
        if code in (errno.EINPROGRESS, errno.EWOULDBLOCK):
            await anyio.wait_writable(sock)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, os.strerror(code))
        return await anyio.abc.SocketStream.from_socket(sock)
    except BaseException:
        sock.close()
        raise


def _recv(sock: socket.socket) -> bytes | None:
    """What a readable non-blocking socket holds (``b""`` at its end); None if nothing."""
    try:
        return sock.recv(READ_SIZE)
    except BlockingIOError:
        return None


def _joined(pieces: list[Buffer]) -> bytes:
    # anyio's streams send any buffer, views included.
    return b"".join(pieces) if len(pieces) > 1 else cast("bytes", pieces[0])


def _name_asyncio_for_callbacks() -> None:
    """Let anyio calls made from the transport's callbacks know they run on asyncio.

    Outside a task anyio finds the running library through sniffio's context variable
    (``anyio.run`` sets it, ``asyncio.run`` does not). The transport's callbacks run in a
    copy of this task's context, taken when it registers them: set it here, before.
    """
    try:
        import sniffio
    except ImportError:  # pragma: no cover - anyio then goes by the running asyncio loop
        return
    sniffio.current_async_library_cvar.set("asyncio")


def _root_cause(error: BaseException) -> BaseException:
    # anyio reports a failed TLS handshake as BrokenResourceError from the ssl error; the
    # connection tells TLS failures apart by the ssl error itself.
    if isinstance(error, anyio.BrokenResourceError) and error.__cause__ is not None:
        return error.__cause__
    return error


class _Transport:
    """A connected stream, as amqp_core's :class:`~amqp_core.transport.Transport`.

    Writes never block (a writer task sends them), a reader task feeds the listener, and the
    listener hears ``connection_lost`` exactly once.
    """

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        listener: StreamListener,
        on_sent: Callable[[], None],
        call_later: Callable[[float, Callable[[], None]], object],
        direct: socket.socket | None = None,
    ) -> None:
        self._stream = stream
        self._listener = listener
        self._on_sent = on_sent
        self._direct = direct
        self._direct_ok = True
        self._sending = False
        self._queue: list[Buffer] = []
        self._size = 0
        self._wake = anyio.Event()
        self._closing = False
        self._drain_wanted = False
        self._reported = False
        self._scope: anyio.CancelScope | None = None
        self._aborted = False
        # Reading lent to a waiting task (read_for): the reader task stands aside meanwhile.
        self._reading = False  # the reader task reads the socket (not ended)
        self._read_scope: anyio.CancelScope | None = None  # the reader's wait for input
        self._lent = False
        self._lent_done = anyio.Event()
        # Tasks waiting for input without reading it themselves (expecting_input): when a
        # borrower is done, the reader task must read for them at once.
        self.plain_waiters = 0
        self._call_later = call_later
        self._hand_back_due = False
        # What a borrower met and left for the reader task to report or raise.
        self._handoff: BaseException | None = None
        # Resolved once: anyio.wait_readable() and anyio.CancelScope() look the backend up
        # on every call.
        backend = anyio.lowlevel.current_token().backend_class
        self._wait_readable: Callable[[socket.socket], Awaitable[None]] = backend.wait_readable
        self._cancel_scope: Callable[[], anyio.CancelScope] = backend.create_cancel_scope

    # ------------------------------------------------------------------ Transport

    def write(self, data: Buffer) -> None:
        if self._closing or self._reported:
            return
        direct = self._direct
        if direct is not None and self.writes_go_straight_out():
            # Nothing queued and no send under way: the (non-blocking) socket takes what it
            # can now, so a lone request leaves without waiting for the writer task. Once
            # until re-armed (by the writer once it has sent everything, or by the reader
            # once a reply came in): what follows in the same burst is queued and joined
            # into few large sends, not sent piece by piece. The writer is not woken for a
            # send done here: a request and its reply cost no task switch of the writer.
            self._direct_ok = False
            try:
                sent = direct.send(data)
            except OSError:
                sent = 0  # full (BlockingIOError), or broken: the writer meets the error
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        self._queue.append(data)
        self._size += len(data)
        if self._size >= _DRAIN_MARK:
            self._drain_wanted = True
        self._wake.set()

    def write_buffer_size(self) -> int:
        return self._size

    def close(self) -> None:
        self._closing = True
        if not self._queue and not self._sending and self._scope is not None:
            # Nothing left to send: end the reader and the writer in one go, rather than
            # wake the writer only for it to stop the reader (a scheduling round each).
            self._scope.cancel()
            # An orderly end of our own: the listener hears it now, not once the stream
            # task has closed the socket (which it still does before the task group ends).
            self._report(None)
        else:
            self._wake.set()

    def abort(self) -> None:
        self._aborted = True
        self._queue.clear()
        self._size = 0
        if self._scope is not None:
            self._scope.cancel()

    # ------------------------------------------------------------------ tasks

    async def run(self) -> None:
        error: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._scope = tg.cancel_scope
                if self._aborted:
                    tg.cancel_scope.cancel()
                tg.start_soon(self._reader)
                error = await self._writer()
                tg.cancel_scope.cancel()
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            error = exc
        finally:
            with anyio.CancelScope(shield=True):
                closed = False
                if self._closing and not self._aborted and error is None:
                    with anyio.move_on_after(_CLOSE_GRACE):
                        try:
                            await self._stream.aclose()
                        except (OSError, anyio.BrokenResourceError):
                            pass  # the peer went first: closed forcefully below
                        else:
                            closed = True
                if not closed:
                    await anyio.aclose_forcefully(self._stream)
            self._report(error)

    async def _reader(self) -> None:
        listener = self._listener
        try:
            if self._direct is not None:
                await self._read_socket(self._direct)  # ends by raising, as receive() does
            stream = self._stream
            while True:
                listener.data_received(await stream.receive(READ_SIZE))
        except anyio.EndOfStream:
            error: BaseException | None = None
        except (OSError, anyio.BrokenResourceError) as exc:
            error = exc
        self._report(error)
        assert self._scope is not None
        self._scope.cancel()

    async def _read_socket(self, sock: socket.socket) -> None:
        """Read a plain TCP socket until the peer closes it (then raise ``EndOfStream``).

        A stream's ``receive`` (trio's ``recv``) yields to the scheduler once more after
        the data is in, so every reply would cost the waiting task one more scheduling
        round; here the data reaches the listener in the step that read it. While a
        waiting task reads for itself (:meth:`read_for`), this task stands aside.
        """
        wait_readable = self._wait_readable
        self._reading = True
        try:
            while True:
                if self._lent:
                    await self._lent_done.wait()
                    continue
                handoff = self._handoff
                if handoff is not None:
                    self._handoff = None
                    raise handoff
                with self._cancel_scope() as scope:
                    self._read_scope = scope
                    try:
                        await wait_readable(sock)
                    finally:
                        self._read_scope = None
                if scope.cancel_called:
                    continue  # a waiting task took over the reading
                data = _recv(sock)
                if data is None:
                    continue
                if not data:
                    raise anyio.EndOfStream
                self._handle_input(data)
        finally:
            self._reading = False

    def _handle_input(self, data: bytes) -> None:
        """Give what a direct read got to the listener: a new round for direct writes.

        Re-armed before the listener handles the input, so that the answer it writes (a
        handshake step, ``Close-Ok``) leaves without waking the writer; and after it, so
        that the next request of the task that waited for this input does.
        """
        if not self._queue and not self._sending:
            self._direct_ok = True
        self._listener.data_received(data)
        if not self._queue and not self._sending:
            self._direct_ok = True

    def writes_go_straight_out(self) -> bool:
        """True if :meth:`write` would hand data straight to the socket now."""
        return (
            self._direct is not None
            and self._direct_ok
            and not self._queue
            and not self._sending
            and not self._closing
            and not self._reported
        )

    def lendable(self) -> bool:
        """True if a waiting task may read the socket now (:meth:`read_for`)."""
        return self._reading and not self._lent and self._handoff is None

    async def read_for(self, waiter: Waiter[Any]) -> None:
        """Read the socket in the calling task until ``waiter`` is settled.

        The reader task's wait for input is cancelled (trio frees the socket for another
        waiter at once) and it waits until this returns. If the read fails, the peer
        closes, or a callback run by the listener raises, that is left to the reader task
        (which reports it, or raises it in the task group, as it does its own), and this
        returns with ``waiter`` possibly unsettled: the caller then waits for it plainly.
        """
        sock = self._direct
        assert sock is not None
        wait_readable = self._wait_readable
        self._lent = True
        if self._lent_done.is_set():
            self._lent_done = anyio.Event()
        # else the reader task still waits for the last borrower's hand-back: the same one.
        reader_scope = self._read_scope
        if reader_scope is not None:
            reader_scope.cancel()
        try:
            while not waiter.done:
                with self._cancel_scope() as parked:
                    waiter.parked = parked  # settling the waiter elsewhere wakes us
                    try:
                        await wait_readable(sock)
                    finally:
                        waiter.parked = None
                if parked.cancel_called:
                    continue
                data = _recv(sock)
                if data is None:
                    continue
                if not data:
                    self._handoff = anyio.EndOfStream()
                    return
                try:
                    self._handle_input(data)
                except BaseException as error:  # raised by the reader task, in the task group
                    self._handoff = error
                    return
        except (OSError, anyio.BrokenResourceError) as error:
            self._handoff = error
        except anyio.ClosedResourceError:
            pass  # the stream is closing: its task reports the end
        finally:
            self._lent = False
            if self.plain_waiters or self._handoff is not None:
                self._lent_done.set()
            elif not self._hand_back_due:
                # Waking the reader task now would cost a scheduling round on every reply
                # of a task that waits again at once (a request/reply loop, a consumer);
                # read_for() by the next waiter finds the reader still standing aside.
                self._hand_back_due = True
                self._call_later(_HAND_BACK_DELAY, self._hand_back_if_idle)

    def hand_back(self) -> None:
        """Let the reader task read again now, unless a waiting task is reading."""
        if not self._lent:
            self._lent_done.set()

    def _hand_back_if_idle(self) -> None:
        self._hand_back_due = False
        self.hand_back()

    async def _writer(self) -> BaseException | None:
        """Send what is queued until closed; return the send error, if any."""
        stream = self._stream
        while True:
            if not self._queue:
                self._direct_ok = True
                if self._closing:
                    return None
                await self._wake.wait()
                self._wake = anyio.Event()
                continue
            queue, self._queue = self._queue, []
            size = self._size
            self._sending = True
            try:
                # Small pieces are joined into sends of up to _JOIN_LIMIT; a big body (a
                # view of the application's bytes) goes on its own, uncopied.
                group: list[Buffer] = []
                group_size = 0
                for piece in queue:
                    if group and group_size + len(piece) > _JOIN_LIMIT:
                        await stream.send(_joined(group))
                        group = []
                        group_size = 0
                    group.append(piece)
                    group_size += len(piece)
                if group:
                    await stream.send(_joined(group))
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                return exc
            finally:
                self._sending = False
            self._size -= size
            self._on_sent()
            if self._drain_wanted and not self._queue:
                self._drain_wanted = False
                self._listener.write_drained()

    def _report(self, error: BaseException | None) -> None:
        if not self._reported:
            self._reported = True
            self._listener.connection_lost(error)
            self._on_sent()  # nothing will be sent any more: publishers waiting re-check
