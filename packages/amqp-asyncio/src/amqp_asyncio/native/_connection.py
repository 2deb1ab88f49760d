"""The native connection and :func:`connect`: amqp_core's connection run in an anyio task group.

The connection workflow (hosts, addresses, attempts, timeouts), the handshake, heartbeats,
the blocked timeout and every close reason are amqp_core's
(:class:`amqp_core.connection.Connection`). This module gives that connection a task group to
run in (:class:`~amqp_asyncio.native._services.AnyioServices`) and turns its callbacks into
waits.

Why ``async with connect(...)`` and not ``await connect()`` alone: the connection's reader,
writer and heartbeat timer are tasks, and under structured concurrency (trio's rule, which
anyio follows on asyncio too) tasks live in a task group bounded by a block. The block is the
connection's lifetime; when it ends the connection is closed and its tasks are gone.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Final

import anyio
import anyio.abc

from amqp_asyncio.native._channel import DEFAULT_MAX_IN_FLIGHT, NativeChannel
from amqp_asyncio.native._services import AnyioServices
from amqp_asyncio.native._waiter import Latch, Waiter
from amqp_core import frame
from amqp_core.awaitable import blocked_reason
from amqp_core.connection import Connection as CoreConnection
from amqp_core.data import FieldTable
from amqp_core.exceptions import (
    ConnectionClosedByClient,
    ConnectionWrongStateError,
    RecoveryInterrupted,
)
from amqp_core.parameters import ConnectionParameters, Parameters, URLParameters
from amqp_core.recovery import (
    ConnectionLost,
    PublishesUnconfirmed,
    Recovered,
    RecoveryEvent,
    RecoveryPolicy,
)

__all__ = ("ConnectionContext", "NativeConnection", "connect")

#: How long leaving ``async with connect(...)`` waits for an orderly close before dropping
#: the stream.
DEFAULT_CLOSE_TIMEOUT: Final = 10.0
#: Unsent output, in bytes, above which ``basic_publish`` waits for the socket to take it.
DEFAULT_WRITE_HIGH_WATER: Final = 1024 * 1024
# ``basic_publish`` lets the event loop run (the writer task among others) once this much
# publishing credit is spent: one unit per publish, one more per 2 KiB of body. Between those
# points a publish only checks for cancellation, so bursts leave in few large writes.
PUBLISH_CREDIT: Final = 128

ParametersLike = str | Parameters


class _Default(enum.Enum):
    DEFAULT = enum.auto()


#: ``connect(recovery=...)``'s default: a :class:`RecoveryPolicy` unless the parameters carry one.
DEFAULT_RECOVERY: Final = _Default.DEFAULT

RecoveryListener = Callable[["NativeConnection", RecoveryEvent], None]


def _parameters(
    parameters: ParametersLike | Sequence[ParametersLike] | None,
    recovery: RecoveryPolicy | _Default | None,
) -> list[Parameters]:
    if parameters is None:
        parameters = [ConnectionParameters()]
    elif isinstance(parameters, (str, Parameters)):
        parameters = [parameters]
    configs = [URLParameters(p) if isinstance(p, str) else p for p in parameters]
    if not configs:
        return configs
    if recovery is DEFAULT_RECOVERY:
        if configs[0].recovery is not None:
            return configs
        recovery = RecoveryPolicy()
    # Copies: the application's parameter objects are left as they were.
    configs = [copy.copy(p) for p in configs]
    for config in configs:
        config.recovery = recovery
    return configs


class NativeConnection:
    """An open AMQP connection with awaitable methods; made by :func:`connect`.

    Without recovery (``connect(..., recovery=None)``) every wait on the connection or its
    channels ends with the connection's error if the connection is lost (``StreamLostError``),
    misses its heartbeats (``AMQPHeartbeatTimeout``) or is closed by the broker
    (``ConnectionClosedByBroker``). With recovery (the default) such a loss is recovered: a
    wait for a reply that the loss cut off raises ``RecoveryInterrupted`` once the connection
    is back, a publish still waiting for its confirm raises ``RecoveryInterrupted`` at once,
    calls made while it recovers wait for the recovery, consumers go on, and if recovery
    gives up every wait ends with ``ConnectionRecoveryFailed``.
    """

    def __init__(
        self, services: AnyioServices, write_high_water: int = DEFAULT_WRITE_HIGH_WATER
    ) -> None:
        self._services = services
        self._checkpoint_if_cancelled = services.checkpoint_if_cancelled
        self._write_high_water = write_high_water
        # Spent by every publish; when it runs out, the publisher pauses (_publish_pause).
        self._credit = PUBLISH_CREDIT
        self._opened: Waiter[None] = Waiter()
        self._closed = Latch(services.wait)
        self._close_reason: BaseException | None = None
        self._reason_seen = False
        self._blocked_reason: str | None = None
        self._blocked_changed = anyio.Event()
        self._waiters: set[Waiter[Any]] = set()
        self._core: CoreConnection
        self._channels: dict[int, NativeChannel] = {}
        # Waits whose reply the last connection loss cut off: they fail once recovered.
        self._cut: list[Waiter[Any]] = []
        self._recovery_done = anyio.Event()
        self._recovery_done.set()
        self._recovery_listeners: list[RecoveryListener] = []

    def _start(self, parameters: list[Parameters] | None) -> None:
        self._core = CoreConnection(
            parameters,
            on_open_callback=lambda _conn: self._opened.set_result(None),
            on_open_error_callback=lambda _conn, error: self._opened.set_error(error),
            on_close_callback=self._on_core_close,
            io_services=self._services,
        )
        self._core.add_on_connection_blocked_callback(self._on_blocked)
        self._core.add_on_connection_unblocked_callback(self._on_unblocked)
        self._core.add_recovery_listener(self._on_recovery_event)

    def __repr__(self) -> str:
        return f"<NativeConnection {self._core!r}>"

    # ------------------------------------------------------------------ state

    @property
    def is_open(self) -> bool:
        """True while the connection is open."""
        return self._core.is_open

    @property
    def is_closed(self) -> bool:
        """True once the connection is closed."""
        return self._core.is_closed

    @property
    def close_reason(self) -> BaseException | None:
        """Why the connection closed, once it has (``ConnectionClosedByClient`` if we did)."""
        return self._close_reason

    @property
    def is_recovering(self) -> bool:
        """True from a connection loss until the connection and its topology are restored."""
        return self._core.is_recovering

    async def wait_recovered(self) -> None:
        """Wait while the connection recovers (returns at once if it is not recovering).

        Raises why the connection ended if recovery gave up (``ConnectionRecoveryFailed``).
        """
        await self._wait_recovered()
        self._raise_if_closed()

    def add_recovery_listener(self, callback: RecoveryListener) -> None:
        """Call ``callback(connection, event)`` for every event of :mod:`amqp_core.recovery`.

        ``ConnectionLost``, ``Recovering``, ``Recovered``, ``RecoveryFailed``,
        ``TopologyRecoveryFailed``, ``QueueRenamed``, ``StaleDeliveryTag`` and
        ``PublishesUnconfirmed``; nothing is reported without recovery.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, but got {callback!r}")
        self._recovery_listeners.append(callback)

    def remove_recovery_listener(self, callback: RecoveryListener) -> bool:
        """Forget a recovery listener; return whether it was registered."""
        if callback in self._recovery_listeners:
            self._recovery_listeners.remove(callback)
            return True
        return False

    @property
    def params(self) -> Parameters:
        """The parameters of the host that was connected."""
        return self._core.params

    @property
    def server_properties(self) -> FieldTable:
        """The broker's ``server-properties``."""
        return self._core.server_properties

    @property
    def is_blocked(self) -> bool:
        """True while the broker has blocked the connection (``Connection.Blocked``)."""
        return self._blocked_reason is not None

    @property
    def blocked_reason(self) -> str | None:
        """Why the broker blocked the connection, while it is blocked."""
        return self._blocked_reason

    async def wait_blocked(self) -> str:
        """Wait until the broker blocks the connection; return its reason."""
        while self._blocked_reason is None:
            await self._wait_changed()
        return self._blocked_reason

    async def wait_unblocked(self) -> None:
        """Wait until the broker unblocks the connection (returns at once if not blocked)."""
        while self._blocked_reason is not None:
            await self._wait_changed()

    async def _wait_changed(self) -> None:
        self._raise_if_closed()
        with self._services.expecting_input():
            await self._blocked_changed.wait()
        self._raise_if_closed()

    async def wait_closed(self) -> BaseException | None:
        """Wait until the connection is closed; return why."""
        await self._closed.wait()
        return self._close_reason

    # ------------------------------------------------------------------ commands

    async def channel(
        self, *, publisher_confirms: bool = False, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    ) -> NativeChannel:
        """Open a channel.

        Args:
            publisher_confirms: turn on publisher confirms (see
                :meth:`NativeChannel.confirm_delivery`).
            max_in_flight: how many confirmed publishes may wait for their confirm at a time.

        A task cancelled while the channel opens leaves no channel behind: it is closed as
        soon as the broker has opened it.
        """
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        await self._wait_recovered()
        self._raise_if_closed()
        opened: Waiter[Any] = Waiter()
        abandoned = False

        def on_open(core_channel: Any) -> None:
            if abandoned:
                core_channel.close()
            else:
                opened.set_result(None)

        core = self._core.channel(on_open_callback=on_open)
        channel = NativeChannel(self, core, max_in_flight)
        self._channels[core.channel_number] = channel
        try:
            await channel._wait(opened)
            if publisher_confirms:
                await channel.confirm_delivery()
        except BaseException:
            abandoned = True
            if core.is_open:
                core.close()
            raise
        return channel

    async def update_secret(self, new_secret: str, reason: str) -> None:
        """Send a new secret (e.g. a refreshed OAuth 2 token) and wait for the broker's OK."""
        await self._wait_recovered()
        self._raise_if_closed()
        waiter: Waiter[frame.Method] = Waiter()
        self._core.update_secret(new_secret, reason, callback=waiter.set_result)
        await self._wait(waiter)

    async def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close the channels, then the connection, and wait until it is closed.

        Closing a closed connection does nothing.
        """
        core = self._core
        if not (core.is_closed or core.is_closing):
            # While recovering, this stops the retries.
            core.close(reply_code, reply_text)
        self._core.flush()
        await self._closed.wait()

    # ------------------------------------------------------------------ plumbing

    def _seen(self, error: BaseException) -> None:
        # The connection's error reached a task: leaving ``async with`` need not raise it.
        if error is self._close_reason:
            self._reason_seen = True

    def _raise_if_closed(self) -> None:
        reason = self._close_reason
        if reason is not None:
            self._reason_seen = True
            raise reason
        if not self._core.is_open:
            raise ConnectionWrongStateError(f"the connection is not open ({self._core!r})")

    async def _wait_recovered(self) -> None:
        """Wait while the connection recovers (no checkpoint when it does not)."""
        while self._core.is_recovering and self._close_reason is None:
            with self._services.expecting_input():
                await self._recovery_done.wait()

    async def _publish_pause(self) -> None:
        """Let the loop run; then wait while the broker blocks us or the output is too big.

        Publishers come here once their shared credit is spent, or at once while the
        connection is blocked: memory stays bounded by the high-water mark (plus the
        messages published since the last pause) however fast the application publishes.
        A connection that stays blocked longer than ``blocked_connection_timeout`` is
        closed by amqp_core, and the wait raises ``ConnectionBlockedTimeout``.
        """
        self._credit = PUBLISH_CREDIT
        await self._services.checkpoint()
        core = self._core
        while True:
            if self._blocked_reason is not None:
                await self._wait_changed()
            elif core.is_open and core.outbound_buffer_size > self._write_high_water:
                await self._services.wait_sent()
            else:
                return

    async def _wait(self, waiter: Waiter[Any]) -> Any:
        self._waiters.add(waiter)
        # The request leaves now, not on the loop's next round: its reply is awaited.
        self._core.flush()
        try:
            return await self._services.wait(waiter)
        except BaseException as error:
            self._seen(error)
            raise
        finally:
            self._waiters.discard(waiter)

    def _on_core_close(self, _core: CoreConnection, reason: BaseException) -> None:
        self._close_reason = reason
        for waiter in list(self._waiters):
            waiter.set_error(reason)
        for waiter in self._cut:
            waiter.set_error(reason)
        self._cut.clear()
        self._blocked_changed.set()
        self._recovery_done.set()
        self._closed.set()

    def _on_recovery_event(self, _core: CoreConnection, event: RecoveryEvent) -> None:
        if isinstance(event, ConnectionLost):
            # The replies these waits expect died with the connection.
            self._cut.extend(self._waiters)
            for lost in self._channels.values():
                self._cut.extend(lost._waiters)
                lost._connection_lost()
            if self._recovery_done.is_set():
                self._recovery_done = anyio.Event()
            if self._blocked_reason is not None:
                # The new connection starts unblocked.
                self._blocked_reason = None
                self._blocked_changed.set()
                self._blocked_changed = anyio.Event()
        elif isinstance(event, PublishesUnconfirmed):
            unconfirmed = self._channels.get(event.channel_number)
            if unconfirmed is not None:
                # Before the core reports them nacked: a clearer error than NackError.
                unconfirmed._publishes_unconfirmed(event.reason)
        elif isinstance(event, Recovered):
            cut, self._cut = self._cut, []
            for waiter in cut:
                waiter.set_error(
                    RecoveryInterrupted(
                        "the connection was lost while waiting for the broker's reply; it "
                        "has been recovered, but the request may or may not have taken effect"
                    )
                )
            self._recovery_done.set()
        for listener in list(self._recovery_listeners):
            listener(self, event)

    def _on_blocked(self, _core: CoreConnection, method: frame.Method) -> None:
        self._blocked_reason = blocked_reason(method)
        self._blocked_changed.set()
        self._blocked_changed = anyio.Event()

    def _on_unblocked(self, _core: CoreConnection, _method: frame.Method) -> None:
        self._blocked_reason = None
        self._blocked_changed.set()
        self._blocked_changed = anyio.Event()

    async def _shutdown(self, timeout: float) -> None:
        """Close in order if still open, within ``timeout``; the task group ends the rest."""
        core = self._core
        with anyio.move_on_after(timeout):
            if core.is_open or (core.is_recovering and not core.is_closing):
                core.close()
            if core.is_open or core.is_closing:
                core.flush()
                await self._closed.wait()

    def _unseen_error(self) -> BaseException | None:
        reason = self._close_reason
        if reason is None or self._reason_seen or isinstance(reason, ConnectionClosedByClient):
            return None
        return reason


class ConnectionContext:
    """``async with connect(...) as connection``: opens on entry, closes on exit.

    On exit the connection is closed in order (channels first) within ``close_timeout``
    seconds, even when the block was cancelled, and its tasks end. If the connection ended
    with an error that no task has seen (no wait raised it) and the block itself did not
    raise, the error is raised on exit, so that it is never lost.
    """

    def __init__(
        self,
        parameters: list[Parameters],
        close_timeout: float,
        write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
    ) -> None:
        self._parameters = parameters
        self._close_timeout = close_timeout
        self._write_high_water = write_high_water
        self._tg: anyio.abc.TaskGroup | None = None
        self._connection: NativeConnection | None = None

    async def __aenter__(self) -> NativeConnection:
        if self._tg is not None:
            raise RuntimeError("this connect() context was already entered")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        try:
            services = AnyioServices(tg)
            tg.start_soon(services.run)
            connection = NativeConnection(services, self._write_high_water)
            connection._start(self._parameters)
            self._connection = connection
            await connection._wait(connection._opened)
        except BaseException:
            core = getattr(self._connection, "_core", None)
            if core is not None and not (core.is_closed or core.is_closing):
                core.close()
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            raise
        return connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg, connection = self._tg, self._connection
        assert tg is not None
        assert connection is not None
        try:
            with anyio.CancelScope(shield=True):
                await connection._shutdown(self._close_timeout)
        finally:
            tg.cancel_scope.cancel()
            suppressed = await tg.__aexit__(exc_type, exc, tb)
        if exc is None:
            error = connection._unseen_error()
            if error is not None:
                raise error
        return suppressed


def connect(
    parameters: ParametersLike | Sequence[ParametersLike] | None = None,
    *,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    recovery: RecoveryPolicy | _Default | None = DEFAULT_RECOVERY,
    write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
) -> ConnectionContext:
    """Open a connection to RabbitMQ for the duration of an ``async with`` block.

    Args:
        parameters: an ``amqp://``/``amqps://`` URL, a
            :class:`~amqp_core.parameters.ConnectionParameters` /
            :class:`~amqp_core.parameters.URLParameters`, or a sequence of them: the hosts
            are tried in order, each ``connection_attempts`` times (pika's rules). None
            means ``amqp://guest:guest@localhost:5672/``.
        close_timeout: how long leaving the block waits for an orderly close.
        recovery: the automatic recovery policy (:class:`~amqp_core.recovery.RecoveryPolicy`,
            see ``docs/recovery.md``). By default recovery is on: the parameters' own policy
            if the first one carries one, else ``RecoveryPolicy()``. ``None`` turns it off:
            a lost connection then ends the block's waits with its error.
        write_high_water: the bound on unsent output, in bytes: while more than this waits
            to be sent (a slow network, or a broker that stopped reading), ``basic_publish``
            waits for the socket to take it. ``basic_publish`` also waits while the broker
            has blocked the connection (``Connection.Blocked``).

    Entering the block raises what made the connection fail (``AMQPConnectionError`` for
    TCP or TLS failures with the cause in the message, ``ProbableAuthenticationError`` ...).
    """
    if write_high_water < 0:
        raise ValueError(f"write_high_water must be >= 0, got {write_high_water}")
    return ConnectionContext(_parameters(parameters, recovery), close_timeout, write_high_water)
