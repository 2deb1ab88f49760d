"""``BlockingConnection`` and ``BlockingChannel``: pika's blocking API, alive and thread-safe.

The connection runs amqp_core's callback :class:`~amqp_core.connection.Connection` on a private
I/O thread (:mod:`amqp_blocking._io`), so reading, heartbeats and dead-peer detection go on
while the user's code is busy. Every call from a user thread takes the connection's lock and
asks the core to do the work. A call that then waits (a request with a reply, a confirm, events)
writes what the core produced straight to the socket and waits: it reads the reply itself
while no other thread does (the reader role of
:meth:`~amqp_blocking._io.ThreadIOServices.wait`), otherwise it waits on a condition that the
reading thread signals. A publish or an ack writes straight to the socket too after a quiet
spell, but during a burst leaves its output to the I/O thread, which sends the output of many
calls at once, within a millisecond (see
:meth:`~amqp_blocking._io.ThreadIOServices.run_ready_soon`).

User callbacks (deliveries, returns, cancellations, timers, ``add_callback_threadsafe``) are
queued and run inside ``process_data_events`` / ``start_consuming`` / ``consume`` /
``sleep``, never on the I/O thread and never while the lock is held. A channel's callbacks run
in the thread that consumes on it (the last one that called ``basic_consume``, ``consume``,
``start_consuming`` or added a return/cancel callback); connection-wide callbacks run in the
next thread that processes events.

Every AMQP decision (handshake errors, confirms and returns, what happens to buffered
deliveries on cancel) is amqp_core's; this module only waits and hands over.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Final

from amqp_blocking._io import IOCondition, ThreadIOServices
from amqp_core import blocking_support
from amqp_core.channel import Channel
from amqp_core.confirms import ConfirmTracker, PublishOutcome, ReturnedMessage
from amqp_core.connection import Connection
from amqp_core.data import FieldValue
from amqp_core.exceptions import (
    ChannelClosedByBroker,
    ChannelWrongStateError,
    ConnectionClosedByClient,
    ConnectionWrongStateError,
    RecoveryInterrupted,
    ReentrancyError,
)
from amqp_core.exchange_type import ExchangeType
from amqp_core.parameters import Parameters
from amqp_core.recovery import ConnectionLost, RecoveryEvent, keeps_buffered_deliveries
from amqp_core.spec import BasicProperties

__all__ = (
    "BlockingChannel",
    "BlockingConnection",
    "PublishOutcome",
    "ReturnedMessage",
)

LOGGER = logging.getLogger(__name__)

#: A publisher waits while more than this many bytes are queued for the socket.
PUBLISH_HIGH_WATER: Final = 1024 * 1024
#: The default number of unconfirmed messages :meth:`BlockingChannel.publish_batch` allows.
DEFAULT_CONFIRM_WINDOW: Final = 10_000
# About how many bytes an ack takes, and a publish besides its body and names (frame headers
# and properties), for deciding when deferred output is big enough to send at once.
_ACK_SIZE: Final = 21
_PUBLISH_OVERHEAD: Final = 60
# publish_batch publishes up to this many messages, or about this many bytes, per hold of the
# lock: the checks (closed, recovering, backpressure, window) are made once per chunk.
_BATCH_COUNT: Final = 512
_BATCH_BYTES: Final = 64 * 1024
# A thread waiting for confirms is woken by the confirm that gets it there (and by the channel
# or connection ending); it looks again at least this often all the same.
_CONFIRM_POLL: Final = 0.05
# How long close() waits for the I/O thread to end.
_JOIN_TIMEOUT: Final = 10.0

Message = tuple[Any, BasicProperties, bytes]


def _noop() -> None:
    """A queued no-op: wakes a thread waiting in process_data_events so it looks again."""


class _Consumer:
    """One consumer of a BlockingChannel and the deliveries not yet handed to the user."""

    __slots__ = ("auto_ack", "callback", "deliver", "ended", "params", "pending", "tag")

    def __init__(
        self,
        tag: str,
        callback: Callable[..., None] | None,
        auto_ack: bool,
        params: tuple[str, bool, bool] | None = None,
    ) -> None:
        self.tag = tag
        self.callback = callback
        self.auto_ack = auto_ack
        self.params = params
        self.pending: deque[Message] = deque()
        self.ended = False
        # The channel event that hands one pending delivery to ``callback``: made once, queued
        # once per delivery.
        self.deliver: Callable[[], None] | None = None


class _UserTimer:
    """A timer made by :meth:`BlockingConnection.call_later`."""

    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False


class BlockingConnection:
    """A connection whose methods block until done (pika's ``BlockingConnection``).

    Unlike pika's, it keeps the connection alive (heartbeats) while your code runs, and it
    may be shared by threads: every method is thread-safe.

    Args:
        parameters: one :class:`~amqp_core.parameters.Parameters`, a non-empty sequence of
            them (tried in order, with their ``connection_attempts`` and ``retry_delay``), or
            None for the defaults.
        _impl_class: ignored; accepted for pika compatibility.

    Raises:
        AMQPConnectionError: the connection could not be opened (the last attempt's error:
            ``ProbableAuthenticationError``, ``ProbableAccessDeniedError``,
            ``AMQPConnectionError`` for a TCP failure ...).
        ValueError: ``parameters`` is an empty sequence.
    """

    def __init__(
        self,
        parameters: Parameters | Sequence[Parameters] | None = None,
        _impl_class: object = None,
    ) -> None:
        self._lock = threading.RLock()
        self._io = ThreadIOServices(self._lock, self._on_io_iteration)
        # Its waits may read the socket themselves (the reader role, see _io).
        self._cond = IOCondition(self._lock, self._io)
        self._local = threading.local()
        self._pending: deque[Callable[[], None]] = deque()
        self._timers: list[tuple[float, int, _UserTimer]] = []
        self._timer_ids = itertools.count()
        self._channels: dict[int, BlockingChannel] = {}
        self._opened = False
        self._open_error: BaseException | None = None
        self._close_reason: BaseException | None = None
        self._closing = False
        self._blocked = False
        self._blocked_callbacks: list[Callable[..., None]] = []
        self._unblocked_callbacks: list[Callable[..., None]] = []
        # Recovery: bumped on every loss, so that a request waiting across it knows.
        self._generation = 0
        self._recovery_listeners: list[Callable[..., None]] = []
        try:
            with self._lock:
                self._impl = Connection(
                    parameters,
                    self._on_open,
                    self._on_open_error,
                    self._on_closed,
                    io_services=self._io,
                )
                self._impl.add_on_connection_blocked_callback(self._on_blocked)
                self._impl.add_on_connection_unblocked_callback(self._on_unblocked)
                self._impl.add_recovery_listener(self._on_recovery_event)
                # The first attempt starts in this thread: resolution, then the TCP connect.
                self._io.run_ready()
                self._io.start()
                self._cond.wait_for(lambda: self._opened or self._open_error is not None)
        except BaseException:
            self._io.stop()
            self._io.join()
            raise
        error = self._failed_to_open()
        if error is not None:
            self._io.join()
            raise error

    def _failed_to_open(self) -> BaseException | None:
        return self._open_error

    def __repr__(self) -> str:
        return f"<BlockingConnection impl={self._impl!r}>"

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.is_open:
            self.close()
        else:
            self._io.join(_JOIN_TIMEOUT)

    # ------------------------------------------------------------------ core callbacks

    def _on_io_iteration(self) -> None:
        self._cond.notify_all()

    def _on_open(self, _impl: Connection) -> None:
        self._opened = True

    def _on_open_error(self, _impl: Connection, error: BaseException) -> None:
        self._open_error = error
        self._io.stop()

    def _on_closed(self, _impl: Connection, reason: BaseException) -> None:
        self._close_reason = reason
        self._io.stop()
        for channel in self._channels.values():
            channel._confirm_cond.notify_all()
        if not isinstance(reason, ConnectionClosedByClient):
            LOGGER.warning("connection closed: %r", reason)

    def _on_blocked(self, _impl: Connection, method_frame: Any) -> None:
        self._blocked = True
        for callback in self._blocked_callbacks:
            self._pending.append(functools.partial(callback, self, method_frame))

    def _on_unblocked(self, _impl: Connection, method_frame: Any) -> None:
        self._blocked = False
        for callback in self._unblocked_callbacks:
            self._pending.append(functools.partial(callback, self, method_frame))

    def _on_recovery_event(self, _impl: Connection, event: RecoveryEvent) -> None:
        if isinstance(event, ConnectionLost):
            self._generation += 1
            self._blocked = False
            for channel in self._channels.values():
                channel._on_connection_lost(event.reason)
        for callback in self._recovery_listeners:
            self._pending.append(functools.partial(callback, self, event))
        self._cond.notify_all()

    # ------------------------------------------------------------------ waiting

    def _wait_recovered(self, channel: BlockingChannel | None = None) -> None:
        """Wait (lock held) while the connection recovers; raise if that fails."""
        impl = self._impl
        if impl.is_recovering:
            self._wait(lambda: not impl.is_recovering, channel)

    def _raise_if_closed(self) -> None:
        reason = self._close_reason
        if reason is None:
            return
        if isinstance(reason, ConnectionClosedByClient):
            raise ConnectionWrongStateError(f"the connection is closed: {reason!r}")
        raise reason

    def _wait(
        self,
        predicate: Callable[[], bool],
        channel: BlockingChannel | None = None,
        deadline: float | None = None,
        generation: int | None = None,
        read: bool = True,
    ) -> bool:
        """Wait (lock held) until ``predicate()``; raise if the connection or channel ends.

        Args:
            predicate: what to wait for.
            channel: raise if this channel closes.
            deadline: give up at this ``time.monotonic()``.
            generation: the connection's generation when the request was sent: if the
                connection is lost meanwhile, the reply will never come, so wait for the
                recovery to end and raise :class:`RecoveryInterrupted`.
            read: whether this thread may read the socket while it waits (the reader role
                of :meth:`~amqp_blocking._io.ThreadIOServices.wait`); False when only the
                I/O thread's progress (output leaving) can end the wait.

        Returns:
            Whether the predicate came true (False: ``deadline`` passed).
        """
        while not predicate():
            if channel is not None:
                channel._raise_if_closed()
            self._raise_if_closed()
            if generation is not None and generation != self._generation:
                self._wait_recovered(channel)
                raise RecoveryInterrupted(
                    "the connection was lost while waiting for the broker's reply; it has "
                    "been recovered, but the request may or may not have taken effect"
                )
            if deadline is None:
                self._io.wait(self._cond, None, read)
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._io.wait(self._cond, remaining, read)
        return True

    def _wait_writable(self, channel: BlockingChannel) -> None:
        """Backpressure: wait while the broker blocks us or the socket lags behind."""
        impl = self._impl
        # The I/O services' estimate is cheap; the exact size decides while waiting.
        if self._blocked or self._io.unsent_bytes() > PUBLISH_HIGH_WATER:
            self._io.run_ready()
            # Output leaving ends this wait, and the I/O thread sends it: no use reading.
            self._wait(
                lambda: not self._blocked and impl.outbound_buffer_size <= PUBLISH_HIGH_WATER,
                channel,
                read=False,
            )

    # ------------------------------------------------------------------ dispatch

    @property
    def _dispatching(self) -> bool:
        return getattr(self._local, "dispatching", False)

    def _sources(self, me: int) -> list[deque[Callable[[], None]]]:
        sources = [self._pending]
        for channel in self._channels.values():
            if channel._events and channel._owner in (None, me):
                sources.append(channel._events)
        return sources

    def _ready_for(self, me: int) -> bool:
        if self._pending:
            return True
        if self._timers and self._timers[0][0] <= time.monotonic():
            return True
        for channel in self._channels.values():
            if channel._owner in (None, me) and (channel._events or channel._broker_close_unraised):
                return True
            consumer = channel._generator
            if channel._owner == me and consumer is not None and consumer.pending:
                return True
        return False

    def _next_timer_delay(self) -> float | None:
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        if not timers:
            return None
        return max(0.0, timers[0][0] - time.monotonic())

    def _prune(self) -> None:
        """Forget closed channels that have nothing left to hand to the user."""
        for number, channel in list(self._channels.items()):
            if (
                channel._closed_reason is not None
                and not channel._events
                and not channel._broker_close_unraised
            ):
                del self._channels[number]

    def _dispatch(self, me: int) -> None:
        """Run this thread's queued callbacks, one at a time, outside the lock."""
        with self._lock:
            now = time.monotonic()
            due: list[Callable[[], None]] = []
            while self._timers and self._timers[0][0] <= now:
                timer = heapq.heappop(self._timers)[2]
                if not timer.cancelled:
                    due.append(timer.callback)
            self._pending.extend(due)
            self._raise_if_closed()
            self._prune()
            for channel in self._channels.values():
                if channel._owner in (None, me) and channel._broker_close_unraised:
                    channel._raise_if_closed()
            # Everything due now is taken under one hold of the lock, not one per callback;
            # what arrives meanwhile waits for the next call.
            taken = [(source, iter(list(source))) for source in self._sources(me)]
            for source, _callbacks in taken:
                source.clear()
        self._local.dispatching = True
        try:
            for _source, callbacks in taken:
                for callback in callbacks:
                    callback()
        except BaseException:
            # A callback raised: the ones not run yet go back to the front of their queues.
            with self._lock:
                for source, callbacks in taken:
                    source.extendleft(reversed(list(callbacks)))
            raise
        finally:
            self._local.dispatching = False

    # ------------------------------------------------------------------ public API

    @property
    def is_open(self) -> bool:
        """True while the connection is open."""
        return self._impl.is_open

    @property
    def is_closed(self) -> bool:
        """True once the connection is closed."""
        return self._impl.is_closed

    @property
    def basic_nack_supported(self) -> bool:
        """Whether the broker supports ``Basic.Nack``."""
        return self._impl.basic_nack

    @property
    def consumer_cancel_notify_supported(self) -> bool:
        """Whether the broker cancels consumers with ``Basic.Cancel``."""
        return self._impl.consumer_cancel_notify

    @property
    def exchange_exchange_bindings_supported(self) -> bool:
        """Whether the broker supports exchange-to-exchange bindings."""
        return self._impl.exchange_exchange_bindings

    @property
    def publisher_confirms_supported(self) -> bool:
        """Whether the broker supports publisher confirms."""
        return self._impl.publisher_confirms

    basic_nack = basic_nack_supported
    consumer_cancel_notify = consumer_cancel_notify_supported
    exchange_exchange_bindings = exchange_exchange_bindings_supported
    publisher_confirms = publisher_confirms_supported

    def add_on_connection_blocked_callback(self, callback: Callable[..., None]) -> None:
        """Call ``callback(connection, frame.Method[Connection.Blocked])`` when blocked.

        The callback runs inside ``process_data_events`` (or ``start_consuming`` ...).
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, but got {callback!r}")
        with self._lock:
            self._blocked_callbacks.append(callback)

    def add_on_connection_unblocked_callback(self, callback: Callable[..., None]) -> None:
        """Call ``callback(connection, frame.Method[Connection.Unblocked])`` when unblocked."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, but got {callback!r}")
        with self._lock:
            self._unblocked_callbacks.append(callback)

    def add_recovery_listener(self, callback: Callable[..., None]) -> None:
        """Call ``callback(connection, event)`` for each recovery event (beyond pika).

        Only with a :class:`~amqp_core.recovery.RecoveryPolicy` in the parameters. The events
        are those of :mod:`amqp_core.recovery`; the callback runs inside
        ``process_data_events`` / ``start_consuming`` like every other callback.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, but got {callback!r}")
        with self._lock:
            self._recovery_listeners.append(callback)

    @property
    def is_recovering(self) -> bool:
        """True while the connection recovers from a loss (beyond pika)."""
        return self._impl.is_recovering

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` inside the next ``process_data_events`` / ``start_consuming``.

        Safe from any thread; a thread waiting in one of those calls wakes at once.

        Raises:
            ConnectionWrongStateError: the connection is closed.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, but got {callback!r}")
        with self._lock:
            if self._close_reason is not None:
                raise ConnectionWrongStateError("add_callback_threadsafe: the connection is closed")
            self._pending.append(callback)
            self._cond.notify_all()

    def call_later(self, delay: float, callback: Callable[[], None]) -> object:
        """Run ``callback()`` after ``delay`` seconds, inside ``process_data_events``.

        Returns:
            An id for :meth:`remove_timeout`.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, but got {callback!r}")
        timer = _UserTimer(callback)
        with self._lock:
            heapq.heappush(
                self._timers, (time.monotonic() + max(0.0, delay), next(self._timer_ids), timer)
            )
            self._cond.notify_all()
        return timer

    def remove_timeout(self, timeout_id: object) -> None:
        """Cancel a timer made by :meth:`call_later`."""
        if isinstance(timeout_id, _UserTimer):
            timeout_id.cancelled = True

    def process_data_events(self, time_limit: float | None = 0) -> None:
        """Run the callbacks that are due (deliveries, returns, timers, ...).

        Args:
            time_limit: 0 (the default) looks once without waiting; None waits until there
                is something to run; a number waits at most that many seconds.

        Raises:
            AMQPConnectionError: the connection ended (its close reason).
            ChannelClosedByBroker: the broker closed a channel this thread consumes on.
        """
        me = threading.get_ident()
        with self._lock:
            # Send what earlier calls queued before looking or waiting.
            self._io.run_ready()
            if self._dispatching:
                # Nested in a callback: the I/O thread does the I/O, and callbacks are not
                # run re-entrantly (pika's rule).
                self._raise_if_closed()
                return
            deadline = None if time_limit is None else time.monotonic() + time_limit
            while not self._ready_for(me):
                self._raise_if_closed()
                timer_delay = self._next_timer_delay()
                if deadline is None:
                    wait = timer_delay
                else:
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        return
                    if timer_delay is not None:
                        wait = min(wait, timer_delay)
                self._cond.wait(wait)
        self._dispatch(me)

    def sleep(self, duration: float) -> None:
        """Sleep ``duration`` seconds while running due callbacks."""
        assert duration >= 0, duration
        deadline = time.monotonic() + duration
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.process_data_events(remaining)

    def channel(self, channel_number: int | None = None) -> BlockingChannel:
        """Open a channel and wait until the broker confirms it."""
        opened: list[Channel] = []
        with self._lock:
            self._raise_if_closed()
            self._wait_recovered()
            self._prune()
            impl = self._impl.channel(channel_number, opened.append)
            self._io.run_ready()
            channel = BlockingChannel(impl, self)
            self._channels[impl.channel_number] = channel
            self._wait(lambda: bool(opened), channel)
        return channel

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close the channels (cancelling their consumers), then the connection.

        Raises:
            ConnectionWrongStateError: the connection is closing or closed.
        """
        with self._lock:
            if self._closing or self._close_reason is not None:
                raise ConnectionWrongStateError(
                    f"close({reply_code}, {reply_text!r}): the connection is already "
                    "closing or closed"
                )
            self._closing = True
            self._impl.close(reply_code, reply_text)
            self._io.run_ready()
            self._cond.wait_for(lambda: self._close_reason is not None)
        self._io.join(_JOIN_TIMEOUT)

    def update_secret(self, new_secret: str, reason: str) -> None:
        """Send a new secret (e.g. a fresh OAuth 2 token) and wait for the broker's reply."""
        done: list[Any] = []
        with self._lock:
            self._raise_if_closed()
            self._impl.update_secret(new_secret, reason, done.append)
            self._io.run_ready()
            self._wait(lambda: bool(done))


