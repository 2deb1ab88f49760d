"""A small single-threaded event loop on select, poll, epoll or kqueue, with pika's IOLoop API.

The loop watches file descriptors through one of the standard library's :mod:`selectors`
(``select``, ``poll``, ``epoll``, ``kqueue``), keeps its timers in a heap on the monotonic clock,
and runs callbacks handed over from other threads. Another thread wakes a sleeping loop by
writing one byte into a socket pair that the loop watches.

Which poller runs is fixed when the loop is made: the ``poller`` argument names one, else the
module global :data:`SELECT_TYPE` does (pika's way, kept for programs and tests that set it),
else the best one this platform has (epoll, kqueue, poll, select, in that order).
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = (
    "ERROR",
    "POLLER_TYPES",
    "READ",
    "SELECT_TYPE",
    "WRITE",
    "IOLoop",
    "Timeout",
    "available_pollers",
)

READ = 0x0001
WRITE = 0x0004
ERROR = 0x0008

#: Force one poller for every loop made without a ``poller`` argument: ``"select"``, ``"poll"``,
#: ``"epoll"`` or ``"kqueue"``; None picks the best one available. Read when a loop is made.
SELECT_TYPE: str | None = None

#: Every poller name, best first, with the selector class that implements it on this platform.
POLLER_TYPES: dict[str, type[selectors.BaseSelector]] = {
    name: getattr(selectors, cls)
    for name, cls in (
        ("epoll", "EpollSelector"),
        ("kqueue", "KqueueSelector"),
        ("poll", "PollSelector"),
        ("select", "SelectSelector"),
    )
    if hasattr(selectors, cls)
}

# A loop with nothing to do still wakes up now and then, so that a stop() called from a signal
# handler (which cannot use the wake-up socket safely) is noticed.
_MAX_POLL_TIMEOUT = 5.0
# Rebuild the timer heap once this many cancelled timers linger in it.
_CANCELLED_TIMERS_LIMIT = 512

Handler = Callable[[int, int], None]


def available_pollers() -> tuple[str, ...]:
    """Return the names of the pollers this platform offers, best first."""
    return tuple(POLLER_TYPES)


class Timeout:
    """A timer made by :meth:`IOLoop.call_later`; pass it to :meth:`IOLoop.remove_timeout`.

    Attributes:
        deadline: When it is due, on the loop's monotonic clock.
        callback: What runs then; None once it has run or was cancelled.
    """

    __slots__ = ("_loop", "callback", "deadline")

    def __init__(self, loop: IOLoop, deadline: float, callback: Callable[[], None]) -> None:
        self._loop = loop
        self.deadline = deadline
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        """Call the timer off (same as ``loop.remove_timeout(timer)``); harmless if it ran."""
        self._loop.remove_timeout(self)

    def __lt__(self, other: Timeout) -> bool:
        return self.deadline < other.deadline


class IOLoop:
    """An event loop for :class:`~amqp_select.SelectConnection` and anything else.

    Args:
        poller: ``"select"``, ``"poll"``, ``"epoll"`` or ``"kqueue"``; None uses
            :data:`SELECT_TYPE` if set, else the best poller available.

    Raises:
        ValueError: If the poller is unknown or not available on this platform.
    """

    READ = READ
    WRITE = WRITE
    ERROR = ERROR

    def __init__(self, poller: str | None = None) -> None:
        name = poller or SELECT_TYPE or next(iter(POLLER_TYPES))
        try:
            selector_class = POLLER_TYPES[name]
        except KeyError:
            raise ValueError(
                f"poller {name!r} is not available here; choose one of {available_pollers()}"
            ) from None
        self.poller_type = name
        self._selector: selectors.BaseSelector = selector_class()
        self._handlers: dict[int, Handler] = {}
        self._timers: list[tuple[float, int, Timeout]] = []
        self._timer_sequence = itertools.count()
        self._cancelled_timers = 0
        self._callbacks: deque[Callable[[], None]] = deque()
        self._callbacks_lock = threading.Lock()
        self._stopping = False
        self._running = False
        self._closed = False
        # The wake-up pair: other threads write into one end, the loop watches the other.
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector.register(self._wake_reader.fileno(), selectors.EVENT_READ)

    # -- clock and timers -------------------------------------------------------------------

    @staticmethod
    def now() -> float:
        """Return the loop's clock: monotonic seconds."""
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timeout:
        """Run ``callback`` once, ``delay`` seconds from now (on the loop's thread).

        Returns:
            A handle for :meth:`remove_timeout`.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        timer = Timeout(self, self.now() + max(delay, 0.0), callback)
        heapq.heappush(self._timers, (timer.deadline, next(self._timer_sequence), timer))
        return timer

    def remove_timeout(self, timeout_handle: Timeout) -> None:
        """Cancel a timer made by :meth:`call_later`; harmless if it already ran."""
        if timeout_handle.callback is None:
            return
        timeout_handle.callback = None
        self._cancelled_timers += 1
        if self._cancelled_timers > _CANCELLED_TIMERS_LIMIT:
            # Cancelled timers stay in the heap until due; purge them so a program that keeps
            # re-arming long timers does not grow the heap without bound.
            self._timers = [entry for entry in self._timers if entry[2].callback is not None]
            heapq.heapify(self._timers)
            self._cancelled_timers = 0

    # -- callbacks ------------------------------------------------------------------------

    def add_callback(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the next pass of the loop; call this from the loop's thread."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        with self._callbacks_lock:
            self._callbacks.append(callback)

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop's thread soon; safe from any thread, wakes the loop.

        Raises:
            RuntimeError: If the loop was closed.
        """
        if self._closed:
            raise RuntimeError("the IOLoop is closed")
        self.add_callback(callback)
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_writer.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the pair is full: the loop has plenty of wake-ups pending already
        except OSError:
            if not self._closed:
                raise

    # -- file descriptors -----------------------------------------------------------------

    def add_handler(self, fd: int, handler: Handler, events: int) -> None:
        """Call ``handler(fd, events)`` whenever ``fd`` is ready for any of ``events``.

        ``events`` combines :data:`READ` and :data:`WRITE` (:data:`ERROR` is accepted; errors
        and hang-ups show up as readiness, and the next read or write reports them).
        """
        self._handlers[fd] = handler
        self._selector.register(fd, self._selector_events(events))

    def update_handler(self, fd: int, events: int) -> None:
        """Change which events ``fd`` is watched for."""
        self._selector.modify(fd, self._selector_events(events))

    def remove_handler(self, fd: int) -> None:
        """Stop watching ``fd``; harmless if it is not watched."""
        if self._handlers.pop(fd, None) is not None:
            self._selector.unregister(fd)

    @staticmethod
    def _selector_events(events: int) -> int:
        mask = 0
        if events & (READ | ERROR):
            # selectors have no error-only interest; watching for reads is what reveals errors.
            mask |= selectors.EVENT_READ
        if events & WRITE:
            mask |= selectors.EVENT_WRITE
        return mask

    # -- running --------------------------------------------------------------------------

    def start(self) -> None:
        """Run the loop until :meth:`stop` is called."""
        if self._closed:
            raise RuntimeError("the IOLoop is closed")
        if self._running:
            raise RuntimeError("the IOLoop is already running")
        self._running = True
        try:
            while not self._stopping:
                self.poll()
                self.process_timeouts()
        finally:
            self._running = False
            self._stopping = False

    def stop(self) -> None:
        """Make :meth:`start` return after the current pass; a stop before a start is kept."""
        self._stopping = True
        if not self._closed:
            self._wake()

    def close(self) -> None:
        """Release the poller and the wake-up sockets; the loop cannot run again."""
        if self._closed:
            return
        self._closed = True
        self._handlers.clear()
        self._timers.clear()
        with self._callbacks_lock:
            self._callbacks.clear()
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def poll(self) -> None:
        """Wait for I/O (until the next timer at the latest) and run the ready handlers."""
        timeout = self._poll_timeout()
        ready = self._selector.select(timeout)
        for key, mask in ready:
            fd = key.fd
            if fd == self._wake_reader.fileno():
                self._drain_wake_ups()
                continue
            events = 0
            if mask & selectors.EVENT_READ:
                events |= READ
            if mask & selectors.EVENT_WRITE:
                events |= WRITE
            # A handler run before may have removed this one.
            handler = self._handlers.get(fd)
            if handler is not None:
                handler(fd, events)

    def _poll_timeout(self) -> float:
        if self._callbacks or self._stopping:
            return 0.0
        timeout = _MAX_POLL_TIMEOUT
        while self._timers and self._timers[0][2].callback is None:
            heapq.heappop(self._timers)
            self._cancelled_timers = max(0, self._cancelled_timers - 1)
        if self._timers:
            timeout = min(timeout, max(0.0, self._timers[0][0] - self.now()))
        return timeout

    def _drain_wake_ups(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def process_timeouts(self) -> None:
        """Run the timers that are due and the callbacks handed in so far."""
        now = self.now()
        due: list[Timeout] = []
        while self._timers and self._timers[0][0] <= now:
            due.append(heapq.heappop(self._timers)[2])
        for timer in due:
            # Checked at run time: a timer that ran just before may have cancelled this one.
            callback = timer.callback
            if callback is None:
                self._cancelled_timers = max(0, self._cancelled_timers - 1)
                continue
            timer.callback = None
            callback()
        # Only the callbacks present now: ones they add wait for the next pass, so a callback
        # that re-adds itself cannot starve I/O.
        with self._callbacks_lock:
            count = len(self._callbacks)
        for _ in range(count):
            with self._callbacks_lock:
                callback = self._callbacks.popleft()
            callback()
