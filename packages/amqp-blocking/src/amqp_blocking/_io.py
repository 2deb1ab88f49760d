"""The private I/O thread of a blocking connection: amqp_core's IOServices over selectors.

One thread per connection waits on the socket and on a timer heap, and runs amqp_core's
callbacks, so that heartbeats go out and come in while the user's thread is busy or asleep.

Locking: every touch of amqp_core state (the core ``Connection``, its channels and engine) and
of this module's timer heap and transports happens under the connection's one lock, in
whichever thread holds it. The selector itself is only touched by the I/O thread (and, before
that thread starts, by the constructor's thread, which begins the first connect itself: see
:meth:`ThreadIOServices.start`); other threads ask it to watch for writability by waking it.
The constructor's thread resolves the first name itself, before the I/O thread starts; every
later resolution (a retry, a recovery, whichever thread runs it) is handed to a short-lived
helper thread rather than block a thread while it holds the lock.

The reader role: a user thread that waits for progress (a reply, confirms, events) calls
:meth:`ThreadIOServices.wait` (through :class:`IOCondition`) rather than wait on a condition.
If the connection has one open transport and no other thread holds the role, it takes it: it
lets go of the lock, polls the socket and a reader-wake socketpair of its own (never the
selector), takes the lock back and reads what came exactly as the I/O thread would, then
returns so that its caller looks at its predicate again. So a reply costs one thread wake, not
two. The rules that keep this safe:

- whoever reads does it under the lock with a non-blocking recv, so a race between the reader
  and the I/O thread only costs an empty read;
- the I/O thread, when it finds the socket readable while a reader is active, leaves the input
  to it and stops watching for input (it alone touches the selector); it watches again at the
  top of its loop once no thread holds the role. A reader that leaves after a long stay (at
  least :data:`_RESTORE`), or while other threads wait, wakes it for that; after a short stay
  (a request and its reply, the next one likely to follow at once) it does not, and the I/O
  thread looks by itself within :data:`_RESTORE`;
- whatever can end a wait wakes the reader through its socketpair: a notification of the
  connection's conditions from another thread (:meth:`IOCondition.notify_all`, which the I/O
  thread also calls after each pass that did something), the end of a transport, and
  :meth:`ThreadIOServices.stop`;
- while input streams in (a read of at least :data:`_STREAMING` bytes, by either, within the
  last :data:`_RESTORE` seconds: deliveries) no thread takes the role, so that the I/O thread
  reads the next batch while the user's thread runs the callbacks of the last one;
- the I/O thread keeps firing the timers (heartbeats, their checks, recovery) meanwhile, and
  alone runs the ``_ready`` callbacks (which touch the selector); the reader runs due timers
  only, as every user thread may (:meth:`ThreadIOServices.run_ready`).

A user thread that just queued output (a publish, an ack) hands it to
:meth:`ThreadIOServices.run_ready_soon`: after a quiet spell the caller runs the zero-delay
callbacks itself, so that the bytes leave without a thread switch; during a burst (a second
call by the same thread within :data:`_LINGER` seconds, with no wait in between) the I/O
thread runs them within :data:`_LINGER` seconds, so that the output of many calls leaves in
one send, unless about :data:`_SEND_NOW` bytes wait already. An isolated publish (an RPC
request, followed by a wait for the reply) does not wake the I/O thread.

Nothing here knows AMQP: bytes in, bytes out, and time.

:mod:`ssl` is imported only when a TLS connection is made: with the OpenSSL libraries it loads
it costs about 6 MiB of resident memory that a plain-TCP client does not need.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import select
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

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
)

__all__ = ("IOCondition", "ThreadIOServices")

# Output waiting in a transport is joined into sends of about this size.
_SEND_CHUNK: Final = 256 * 1024
# While user threads keep queueing output, the I/O thread sends it at least this often.
_LINGER: Final = 0.001
# Deferred output of about this many bytes is sent at once by the thread that queued it.
_SEND_NOW: Final = 32 * 1024
# A user thread that leaves the reader role after a shorter stay than this does not wake the
# I/O thread to read again: it is likely to be back at once (a request, a reply, the next
# request); the I/O thread looks for itself within this long.
_RESTORE: Final = 0.005
# One read of this many bytes means input streams in (deliveries): for the next _RESTORE
# seconds the I/O thread reads, not a waiting thread, so that it reads the next batch while
# the user's thread runs the callbacks of this one.
_STREAMING: Final = 4096

#: What a non-blocking plain socket raises when it cannot move data now.
_PLAIN_WOULD_BLOCK: Final[tuple[type[OSError], ...]] = (BlockingIOError, InterruptedError)


def _tls_would_block() -> tuple[type[OSError], ...]:
    """The "try again" errors of a TLS socket (ssl is imported here, for TLS only)."""
    import ssl

    return (*_PLAIN_WOULD_BLOCK, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _Timer:
    """One scheduled callback; cancelling only marks it, the heap drops it when due."""

    __slots__ = ("at", "callback", "cancelled")

    def __init__(self, at: float, callback: Callable[[], None]) -> None:
        self.at = at
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Done:
    """A Cancellable for work that finished at once."""

    __slots__ = ()

    def cancel(self) -> None:
        """Nothing left to cancel."""


class _SocketTransport:
    """A connected (maybe TLS) non-blocking socket with an unbounded-by-itself write buffer.

    The core stops handing it output above its high-water mark, and the blocking connection
    makes publishers wait on :meth:`write_buffer_size`, so the buffer stays bounded in practice.
    """

    def __init__(
        self, io: ThreadIOServices, sock: socket.socket, listener: StreamListener, *, tls: bool
    ) -> None:
        self.io = io
        self.sock = sock
        self.tls = tls
        # A TLS socket also says "try again" with SSLWantRead/WriteError, whichever way the
        # data flows (renegotiation); a plain one never raises them.
        self.would_block = _tls_would_block() if tls else _PLAIN_WOULD_BLOCK
        self.listener = listener
        self.out: deque[Buffer] = deque()
        self.out_size = 0
        self.closing = False
        self.closed = False
        self.watching_write = False
        # What the selector watches for now (0: the socket is not registered as a transport).
        self.events = 0
        # write_buffer_size() reported output waiting (the listener may hold more back).
        self.backlog_seen = False

    # Transport protocol -------------------------------------------------------------------

    def write(self, data: Buffer) -> None:
        if self.closed or self.closing or not len(data):
            return
        self.out.append(data)
        self.out_size += len(data)
        if self.io._collecting:
            # Sent with the rest of this run of callbacks, in few large sends.
            return
        if len(self.out) == 1:
            # Nothing queued before: try to send at once, from whichever thread wrote.
            self._send()
        if self.out_size:
            self.io._want_write(self)

    def write_buffer_size(self) -> int:
        if self.out_size:
            self.backlog_seen = True
        return self.out_size

    def close(self) -> None:
        if self.closed:
            return
        self.closing = True
        if not self.out_size:
            self.io._finish(self, None)
        else:
            self.io._want_write(self)

    def abort(self) -> None:
        if not self.closed:
            self.out.clear()
            self.out_size = 0
            self.io._finish(self, None)

    # Used by the I/O thread -----------------------------------------------------------------

    def _send(self) -> None:
        out = self.out
        while out:
            if len(out) > 1 and len(out[0]) < _SEND_CHUNK:
                # Join small pieces into one send; a big body goes out as it is.
                pieces = []
                size = 0
                while out and size < _SEND_CHUNK:
                    piece = out.popleft()
                    pieces.append(piece)
                    size += len(piece)
                out.appendleft(b"".join(pieces))
            data = out[0]
            try:
                sent = self.sock.send(data)
            except self.would_block:
                return
            except OSError as error:
                self.out.clear()
                self.out_size = 0
                self.io._finish(self, error)
                return
            self.out_size -= sent
            if sent == len(data):
                out.popleft()
            else:
                out[0] = memoryview(data)[sent:]
                return

    def on_writable(self) -> None:
        had = self.out_size
        self._send()
        if self.closed:
            return
        if not self.out_size:
            if self.closing:
                self.io._finish(self, None)
                return
            if had:
                self.backlog_seen = False
                self.listener.write_drained()

    def on_readable(self) -> None:
        while True:
            try:
                data = self.sock.recv(READ_SIZE)
            except self.would_block:
                return
            except OSError as error:
                self.io._finish(self, error)
                return
            if not data:
                self.io._finish(self, None)
                return
            if len(data) >= _STREAMING:
                self.io._streaming_until = time.monotonic() + _RESTORE
            self.listener.data_received(data)
            if self.closed or not self.tls or not self.sock.pending():  # type: ignore[attr-defined]
                # Plain sockets: one recv per wakeup. TLS: drain what is already decrypted,
                # since the selector cannot see it.
                return


class IOCondition(threading.Condition):
    """A condition on the connection's lock whose waits may read the socket themselves.

    :meth:`wait` is :meth:`ThreadIOServices.wait` (the reader role); :meth:`notify_all` also
    wakes the thread in the reader role, which polls the socket rather than the condition.

    Args:
        lock: the connection's lock.
        io: the connection's I/O services.
    """

    def __init__(self, lock: threading.RLock, io: ThreadIOServices) -> None:
        super().__init__(lock)
        self._io = io

    def wait(self, timeout: float | None = None) -> bool:
        """Wait (lock held) for a notification, input, or ``timeout`` seconds."""
        return self._io.wait(self, timeout)

    def notify_all(self) -> None:
        """Wake every thread waiting on this condition, and the reader."""
        super().notify_all()
        self._io.wake_reader()


class ThreadIOServices:
    """amqp_core's :class:`~amqp_core.transport.IOServices` on a private I/O thread.

    Args:
        lock: the connection's lock; held around every callback this runs, and expected to be
            held by callers of every method except :meth:`add_callback_threadsafe`.
        on_iteration: called (under ``lock``) after each pass of the loop that did something;
            the blocking connection wakes its waiters there.
    """

    def __init__(self, lock: threading.RLock, on_iteration: Callable[[], None]) -> None:
        self._lock = lock
        self._on_iteration = on_iteration
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._timers: list[tuple[float, int, _Timer]] = []
        self._ready: deque[Callable[[], None]] = deque()
        self._counter = itertools.count()
        self._wake_pending = False
        self._stopping = False
        self._transports: set[_SocketTransport] = set()
        self._want: set[_SocketTransport] = set()
        # Output left to the I/O thread (run_ready_soon): while lingering, it looks again
        # by linger_until; deferred counts the calls, deferred_bytes estimates their size.
        self._lingering = False
        self._linger_until = 0.0
        self._deferred = 0
        self._deferred_seen = 0
        self._deferred_bytes = 0
        # The last call of run_ready_soon that sent at once: by which thread, and when. A
        # second such call by the same thread soon after, with no wait between, is a burst.
        self._direct_by: int | None = None
        self._direct_at = 0.0
        # The reader role (see wait): the user thread reading the socket itself, since when,
        # whether it was sent a byte on the reader-wake socketpair, the transports the I/O
        # thread stopped watching for input meanwhile, and how many threads wait otherwise.
        self._reader: int | None = None
        self._reader_since = 0.0
        self._reader_woken = False
        self._read_paused: set[_SocketTransport] = set()
        # Until then input streams in, and the I/O thread reads it (see _STREAMING).
        self._streaming_until = 0.0
        self._waiters = 0
        # While the reader handles input (under the lock), a stream that ends is reported to
        # its listener at the end of that pass, in the reader's thread: see _finish.
        self._reading = False
        self._lost: list[Callable[[], None]] = []
        self._reader_wake_r, self._reader_wake_w = socket.socketpair()
        self._reader_wake_r.setblocking(False)
        self._reader_wake_w.setblocking(False)
        self._released = False
        # While callbacks run in a batch (run_ready, the loop's timers), writes only queue;
        # the batch's output is sent at its end (the core writes a big flush piece by piece).
        self._collecting = False
        # Started by start(), once the first connect is under way.
        self._thread = threading.Thread(target=self._run, name="amqp-blocking-io", daemon=True)

    # IOServices ----------------------------------------------------------------------------

    def random(self) -> float:
        """Return a float in ``[0, 1)``: the jitter source of connection recovery."""
        import random  # only recovery's jitter needs it: not loaded by every program

        return random.random()

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        timer = _Timer(time.monotonic() + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.at, next(self._counter), timer))
        if threading.get_ident() != self._thread.ident and delay > 0:
            # A zero delay from a user thread is run by that thread (run_ready) before it
            # lets go of the lock; a later one needs the I/O thread to shorten its wait.
            self._wake()
        return timer

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._ready.append(callback)
            if threading.get_ident() != self._thread.ident:
                self._wake()

    def getaddrinfo(
        self,
        host: str,
        port: int,
        on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
    ) -> Cancellable:
        if self._thread.ident is None:
            # The user's thread (the constructor's first attempt), which holds the lock and
            # runs the zero-delay timers next (run_ready): resolve right here, before the I/O
            # thread even starts. The answer still comes through a timer, never from inside
            # this call, as IOServices promises.
            result = _resolve(host, port)
            return self.call_later(0, lambda: on_done(result))
        # A retry or a recovery, from the I/O thread or from a user thread that runs due
        # timers or reads as the reader: a slow resolver must hold up neither that thread
        # nor, through the lock it holds while it works, the others. Resolve aside.
        pending = _Timer(0.0, lambda: None)

        def deliver(result: Sequence[AddressInfo] | BaseException) -> None:
            if not pending.cancelled:
                on_done(result)

        def resolve_aside() -> None:
            result = _resolve(host, port)
            self.add_callback_threadsafe(lambda: deliver(result))

        threading.Thread(target=resolve_aside, name="amqp-blocking-resolve", daemon=True).start()
        return pending

    def connect_stream(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> Cancellable:
        op = _Connect(self, settings, listener, on_done)
        self._ready.append(op.start)
        if threading.get_ident() != self._thread.ident:
            self._wake()
        return op

    # For the blocking connection -----------------------------------------------------------

    @property
    def thread(self) -> threading.Thread:
        """The I/O thread."""
        return self._thread

    def start(self) -> None:
        """Start the I/O thread, once; the caller holds the lock.

        The first connect's steps that are due (the resolver's answer, then the socket and
        its TCP SYN) run here first, in the calling thread, while no other thread touches
        the selector yet: the broker is being reached while the thread starts up. A connect
        that is done already (a broker on this host) is finished here too, so that the
        calling thread goes on to read the handshake without a hand-off.
        """
        if self._thread.ident is not None:
            return
        self.run_ready()
        for _ in range(len(self._ready)):
            self._ready.popleft()()
        for key, _mask in self._selector.select(0):
            if isinstance(key.data, _Connect):
                key.data.on_event()
        self._thread.start()

    def run_ready(self) -> None:
        """Run the due zero-delay timers now, in the calling thread (which holds the lock).

        Called by a user thread right after it queued output, so the bytes are written
        without waking the I/O thread.
        """
        timers = self._timers
        self._deferred_bytes = 0
        if not timers:
            return
        now = time.monotonic()
        outer = self._collecting
        self._collecting = True
        try:
            while timers and timers[0][0] <= now:
                _at, _n, timer = heapq.heappop(timers)
                if not timer.cancelled:
                    timer.callback()
        finally:
            self._collecting = outer
            if not outer:
                self._send_collected()

    def run_ready_soon(self, size: int) -> None:
        """Run the zero-delay timers now or soon; for a user thread that queued output.

        The caller holds the lock and returns without waiting for anything. After a quiet
        spell the timers run at once, in this thread. When the same thread calls again within
        :data:`_LINGER` seconds without waiting in between (a burst, not a publish followed by
        a wait for the reply), it sends at once too and the I/O thread starts lingering: until
        no output was queued for :data:`_LINGER` seconds, output queued by later calls is
        left to it, and it sends all of it at least that often (and whenever it wakes for
        another reason), unless about :data:`_SEND_NOW` bytes wait: those the caller sends at
        once. No system call is made for a deferred call, and an isolated call does not wake
        the I/O thread.

        Args:
            size: about how many bytes the caller queued.
        """
        if not self._lingering:
            self.run_ready()
            me = threading.get_ident()
            if me != self._thread.ident:
                now = time.monotonic()
                if self._direct_by == me and now - self._direct_at < _LINGER:
                    self._lingering = True
                    self._deferred_seen = self._deferred
                    self._linger_until = now + _LINGER
                    self._wake()
                self._direct_by = me
                self._direct_at = now
            return
        self._deferred += 1
        self._deferred_bytes += size
        if self._deferred_bytes >= _SEND_NOW:
            self.run_ready()

    def unsent_bytes(self) -> int:
        """About how many bytes of output wait: in the transports, and deferred."""
        size = self._deferred_bytes
        for transport in self._transports:
            size += transport.out_size
        return size

    def stop(self) -> None:
        """Ask the I/O thread to end; it closes every socket it still has as it goes."""
        self._stopping = True
        self.wake_reader()
        if threading.get_ident() != self._thread.ident:
            # The I/O thread itself looks at _stopping before it waits again.
            self._wake()

    def wait(self, cond: threading.Condition, timeout: float | None, read: bool = True) -> bool:
        """Wait (lock held) for progress: instead of ``cond.wait(timeout)``, for a user thread.

        When the connection has one open transport and no other thread reads it, the
        calling thread takes the reader role: it lets go of the lock (however many times it
        holds it, as ``Condition.wait`` does), polls the socket and the reader-wake
        socketpair, takes the lock back and, if input came, reads it exactly as the I/O thread
        would (then runs the due timers and wakes the other waiters). The reply is then
        handled in the thread that waits for it, without a hand-off from the I/O thread.
        Otherwise it waits on ``cond``. Either way it returns after at most ``timeout``
        seconds, or sooner, and the caller looks at its predicate again.

        Args:
            cond: the condition (on the connection's lock) to wait on when not reading.
            timeout: the most seconds to wait; None: no limit.
            read: False for a wait that input cannot end (for the output to drain): it
                waits on ``cond``, woken by the I/O thread as the output leaves.

        Returns:
            False if it returned because ``timeout`` passed, True otherwise.
        """
        me = threading.get_ident()
        if self._direct_by == me:
            # This thread waits: its next run_ready_soon is not part of a burst.
            self._direct_by = None
        transport = self._reader_transport(me) if read else None
        if transport is None:
            self._waiters += 1
            try:
                return threading.Condition.wait(cond, timeout)
            finally:
                self._waiters -= 1
        self._reader = me
        self._reader_since = time.monotonic()
        try:
            return self._read_as_reader(transport, timeout)
        finally:
            self._reader = None
            now = time.monotonic()
            if self._read_paused and (
                self._waiters or now < self._streaming_until or now - self._reader_since >= _RESTORE
            ):
                # The I/O thread watches the socket again at the top of its loop.
                self._wake()

    def wake_reader(self) -> None:
        """Make the thread in the reader role (if another one) return from its poll."""
        reader = self._reader
        if reader is not None and not self._reader_woken and reader != threading.get_ident():
            self._reader_woken = True
            with contextlib.suppress(OSError):
                self._reader_wake_w.send(b"\0")

    def _reader_transport(self, me: int) -> _SocketTransport | None:
        """The transport the calling thread may read as the reader, if it may."""
        if (
            self._reader is not None
            or self._stopping
            or self._released
            or len(self._transports) != 1
            or me == self._thread.ident
            or self._thread.ident is None
            or time.monotonic() < self._streaming_until
        ):
            return None
        for transport in self._transports:
            if not (transport.closing or transport.closed):
                return transport
        return None

    def _read_as_reader(self, transport: _SocketTransport, timeout: float | None) -> bool:
        """One poll and read in the reader role: see :meth:`wait`."""
        poller = select.poll()
        poller.register(transport.sock.fileno(), select.POLLIN)
        poller.register(self._reader_wake_r.fileno(), select.POLLIN)
        # An RLock held several times is let go of and taken back at once, with its count
        # (threading.Condition.wait does the same).
        lock = self._lock
        saved = lock._release_save()  # type: ignore[attr-defined]
        try:
            events = poller.poll(None if timeout is None else max(0.0, timeout) * 1000.0)
        finally:
            lock._acquire_restore(saved)  # type: ignore[attr-defined]
        if self._reader_woken:
            self._reader_woken = False
            with contextlib.suppress(OSError):
                while self._reader_wake_r.recv(4096):
                    pass
        if not events:
            return False
        if (
            not transport.closed
            and transport in self._transports
            and any(fd == transport.sock.fileno() for fd, _mask in events)
        ):
            # What the I/O thread does for a readable socket; non-blocking, so if it read
            # first this finds nothing.
            self._reading = True
            try:
                transport.on_readable()
                self.run_ready()
                lost = self._lost
                if lost:
                    while lost:
                        lost.pop(0)()
                    # What the listener scheduled at once (a recovery) runs now: a zero
                    # delay from a user thread does not wake the I/O thread.
                    self.run_ready()
            finally:
                self._reading = False
                if self._lost:
                    # A callback raised: the I/O thread tells the rest, exactly once still.
                    self._ready.extend(self._lost)
                    self._lost.clear()
                    self._wake()
            self._on_iteration()
        return True

    def join(self, timeout: float | None = None) -> None:
        """Wait for the I/O thread to end (not from the I/O thread itself).

        A thread that never started has nothing to wait for: its resources are freed here.
        """
        if self._thread.ident is None:
            self._release()
        elif threading.get_ident() != self._thread.ident:
            self._thread.join(timeout)

    # Internals -----------------------------------------------------------------------------

    def _wake(self) -> None:
        # A thread not started yet looks at everything when it starts: nothing to wake.
        if not self._wake_pending and self._thread.ident is not None:
            self._wake_pending = True
            with contextlib.suppress(OSError):
                self._wake_w.send(b"\0")

    def _send_collected(self) -> None:
        """Send what writes queued while collecting; leave the rest to the selector."""
        # Only open transports are in the set (_finish takes a closing one out).
        for transport in tuple(self._transports):
            if not transport.out:
                continue
            transport._send()
            if transport.closed:
                continue
            if transport.out_size:
                self._want_write(transport)
            elif transport.closing:
                # Closed during the batch: it ends once its output is out.
                self._finish(transport, None)
            elif transport.backlog_seen:
                # The listener saw output waiting and may have held more back: it can go now.
                transport.backlog_seen = False
                transport.listener.write_drained()

    def _want_write(self, transport: _SocketTransport) -> None:
        if not transport.watching_write:
            self._want.add(transport)
            if threading.get_ident() != self._thread.ident:
                self._wake()

    def _finish(self, transport: _SocketTransport, error: BaseException | None) -> None:
        """End a stream: close the socket and tell its listener, soon and exactly once."""
        if transport.closed:
            return
        transport.closed = True
        self._transports.discard(transport)
        self._want.discard(transport)
        sock = transport.sock

        def release() -> None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(sock)
            sock.close()

        def lost() -> None:
            transport.listener.connection_lost(error)

        if self._reading and self._reader == threading.get_ident():
            # The reader's input ended the stream (a Close-Ok, EOF): it tells the listener
            # itself at the end of its pass rather than wait for the I/O thread to, which
            # saves a close two thread wakes. The selector and the socket stay the I/O
            # thread's to let go of.
            self._lost.append(lost)
            self._ready.append(release)
        else:

            def finish() -> None:
                release()
                lost()

            self._ready.append(finish)
        # A thread reading it as the reader looks at the state of things again.
        self.wake_reader()
        if threading.get_ident() != self._thread.ident:
            self._wake()

    def _update_interest(self, transport: _SocketTransport) -> None:
        """Make the selector watch ``transport`` for what it needs now (I/O thread)."""
        # Not watched for input while a user thread reads it (the reader role).
        events = 0 if transport in self._read_paused else selectors.EVENT_READ
        if transport.watching_write:
            events |= selectors.EVENT_WRITE
        if events == transport.events:
            return
        if not transport.events:
            self._selector.register(transport.sock, events, transport)
        elif not events:
            self._selector.unregister(transport.sock)
        else:
            self._selector.modify(transport.sock, events, transport)
        transport.events = events

    def _register(self, sock: socket.socket, events: int, data: object) -> None:
        self._selector.register(sock, events, data)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._release()

    def _release(self) -> None:
        """Close every socket and the selector (the loop has ended, or never began)."""
        if self._released:
            return
        self._released = True
        with self._lock:
            for transport in list(self._transports):
                transport.closed = True
                with contextlib.suppress(OSError):
                    transport.sock.close()
            self._transports.clear()
            self._ready.clear()
            self._timers.clear()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        self._reader_wake_r.close()
        self._reader_wake_w.close()

    def _loop(self) -> None:
        selector = self._selector
        timers = self._timers
        while True:
            with self._lock:
                if self._stopping and not self._ready:
                    return
                paused = self._read_paused
                if paused and self._reader is None:
                    # No user thread reads any more: watch for input again.
                    restored = tuple(paused)
                    paused.clear()
                    for transport in restored:
                        if not transport.closed:
                            self._update_interest(transport)
                for transport in self._want:
                    if not transport.closed and transport.out_size:
                        transport.watching_write = True
                        self._update_interest(transport)
                self._want.clear()
                if self._ready:
                    timeout: float | None = 0.0
                elif timers:
                    timeout = max(0.0, timers[0][0] - time.monotonic())
                else:
                    timeout = None
                if self._lingering:
                    left = max(0.0, self._linger_until - time.monotonic())
                    timeout = left if timeout is None else min(timeout, left)
                if paused:
                    # A user thread reads. A short stay in the reader role ends without
                    # waking this thread (see wait): look again when it would be long.
                    left = self._reader_since + _RESTORE - time.monotonic()
                    if left > 0:
                        timeout = left if timeout is None else min(timeout, left)
            events = selector.select(timeout)
            with self._lock:
                # Whether this pass did anything the waiters may want to know about.
                busy = False
                for key, mask in events:
                    target = key.data
                    if target is None:
                        self._wake_pending = False
                        with contextlib.suppress(OSError):
                            while self._wake_r.recv(4096):
                                pass
                    elif isinstance(target, _SocketTransport):
                        if target.closed:
                            continue
                        busy = True
                        if mask & selectors.EVENT_WRITE:
                            target.on_writable()
                            if not target.closed and not target.out_size:
                                target.watching_write = False
                                self._update_interest(target)
                        if mask & selectors.EVENT_READ and not target.closed:
                            if self._reader is not None:
                                # A user thread waits in the reader role and reads this
                                # input itself: leave it to it, and stop watching until it
                                # lets go of the role, so as not to compete for every reply.
                                self._read_paused.add(target)
                                self._update_interest(target)
                            else:
                                target.on_readable()
                    else:
                        busy = True
                        assert isinstance(target, _Connect)
                        target.on_event()
                now = time.monotonic()
                self._deferred_bytes = 0
                self._collecting = True
                try:
                    while timers and timers[0][0] <= now:
                        _at, _n, timer = heapq.heappop(timers)
                        if not timer.cancelled:
                            busy = True
                            timer.callback()
                    if self._ready:
                        busy = True
                    for _ in range(len(self._ready)):
                        self._ready.popleft()()
                finally:
                    self._collecting = False
                    self._send_collected()
                if self._lingering and now >= self._linger_until:
                    # Deferred output was sent just now; linger on only while more comes.
                    if self._deferred != self._deferred_seen:
                        self._deferred_seen = self._deferred
                        self._linger_until = now + _LINGER
                    else:
                        self._lingering = False
                if busy:
                    self._on_iteration()


def _resolve(host: str, port: int) -> list[AddressInfo] | OSError:
    """``socket.getaddrinfo`` for a TCP stream: the addresses, or the error it raised."""
    try:
        infos = socket.getaddrinfo(lookup_host(host), port, type=socket.SOCK_STREAM)
    except OSError as error:
        return error
    return address_infos(infos)


class _Connect:
    """Opening one stream: a non-blocking TCP connect, then the TLS handshake if asked."""

    def __init__(
        self,
        io: ThreadIOServices,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> None:
        self.io = io
        self.settings = settings
        self.listener = listener
        self.on_done = on_done
        self.sock: socket.socket | None = None
        self.deadline: _Timer | None = None
        self.cancelled = False
        self.handshaking = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._drop()

    def start(self) -> None:
        if self.cancelled:
            return
        address = self.settings.address
        try:
            sock = socket.socket(address.family, address.socktype, address.proto)
        except OSError as error:
            self._fail(error)
            return
        self.sock = sock
        sock.setblocking(False)
        err = sock.connect_ex(address.sockaddr)
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self._fail(OSError(err, f"connect to {address.sockaddr}: {errno.errorcode.get(err)}"))
            return
        if self.settings.connect_timeout is not None:
            self.deadline = self.io.call_later(self.settings.connect_timeout, self._timed_out)  # type: ignore[assignment]
        self.io._register(sock, selectors.EVENT_WRITE, self)

    def _timed_out(self) -> None:
        self.deadline = None
        if not self.cancelled:
            self._fail(TimeoutError(f"connect to {self.settings.address.sockaddr} timed out"))

    def on_event(self) -> None:
        sock = self.sock
        if self.cancelled or sock is None:
            return
        if not self.handshaking:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._fail(ConnectionRefusedError(err, f"connect to {sock!r} failed"))
                return
            try:
                apply_tcp_options(sock, self.settings.tcp_options, socket)
            except OSError as error:
                self._fail(error)
                return
            context = self.settings.ssl_context
            if context is None:
                self._succeed(sock)
                return
            # The selector must forget the plain socket before TLS takes its descriptor over.
            self.io._selector.unregister(sock)
            try:
                sock = context.wrap_socket(
                    sock,
                    server_hostname=self.settings.server_hostname or self.settings.host,
                    do_handshake_on_connect=False,
                )
            except (OSError, ValueError) as error:
                self.sock = None
                sock.close()
                self._fail(error)
                return
            self.sock = sock
            self.handshaking = True
            self.io._register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)
        import ssl

        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self.io._selector.modify(sock, selectors.EVENT_READ, self)
            return
        except ssl.SSLWantWriteError:
            self.io._selector.modify(sock, selectors.EVENT_WRITE, self)
            return
        except OSError as error:
            self._fail(error)
            return
        self._succeed(sock)

    def _succeed(self, sock: socket.socket) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        transport = _SocketTransport(
            self.io, sock, self.listener, tls=self.settings.ssl_context is not None
        )
        self.io._selector.modify(sock, selectors.EVENT_READ, transport)
        transport.events = selectors.EVENT_READ
        self.io._transports.add(transport)
        self.sock = None
        self.on_done(transport)

    def _drop(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        sock = self.sock
        self.sock = None
        if sock is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.io._selector.unregister(sock)
            sock.close()

    def _fail(self, error: BaseException) -> None:
        self._drop()
        self.on_done(error)