class BlockingChannel:
    """A channel whose methods block until done (pika's ``BlockingChannel``).

    Obtain it with :meth:`BlockingConnection.channel`. Every method is thread-safe: two
    threads may publish, ack or make requests on the same channel at once, and each request
    gets its own reply (the core keeps one request in flight per channel, in order).
    Consuming is per channel: callbacks and ``consume()`` messages are handed to the thread
    that consumes on the channel.
    """

    def __init__(self, channel_impl: Channel, connection: BlockingConnection) -> None:
        self._impl = channel_impl
        self._connection = connection
        self._events: deque[Callable[[], None]] = deque()
        self._owner: int | None = None
        self._consumers: dict[str, _Consumer] = {}
        self._generator: _Consumer | None = None
        self._closed_reason: BaseException | None = None
        self._broker_close_unraised = False
        self._tracker: ConfirmTracker | None = None
        self._confirm_mode = False
        # Threads waiting for confirms (_wait_confirms), each for at most this many
        # unconfirmed; woken through their own condition, not by every pass of the I/O thread.
        self._confirm_waiters: list[int] = []
        self._confirm_cond = IOCondition(connection._lock, connection._io)
        self._return_callbacks: list[Callable[..., None]] = []
        self._cancel_callbacks: list[Callable[..., None]] = []
        #: The most unconfirmed messages :meth:`publish_batch` / :meth:`publish_async` allow.
        self.confirm_window = DEFAULT_CONFIRM_WINDOW
        channel_impl.add_on_close_callback(self._on_close)
        channel_impl.add_on_return_callback(self._on_return)
        channel_impl.add_on_cancel_callback(self._on_cancel)

    def __int__(self) -> int:
        return self._impl.channel_number

    def __repr__(self) -> str:
        return f"<BlockingChannel impl={self._impl!r}>"

    def __enter__(self) -> BlockingChannel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.is_open:
            self.close()

    # ------------------------------------------------------------------ core callbacks

    def _on_close(self, _impl: Channel, reason: BaseException) -> None:
        self._closed_reason = reason
        if isinstance(reason, ChannelClosedByBroker):
            self._broker_close_unraised = True
        if self._tracker is not None:
            self._tracker.fail_all(reason)
        self._confirm_cond.notify_all()
        for consumer in self._consumers.values():
            consumer.ended = True
        # The channel stays in the connection's table until its queued callbacks ran and
        # its close reason was raised (see BlockingConnection._prune); the no-op wakes the
        # thread that consumes on it.
        self._events.append(_noop)

    def _on_connection_lost(self, reason: BaseException) -> None:
        # Called before the core reports the unconfirmed publishes as nacked: they fail
        # with a clearer error than NackError.
        if self._tracker is not None:
            self._tracker.fail_all(
                RecoveryInterrupted(
                    f"the connection was lost before the broker confirmed the message "
                    f"({reason!r}); it may or may not have been received"
                )
            )
        self._confirm_cond.notify_all()
        for consumer in self._consumers.values():
            if not keeps_buffered_deliveries(consumer.auto_ack):
                consumer.pending.clear()
        self._events.append(_noop)

    def _on_return(self, _impl: Channel, method: Any, properties: Any, body: bytes) -> None:
        if self._tracker is not None:
            self._tracker.on_return(method, properties, body)
        for callback in self._return_callbacks:
            self._events.append(functools.partial(callback, self, method, properties, body))

    def _on_cancel(self, method_frame: Any) -> None:
        consumer = self._consumers.pop(method_frame.method.consumer_tag, None)
        if consumer is not None:
            consumer.ended = True
        for callback in self._cancel_callbacks:
            self._events.append(functools.partial(callback, method_frame))
        self._events.append(_noop)

    def _on_confirm(self, method_frame: Any) -> None:
        tracker = self._tracker
        assert tracker is not None
        tracker.on_confirm(method_frame)
        waiters = self._confirm_waiters
        if waiters and tracker.unsettled <= max(waiters):
            self._confirm_cond.notify_all()

    def _wait_confirms(self, limit: int, deadline: float | None = None) -> bool:
        """Wait (lock held) until at most ``limit`` publishes are unconfirmed.

        Raises what :meth:`BlockingConnection._wait` raises.

        Returns:
            Whether it came to that (False: ``deadline`` passed first).
        """
        tracker = self._tracker
        assert tracker is not None
        connection = self._connection
        if tracker.unsettled <= limit:
            return True
        connection._io.run_ready()
        self._confirm_waiters.append(limit)
        try:
            while tracker.unsettled > limit:
                self._raise_if_closed()
                connection._raise_if_closed()
                wait = _CONFIRM_POLL
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    wait = min(wait, remaining)
                self._confirm_cond.wait(wait)
        finally:
            self._confirm_waiters.remove(limit)
        return True

    def _on_delivery(
        self, consumer: _Consumer, _impl: Channel, method: Any, properties: Any, body: bytes
    ) -> None:
        consumer.pending.append((method, properties, body))
        deliver = consumer.deliver
        if deliver is not None:
            self._events.append(deliver)

    def _deliver_one(self, consumer: _Consumer) -> None:
        # Without the lock: deque operations are atomic, and a cancel that emptied the deque
        # meanwhile (under the lock) just leaves nothing to deliver.
        try:
            method, properties, body = consumer.pending.popleft()
        except IndexError:
            return
        assert consumer.callback is not None
        consumer.callback(self, method, properties, body)

    # ------------------------------------------------------------------ plumbing

    def _raise_if_closed(self) -> None:
        reason = self._closed_reason
        if reason is None:
            return
        if self._broker_close_unraised:
            self._broker_close_unraised = False
            raise reason
        self._connection._raise_if_closed()
        raise ChannelWrongStateError(f"channel {int(self)} is closed: {reason!r}")

    def _call(self, start: Callable[[Callable[[Any], None]], None]) -> Any:
        """Send a request with ``start(on_reply)`` and wait for the reply."""
        connection = self._connection
        box: list[Any] = []
        with connection._lock:
            connection._raise_if_closed()
            if self._closed_reason is not None:
                self._raise_if_closed()
            connection._wait_recovered(self)
            generation = connection._generation
            start(box.append)
            connection._io.run_ready()
            connection._wait(lambda: bool(box), self, generation=generation)
        return box[0]

    def _take_ownership(self) -> None:
        self._owner = threading.get_ident()

    # ------------------------------------------------------------------ properties

    @property
    def channel_number(self) -> int:
        """The channel's number."""
        return self._impl.channel_number

    @property
    def connection(self) -> BlockingConnection:
        """The connection the channel belongs to."""
        return self._connection

    @property
    def is_open(self) -> bool:
        """True while the channel is open."""
        return self._impl.is_open

    @property
    def is_closed(self) -> bool:
        """True once the channel is closed."""
        return self._impl.is_closed

    @property
    def consumer_tags(self) -> list[str]:
        """The tags of the channel's consumers."""
        with self._connection._lock:
            return list(self._consumers)

    # ------------------------------------------------------------------ channel

    def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> None:
        """Close the channel, cancelling its consumers first.

        Raises:
            ChannelWrongStateError: the channel is closed.
        """
        connection = self._connection
        with connection._lock:
            if self._closed_reason is not None and not self._impl.is_open:
                raise ChannelWrongStateError(f"channel {int(self)} is already closed")
            self._impl.close(reply_code, reply_text)
            connection._io.run_ready()
            connection._wait(lambda: self._closed_reason is not None)
            self._broker_close_unraised = False

    def flow(self, active: bool) -> bool:
        """Ask the broker to pause (False) or resume (True) deliveries; return its answer."""
        result: bool = self._call(lambda done: self._impl.flow(active, done))
        return result

    def add_on_cancel_callback(self, callback: Callable[..., None]) -> None:
        """Call ``callback(frame.Method[Basic.Cancel])`` when the broker cancels a consumer."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, but got {callback!r}")
        with self._connection._lock:
            self._cancel_callbacks.append(callback)

    def add_on_return_callback(self, callback: Callable[..., None]) -> None:
        """Call ``callback(channel, Basic.Return, properties, body)`` for returned messages."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, but got {callback!r}")
        with self._connection._lock:
            self._return_callbacks.append(callback)

    # ------------------------------------------------------------------ consuming

    def basic_consume(
        self,
        queue: str,
        on_message_callback: Callable[..., None],
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict[str, FieldValue] | None = None,
    ) -> str:
        """Start a consumer: ``on_message_callback(channel, Basic.Deliver, properties, body)``.

        The callback runs inside ``start_consuming`` / ``process_data_events`` in the thread
        that consumes on this channel.

        Returns:
            The consumer tag.

        Raises:
            ValueError: ``on_message_callback`` is not callable.
            DuplicateConsumerTag: the tag is in use.
        """
        if not callable(on_message_callback):
            raise ValueError(f"on_message_callback must be callable: {on_message_callback!r}")
        self._take_ownership()
        consumer = _Consumer("", on_message_callback, auto_ack)
        consumer.deliver = functools.partial(self._deliver_one, consumer)
        return self._start_consumer(
            consumer,
            queue,
            exclusive,
            consumer_tag,
            arguments,
        )

    def _start_consumer(
        self,
        consumer: _Consumer,
        queue: str,
        exclusive: bool,
        consumer_tag: str | None,
        arguments: dict[str, FieldValue] | None,
    ) -> str:
        def start(done: Callable[[Any], None]) -> None:
            tag = self._impl.basic_consume(
                queue,
                functools.partial(self._on_delivery, consumer),
                auto_ack=consumer.auto_ack,
                exclusive=exclusive,
                consumer_tag=consumer_tag,
                arguments=arguments,
                callback=done,
            )
            consumer.tag = tag
            self._consumers[tag] = consumer

        self._call(start)
        return consumer.tag

    def basic_cancel(self, consumer_tag: str) -> list[Message]:
        """Cancel a consumer.

        Returns:
            For an ``auto_ack`` consumer, the deliveries that arrived but were not dispatched
            yet; otherwise ``[]`` (those deliveries are refused with requeue).
        """
        connection = self._connection
        with connection._lock:
            consumer = self._consumers.get(consumer_tag)
            if consumer is None:
                LOGGER.warning("basic_cancel: unknown consumer tag %r", consumer_tag)
                return []
            if not consumer.ended:
                self._cancel_in_core(consumer_tag)
            return self._drop_consumer(consumer)[0]

    def _cancel_in_core(self, consumer_tag: str) -> None:
        connection = self._connection
        connection._wait_recovered(self)
        if not self._impl.is_open:
            return
        # A cancel under way when the connection died (RecoveryInterrupted) is done all the
        # same: recovery does not restore a consumer that was being cancelled.
        with contextlib.suppress(RecoveryInterrupted):
            self._call(lambda done: self._impl.basic_cancel(consumer_tag, done))

    def _drop_consumer(self, consumer: _Consumer) -> tuple[list[Message], int]:
        consumer.ended = True
        self._consumers.pop(consumer.tag, None)
        if self._generator is consumer:
            self._generator = None
        pending = list(consumer.pending)
        consumer.pending.clear()
        result = blocking_support.release_undelivered(self._impl, consumer.auto_ack, pending)
        self._connection._io.run_ready()
        self._events.append(_noop)
        self._connection._cond.notify_all()
        return result

    def start_consuming(self) -> None:
        """Run consumer callbacks until every consumer of the channel is cancelled.

        Raises:
            ReentrancyError: called from inside a callback.
            ChannelClosedByBroker: the broker closed the channel.
            AMQPConnectionError: the connection ended.
        """
        connection = self._connection
        if connection._dispatching:
            raise ReentrancyError("start_consuming may not be called from a callback")
        self._take_ownership()
        while True:
            with connection._lock:
                if self._broker_close_unraised:
                    self._raise_if_closed()
                if not self._events and not any(
                    c.callback is not None for c in self._consumers.values()
                ):
                    return
            connection.process_data_events(None)

    def stop_consuming(self, consumer_tag: str | None = None) -> None:
        """Cancel one consumer, or all of them; ``start_consuming`` then returns."""
        if consumer_tag is not None:
            self.basic_cancel(consumer_tag)
            return
        with self._connection._lock:
            tags = list(self._consumers)
        for tag in tags:
            self.basic_cancel(tag)

    def consume(
        self,
        queue: str,
        auto_ack: bool = False,
        exclusive: bool = False,
        arguments: dict[str, FieldValue] | None = None,
        inactivity_timeout: float | None = None,
        consumer_tag: str | None = None,
    ) -> Iterator[tuple[Any, Any, Any]]:
        """Consume from ``queue`` as a generator of ``(Basic.Deliver, properties, body)``.

        Yields ``(None, None, None)`` after ``inactivity_timeout`` seconds without a message.
        Calling it again with the same queue and flags resumes the same consumer. The
        generator ends when :meth:`cancel` (or the broker) cancels the consumer.

        Raises:
            ValueError: a consumer made by an earlier call has different parameters.
            ChannelClosedByBroker: the broker closed the channel.
        """
        params = (queue, auto_ack, exclusive)
        connection = self._connection
        with connection._lock:
            consumer = self._generator
            if consumer is not None and consumer.params != params:
                raise ValueError(
                    f"consume{params}: the channel already has a consume() consumer with "
                    f"parameters {consumer.params}; cancel() it first"
                )
        if consumer is None:
            consumer = _Consumer("", None, auto_ack, params)
            self._take_ownership()
            self._start_consumer(consumer, queue, exclusive, consumer_tag, arguments)
            self._generator = consumer
        return self._consume_messages(consumer, inactivity_timeout)

    def _consume_messages(
        self, consumer: _Consumer, inactivity_timeout: float | None
    ) -> Iterator[tuple[Any, Any, Any]]:
        connection = self._connection
        self._take_ownership()
        deadline = None if inactivity_timeout is None else time.monotonic() + inactivity_timeout
        while True:
            message: tuple[Any, Any, Any] | None = None
            with connection._lock:
                if consumer.pending:
                    message = consumer.pending.popleft()
                elif consumer.ended:
                    if self._broker_close_unraised:
                        self._raise_if_closed()
                    connection._raise_if_closed()
                    if self._generator is consumer:
                        self._generator = None
                    return
            if message is not None:
                yield message
                if inactivity_timeout is not None:
                    deadline = time.monotonic() + inactivity_timeout
                continue
            if deadline is None:
                connection.process_data_events(None)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                yield (None, None, None)
                deadline = time.monotonic() + (inactivity_timeout or 0.0)
                continue
            connection.process_data_events(remaining)

    def get_waiting_message_count(self) -> int:
        """How many messages the ``consume()`` consumer has buffered, not yet yielded."""
        with self._connection._lock:
            consumer = self._generator
            return len(consumer.pending) if consumer is not None else 0

    def cancel(self) -> int:
        """Cancel the ``consume()`` consumer; refuse (requeue) what it buffered.

        Returns:
            How many buffered messages were requeued (pika 1.x always says 0).
        """
        connection = self._connection
        with connection._lock:
            consumer = self._generator
            if consumer is None:
                return 0
            if not consumer.ended:
                self._cancel_in_core(consumer.tag)
            return self._drop_consumer(consumer)[1]

    # ------------------------------------------------------------------ acks

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Acknowledge a delivery (or all up to ``delivery_tag`` with ``multiple``)."""
        connection = self._connection
        with connection._lock:
            connection._raise_if_closed()
            self._wait_unless_stale(delivery_tag)
            self._impl.basic_ack(delivery_tag, multiple)
            connection._io.run_ready_soon(_ACK_SIZE)

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Refuse a delivery (or several with ``multiple``), requeueing it by default."""
        connection = self._connection
        with connection._lock:
            connection._raise_if_closed()
            self._wait_unless_stale(delivery_tag)
            self._impl.basic_nack(delivery_tag, multiple, requeue)
            connection._io.run_ready_soon(_ACK_SIZE)

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        """Refuse one delivery, requeueing it by default."""
        connection = self._connection
        with connection._lock:
            connection._raise_if_closed()
            self._wait_unless_stale(delivery_tag)
            self._impl.basic_reject(delivery_tag, requeue)
            connection._io.run_ready_soon(_ACK_SIZE)

    def _wait_unless_stale(self, delivery_tag: int) -> None:
        # A tag from before a recovery is dropped (and reported) by the core at once; any
        # other acknowledgement waits for the recovery to end.
        if not 0 < delivery_tag <= self._impl._tag_offset:
            self._connection._wait_recovered(self)

    def basic_get(self, queue: str, auto_ack: bool = False) -> tuple[Any, Any, Any]:
        """Fetch one message: ``(Basic.GetOk, properties, body)``, or three Nones if empty."""
        result: tuple[Any, Any, Any] = self._call(
            lambda done: blocking_support.basic_get(self._impl, queue, auto_ack, done)
        )
        return result

    def basic_qos(
        self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False
    ) -> Any:
        """Set the prefetch window; return the ``frame.Method[Basic.QosOk]``."""
        return self._call(
            lambda done: self._impl.basic_qos(prefetch_size, prefetch_count, global_qos, done)
        )

    def basic_recover(self, requeue: bool = False) -> Any:
        """Ask for redelivery of unacknowledged messages; return ``frame.Method[RecoverOk]``."""
        return self._call(lambda done: self._impl.basic_recover(requeue, done))

    # ------------------------------------------------------------------ publishing

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: str | bytes,
        properties: BasicProperties | None = None,
        mandatory: bool = False,
    ) -> None:
        """Publish a message.

        Without :meth:`confirm_delivery` it returns once the message is handed to the socket
        (it waits while the broker blocks the connection or the socket lags, so memory stays
        bounded). With it, it waits for the broker's confirm.

        Raises:
            NackError: (confirm mode) the broker refused the message.
            UnroutableError: (confirm mode) a mandatory message was returned.
            ConnectionBlockedTimeout: the broker blocked the connection for longer than
                ``blocked_connection_timeout``.
        """
        wait = self._confirm_mode
        outcome = self._publish(exchange, routing_key, body, properties, mandatory, False, wait)
        if outcome is not None and wait:
            connection = self._connection
            with connection._lock:
                connection._wait(lambda: outcome.settled)
            error = outcome.error
            if error is not None:
                raise error

    def _publish(
        self,
        exchange: str,
        routing_key: str,
        body: str | bytes,
        properties: BasicProperties | None,
        mandatory: bool,
        windowed: bool,
        send_now: bool = False,
    ) -> PublishOutcome | None:
        if isinstance(body, str):
            body = body.encode("utf-8")
        connection = self._connection
        with connection._lock:
            connection._raise_if_closed()
            connection._wait_writable(self)
            tracker = self._tracker
            if windowed:
                assert tracker is not None
                window = max(1, self.confirm_window)
                if tracker.unsettled >= window:
                    self._wait_confirms(tracker.refill_level(window))
            connection._wait_recovered(self)
            if self._closed_reason is not None:
                # Closed by the broker (e.g. a 404 for an earlier publish): say so.
                self._raise_if_closed()
            self._impl.basic_publish(exchange, routing_key, body, properties, mandatory)
            outcome = None
            if tracker is not None:
                outcome = tracker.published(exchange, routing_key, body, properties, mandatory)
            if send_now:
                # The caller waits for the confirm: no reason to wait for the I/O thread.
                connection._io.run_ready()
            else:
                connection._io.run_ready_soon(
                    len(body) + len(exchange) + len(routing_key) + _PUBLISH_OVERHEAD
                )
        return outcome

    def confirm_delivery(self) -> None:
        """Turn on publisher confirms: from now on ``basic_publish`` waits for each confirm.

        For many messages without a round trip each, see :meth:`publish_batch`.
        """
        if self._confirm_mode:
            LOGGER.error("confirm_delivery: channel %d is already in confirm mode", int(self))
            return
        self._enable_confirms()
        self._confirm_mode = True

    def _enable_confirms(self) -> ConfirmTracker:
        if self._tracker is None:
            tracker = ConfirmTracker()
            self._call(lambda done: self._impl.confirm_delivery(self._on_confirm, done))
            self._tracker = tracker
        return self._tracker

    def publish_async(
        self,
        exchange: str,
        routing_key: str,
        body: str | bytes,
        properties: BasicProperties | None = None,
        mandatory: bool = False,
    ) -> PublishOutcome:
        """Publish with confirms, without waiting for the confirm.

        Turns confirms on for the channel if needed. Once :attr:`confirm_window` messages
        are unconfirmed, waits until half of them are confirmed. The returned outcome settles
        when the broker acks or nacks the message (see :meth:`wait_for_confirms`).
        """
        self._enable_confirms()
        outcome = self._publish(exchange, routing_key, body, properties, mandatory, True)
        assert outcome is not None
        return outcome

    def wait_for_confirms(self, timeout: float | None = None) -> bool:
        """Wait until every message published with confirms is settled.

        Returns:
            True when all are settled; False if ``timeout`` seconds passed first.

        Raises:
            ChannelClosedByBroker, AMQPConnectionError: the channel or connection ended
                (the unsettled outcomes carry that reason as their ``failure``).
        """
        tracker = self._tracker
        if tracker is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        connection = self._connection
        with connection._lock:
            connection._io.run_ready()
            return self._wait_confirms(0, deadline)

    def publish_batch(
        self,
        messages: Iterable[tuple[Any, ...]],
        mandatory: bool = False,
    ) -> list[PublishOutcome]:
        """Publish many messages with confirms, then wait for all of them.

        At most :attr:`confirm_window` messages are unconfirmed at a time; once that many
        are, it waits until half of them are confirmed, so this costs about one round trip
        per half window, not one per message. The messages are taken from ``messages`` in
        chunks of a few hundred, outside the connection's lock (a generator is fine).

        Args:
            messages: ``(exchange, routing_key, body)`` or
                ``(exchange, routing_key, body, properties)`` tuples.
            mandatory: publish them mandatory (unroutable ones come back as returned).

        Returns:
            One :class:`PublishOutcome` per message, in order: ``ok``, or ``error`` (a
            ``NackError`` / ``UnroutableError``) per message.
        """
        tracker = self._enable_confirms()
        connection = self._connection
        io = connection._io
        publish = self._impl.basic_publish
        track = tracker.published
        outcomes: list[PublishOutcome] = []
        iterator = iter(messages)
        while True:
            window = max(1, self.confirm_window)
            # Taken outside the lock: a slow generator must not hold up the I/O thread.
            chunk = list(itertools.islice(iterator, min(_BATCH_COUNT, window)))
            if not chunk:
                break
            with connection._lock:
                connection._raise_if_closed()
                connection._wait_writable(self)
                limit = window - len(chunk)
                if tracker.unsettled > limit:
                    # The window is full: wait until it may be refilled.
                    self._wait_confirms(min(limit, tracker.refill_level(window)))
                connection._wait_recovered(self)
                if self._closed_reason is not None:
                    # Closed by the broker (e.g. a 404 for an earlier publish): say so.
                    self._raise_if_closed()
                size = 0
                for message in chunk:
                    exchange, routing_key, body = message[0], message[1], message[2]
                    properties = message[3] if len(message) > 3 else None
                    if isinstance(body, str):
                        body = body.encode("utf-8")
                    publish(exchange, routing_key, body, properties, mandatory)
                    outcomes.append(track(exchange, routing_key, body, properties, mandatory))
                    size += len(body) + len(exchange) + len(routing_key) + _PUBLISH_OVERHEAD
                    if size >= _BATCH_BYTES:
                        # Bounded memory with big bodies: send, and wait if the socket lags.
                        io.run_ready()
                        connection._wait_writable(self)
                        connection._wait_recovered(self)
                        size = 0
                io.run_ready_soon(size)
        self.wait_for_confirms()
        return outcomes

    # ------------------------------------------------------------------ exchanges

    def exchange_declare(
        self,
        exchange: str,
        exchange_type: ExchangeType | str = ExchangeType.direct,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, FieldValue] | None = None,
    ) -> Any:
        """Declare an exchange; return ``frame.Method[Exchange.DeclareOk]``."""
        return self._call(
            lambda done: self._impl.exchange_declare(
                exchange,
                exchange_type,
                passive,
                durable,
                auto_delete,
                internal,
                arguments,
                done,
            )
        )

    def exchange_delete(self, exchange: str | None = None, if_unused: bool = False) -> Any:
        """Delete an exchange; return ``frame.Method[Exchange.DeleteOk]``."""
        return self._call(lambda done: self._impl.exchange_delete(exchange, if_unused, done))

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: dict[str, FieldValue] | None = None,
    ) -> Any:
        """Bind an exchange to another; return ``frame.Method[Exchange.BindOk]``."""
        return self._call(
            lambda done: self._impl.exchange_bind(destination, source, routing_key, arguments, done)
        )

    def exchange_unbind(
        self,
        destination: str | None = None,
        source: str | None = None,
        routing_key: str = "",
        arguments: dict[str, FieldValue] | None = None,
    ) -> Any:
        """Remove an exchange binding; return ``frame.Method[Exchange.UnbindOk]``."""
        return self._call(
            lambda done: self._impl.exchange_unbind(
                destination, source, routing_key, arguments, done
            )
        )

    # ------------------------------------------------------------------ queues

    def queue_declare(
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, FieldValue] | None = None,
    ) -> Any:
        """Declare a queue; return ``frame.Method[Queue.DeclareOk]`` (``.method.queue``).

        Raises:
            ChannelClosedByBroker: e.g. 404 for a passive declare of a missing queue.
        """
        return self._call(
            lambda done: self._impl.queue_declare(
                queue, passive, durable, exclusive, auto_delete, arguments, done
            )
        )

    def queue_delete(self, queue: str, if_unused: bool = False, if_empty: bool = False) -> Any:
        """Delete a queue; return ``frame.Method[Queue.DeleteOk]``."""
        return self._call(lambda done: self._impl.queue_delete(queue, if_unused, if_empty, done))

    def queue_purge(self, queue: str) -> Any:
        """Purge a queue; return ``frame.Method[Queue.PurgeOk]``."""
        return self._call(lambda done: self._impl.queue_purge(queue, done))

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: dict[str, FieldValue] | None = None,
    ) -> Any:
        """Bind a queue to an exchange; return ``frame.Method[Queue.BindOk]``."""
        return self._call(
            lambda done: self._impl.queue_bind(queue, exchange, routing_key, arguments, done)
        )

    def queue_unbind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str | None = None,
        arguments: dict[str, FieldValue] | None = None,
    ) -> Any:
        """Remove a queue binding; return ``frame.Method[Queue.UnbindOk]``."""
        return self._call(
            lambda done: self._impl.queue_unbind(queue, exchange, routing_key, arguments, done)
        )

    # ------------------------------------------------------------------ transactions

    def tx_select(self) -> Any:
        """Start using transactions; return ``frame.Method[Tx.SelectOk]``."""
        return self._call(lambda done: self._impl.tx_select(done))

    def tx_commit(self) -> Any:
        """Commit; return ``frame.Method[Tx.CommitOk]``."""
        return self._call(lambda done: self._impl.tx_commit(done))

    def tx_rollback(self) -> Any:
        """Roll back; return ``frame.Method[Tx.RollbackOk]``."""
        return self._call(lambda done: self._impl.tx_rollback(done))
