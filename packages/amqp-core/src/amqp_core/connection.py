"""The callback-style ``Connection`` (pika's ``pika.connection``), over the engine and an adapter.

:class:`Connection` is the base class of every callback-style adapter (``SelectConnection``,
``AsyncioConnection`` ...). An adapter subclass builds an :class:`~amqp_core.transport.IOServices`
for its loop and passes it to ``Connection.__init__``; everything else (the connection
workflow, the handshake, heartbeats, channels, close reasons) happens here and in the engine.

This module also hosts pika's parameter classes, so ``amqp_core.connection.ConnectionParameters``
works like ``pika.connection.ConnectionParameters``.

Exceptions raised by user callbacks are not caught: they propagate out of the adapter's loop
iteration (out of ``ioloop.start()``), as in pika. Events not yet dispatched when that happens
are dispatched on the next loop iteration, so the connection stays consistent.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from amqp_core import events as ev
from amqp_core import frame, spec
from amqp_core._topology import Topology
from amqp_core._types import Buffer
from amqp_core._workflow import ConnectionWorkflow
from amqp_core.data import FieldTable, FieldValue
from amqp_core.engine import Engine
from amqp_core.events import NEED_DATA
from amqp_core.exceptions import (
    AMQPConnectionError,
    AMQPConnectionWorkflowAborted,
    AMQPConnectionWorkflowFailed,
    AMQPConnectorAMQPHandshakeError,
    AMQPConnectorPhaseErrorBase,
    AMQPConnectorSocketConnectError,
    AMQPConnectorStackTimeout,
    AMQPConnectorTransportSetupError,
    AMQPHeartbeatTimeout,
    ConnectionBlockedTimeout,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionOpenAborted,
    ConnectionWrongStateError,
    OutputBufferFullError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    StreamLostError,
)
from amqp_core.parameters import (
    ConnectionParameters,
    Parameters,
    SSLOptions,
    URLParameters,
)
from amqp_core.recovery import Recovered, Recovery, RecoveryListener, is_recoverable
from amqp_core.transport import (
    AddressInfo,
    Cancellable,
    IOServices,
    StreamListener,
    StreamSettings,
    Transport,
)

if TYPE_CHECKING:
    from amqp_core.channel import Channel

__all__ = (
    "PRODUCT",
    "Connection",
    "ConnectionParameters",
    "Parameters",
    "SSLOptions",
    "URLParameters",
)

from amqp_core.config import PRODUCT

#: Above this many bytes waiting in the transport, output stays in the engine until the
#: transport reports ``write_drained`` (the adapter's low-water mark).
WRITE_HIGH_WATER: Final = 4 * 1024 * 1024
#: Seconds the transport gets to send our Close-Ok after the broker closed the connection.
CLOSE_GRACE: Final = 2.0
# The unsent-output limit when there is none (max_unsent_bytes None or 0): never reached.
_UNBOUNDED: Final = 1 << 62
# While dispatching a long run of events, write what they produced every this many events.
_FLUSH_EVERY: Final = 64
# Small output pieces (a published message each) are joined into writes of about this size: an
# adapter's write has a fixed cost (a syscall, a future, a loop callback) far above a copy.
_JOIN_LIMIT: Final = 128 * 1024
# The engine is handed a read in slices of at most this many bytes. It decodes every complete
# message it is given before the first is dispatched: a 64 KiB read of small deliveries is
# about 500 of them, some 250 KiB of objects alive at once; a slice of 8 KiB is a few dozen.
_FEED_SIZE: Final = 8 * 1024

OnOpen = Callable[["Connection"], None]
OnError = Callable[["Connection", BaseException], None]
OnBlocked = Callable[["Connection", frame.Method], None]
OnDrained = Callable[["Connection"], None]


def _is_tls_error(error: BaseException) -> bool:
    # ssl.SSLError is an OSError; tell the TLS phase apart without importing ssl here.
    return any(cls.__module__ in ("ssl", "_ssl") for cls in type(error).__mro__)


class _Stream:
    """The listener of one stream: forwards to the connection while it is the current one."""

    __slots__ = ("active", "connection", "op", "transport")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.active = True
        self.transport: Transport | None = None
        self.op: Cancellable | None = None

    def data_received(self, data: bytes) -> None:
        if self.active:
            self.connection._on_data(data)

    def write_drained(self) -> None:
        if self.active:
            self.connection._flush()

    def connection_lost(self, error: BaseException | None) -> None:
        if self.active:
            self.connection._on_stream_lost(error)


class _Attempt:
    """One address being connected: TCP (+TLS), then the AMQP handshake."""

    def __init__(
        self,
        connection: Connection,
        params: Parameters,
        address: AddressInfo,
        on_done: Callable[[BaseException | None], None],
    ) -> None:
        self.connection = connection
        self.params = params
        self.address = address
        self.on_done = on_done
        self.stream = _Stream(connection)

    def where(self) -> str:
        return f"{self.params.host}:{self.params.port} ({self.address.sockaddr[0]})"

    def abort(self) -> None:
        stream = self.stream
        stream.active = False
        if stream.op is not None:
            stream.op.cancel()
        if stream.transport is not None:
            stream.transport.abort()
        self.connection._attempt_aborted(self)


class _ExternalStream:
    """Stands in for the connection workflow when the adapter brings its own stream."""

    __slots__ = ("attached", "connection", "done")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.attached = False
        self.done = False

    def on_attempt_done(self, error: BaseException | None) -> None:
        if self.done:
            return
        self.done = True
        if error is not None:
            self.connection._on_workflow_done(AMQPConnectionWorkflowFailed([error]))

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        attempt = self.connection._attempt
        if attempt is not None:
            attempt.abort()
        self.connection._on_workflow_done(
            AMQPConnectionWorkflowAborted("closed before the AMQP handshake completed")
        )


class Connection:
    """An AMQP connection driven by callbacks (pika's ``pika.connection.Connection``).

    Not used directly: an adapter subclass passes its loop's ``io_services``. Creating the
    connection schedules the connection workflow on the loop; ``on_open_callback`` runs once
    the AMQP handshake completes.

    Args:
        parameters: one :class:`Parameters`, a sequence of them (tried in order), or None
            for the defaults.
        on_open_callback: ``cb(connection)`` once the connection is open.
        on_open_error_callback: ``cb(connection, error)`` if it could not be opened; the
            default raises ``error`` out of the loop.
        on_close_callback: ``cb(connection, reason)`` once an open connection is closed.
        io_services: the adapter's loop services (keyword only).
        external_stream: the adapter connects the byte stream itself (Twisted's protocols
            are handed theirs by the reactor) and gives it to :meth:`attach_stream`; no
            connection workflow runs, so the host, port, TLS and retry settings of
            ``parameters`` are not used for the first connection (keyword only). With a
            ``RecoveryPolicy``, the reconnections are the core's: they go to the hosts of
            ``parameters`` through ``io_services.getaddrinfo`` and ``connect_stream``.

    Raises:
        ValueError: ``parameters`` is an empty sequence.
        TypeError: ``parameters`` holds something other than :class:`Parameters`.
    """

    CONNECTION_CLOSED: ClassVar[int] = 0
    CONNECTION_INIT: ClassVar[int] = 1
    CONNECTION_PROTOCOL: ClassVar[int] = 2
    CONNECTION_START: ClassVar[int] = 3
    CONNECTION_TUNE: ClassVar[int] = 4
    CONNECTION_OPEN: ClassVar[int] = 5
    CONNECTION_CLOSING: ClassVar[int] = 6

    def __init__(
        self,
        parameters: Parameters | Sequence[Parameters] | None = None,
        on_open_callback: OnOpen | None = None,
        on_open_error_callback: OnError | None = None,
        on_close_callback: OnError | None = None,
        *,
        io_services: IOServices,
        external_stream: bool = False,
    ) -> None:
        if parameters is None:
            configs: list[Parameters] = [ConnectionParameters()]
        elif isinstance(parameters, Parameters):
            configs = [parameters]
        else:
            configs = list(parameters)
            if not configs:
                raise ValueError("parameters must not be an empty sequence")
        for config in configs:
            if not isinstance(config, Parameters):
                raise TypeError(f"parameters must be Parameters instances, not {config!r}")
        self._io = io_services
        # Deep copies, as pika: later changes to the caller's objects do not leak in.
        self._configs = [copy.deepcopy(config) for config in configs]
        self.params: Parameters = self._configs[0]
        self.connection_state = self.CONNECTION_INIT
        self.server_properties: FieldTable = {}
        self._engine: Engine | None = None
        self._stream: _Stream | None = None
        self._attempt: _Attempt | None = None
        self._tuned = False
        self._opened = False
        self._channels: dict[int, Channel] = {}
        self._on_open: list[OnOpen] = []
        self._on_open_error: list[OnError] = []
        self._on_close: list[OnError] = []
        self._on_blocked: list[OnBlocked] = []
        self._on_unblocked: list[OnBlocked] = []
        self._on_drained: list[OnDrained] = []
        # Bounded output (max_unsent_bytes). basic_publish adds each message's estimated size
        # to _unsent (the transport only ever sends, so it does not go down by itself), and
        # measures exactly only when that passes _unsent_limit: halfway from the last exact
        # figure to the limit (so an estimate short by up to half never lets the output pass
        # the limit unmeasured), or -1 while the output is full. One comparison covers both.
        self._max_unsent = _UNBOUNDED
        self._unsent = 0
        self._unsent_limit = _UNBOUNDED // 2
        self._output_full = False
        # Output taken from the engine but not yet given to the transport, which gets at most
        # WRITE_HIGH_WATER more at a time (what it holds costs more than the pieces here).
        self._backlog: deque[Buffer] = deque()
        self._backlog_bytes = 0
        # The stream was lost while the output was full: resume publishers once recovered.
        self._drain_owed = False
        self._update_secret_callbacks: list[Callable[[frame.Method], None] | None] = []
        if on_open_callback is not None:
            self.add_on_open_callback(on_open_callback)
        if on_open_error_callback is not None:
            self._on_open_error.append(on_open_error_callback)
        else:
            self._on_open_error.append(self._default_on_open_error)
        if on_close_callback is not None:
            self.add_on_close_callback(on_close_callback)
        self._timer: Cancellable | None = None
        self._timer_at: float | None = None
        self._blocked_timer: Cancellable | None = None
        self._close_grace: Cancellable | None = None
        self._flush_pending: Cancellable | None = None
        self._dispatching = False
        self._resume_pending = False
        self._pending_close: tuple[int, str] | None = None
        self._teardown_reason: BaseException | None = None
        self._close_reason: BaseException | None = None
        self._lost_error: BaseException | None = None
        # Recovery (opt-in, amqp_core.recovery). With an adapter-made first stream, the
        # reconnections still go through io_services.connect_stream: the core picks the host.
        policy = self._configs[0].recovery
        self._recovery: Recovery | None = None
        self._topology: Topology | None = None
        if policy is not None:
            self._recovery = Recovery(self, policy)
            self._recovery.listeners.append(self._after_recovery)
            if policy.topology:
                self._topology = Topology()
        self._workflow: ConnectionWorkflow | _ExternalStream
        if external_stream:
            self._workflow = _ExternalStream(self)
        else:
            self._workflow = ConnectionWorkflow(
                io_services, self._configs, self._start_attempt, self._on_workflow_done
            )
            self._io.call_later(0, self._workflow.start)

    def __repr__(self) -> str:
        state = {
            0: "CLOSED",
            1: "INIT",
            2: "PROTOCOL",
            3: "START",
            4: "TUNE",
            5: "OPEN",
            6: "CLOSING",
        }[self.connection_state]
        params = self.params
        return f"<{self.__class__.__name__} {state} host={params.host} port={params.port}>"

    # ------------------------------------------------------------------ callbacks registry

    def add_on_close_callback(self, callback: OnError) -> None:
        """Call ``callback(connection, reason)`` when the open connection is closed.

        ``reason`` is ``ConnectionClosedByBroker``, ``ConnectionClosedByClient``,
        ``StreamLostError``, ``AMQPHeartbeatTimeout``, ``ConnectionBlockedTimeout`` ...
        """
        self._on_close.append(self._require_callable(callback))

    def remove_on_close_callback(self, callback: OnError) -> bool:
        """Forget a close callback; return whether it was registered."""
        return self._remove(self._on_close, callback)

    def add_on_open_callback(self, callback: OnOpen) -> None:
        """Call ``callback(connection)`` when the connection opens."""
        self._on_open.append(self._require_callable(callback))

    def remove_on_open_callback(self, callback: OnOpen) -> bool:
        """Forget an open callback; return whether it was registered."""
        return self._remove(self._on_open, callback)

    def add_on_open_error_callback(self, callback: OnError, remove_default: bool = True) -> None:
        """Call ``callback(connection, error)`` if the connection cannot be opened.

        Args:
            callback: the callback.
            remove_default: drop the default callback (which raises the error).
        """
        self._require_callable(callback)
        if remove_default:
            self._remove(self._on_open_error, self._default_on_open_error)
        self._on_open_error.append(callback)

    def remove_on_open_error_callback(self, callback: OnError) -> bool:
        """Forget an open-error callback; return whether it was registered."""
        return self._remove(self._on_open_error, callback)

    def add_on_connection_blocked_callback(self, callback: OnBlocked) -> None:
        """Call ``callback(connection, frame.Method[Connection.Blocked])`` when blocked.

        RabbitMQ blocks publishing connections when it runs low on memory or disk.
        """
        self._on_blocked.append(self._require_callable(callback))

    def remove_on_connection_blocked_callback(self, callback: OnBlocked) -> bool:
        """Forget a blocked callback; return whether it was registered."""
        return self._remove(self._on_blocked, callback)

    def add_on_connection_unblocked_callback(self, callback: OnBlocked) -> None:
        """Call ``callback(connection, frame.Method[Connection.Unblocked])`` when unblocked."""
        self._on_unblocked.append(self._require_callable(callback))

    def remove_on_connection_unblocked_callback(self, callback: OnBlocked) -> bool:
        """Forget an unblocked callback; return whether it was registered."""
        return self._remove(self._on_unblocked, callback)

    def add_on_output_drained_callback(self, callback: OnDrained) -> None:
        """Call ``callback(connection)`` when publishing may resume after a refusal.

        Beyond pika. Once ``basic_publish`` has raised
        :class:`~amqp_core.exceptions.OutputBufferFullError`, every publish on the connection
        is refused until the unsent output falls to half of ``max_unsent_bytes``; then these
        callbacks run (from the loop, once per refusal episode). They also run when a
        recovered connection replaces one that was full.
        """
        self._on_drained.append(self._require_callable(callback))

    def remove_on_output_drained_callback(self, callback: OnDrained) -> bool:
        """Forget an output-drained callback; return whether it was registered."""
        return self._remove(self._on_drained, callback)

    def add_recovery_listener(self, callback: RecoveryListener) -> None:
        """Call ``callback(connection, event)`` for every recovery event.

        Events are the classes of :mod:`amqp_core.recovery`: ``ConnectionLost``,
        ``Recovering``, ``Recovered``, ``RecoveryFailed``, ``TopologyRecoveryFailed``,
        ``QueueRenamed``, ``StaleDeliveryTag`` and ``PublishesUnconfirmed``. Only a connection
        whose parameters carry a ``RecoveryPolicy`` recovers (and reports them).
        """
        self._require_callable(callback)
        if self._recovery is not None:
            self._recovery.listeners.append(callback)

    def remove_recovery_listener(self, callback: RecoveryListener) -> bool:
        """Forget a recovery listener; return whether it was registered."""
        if self._recovery is None:
            return False
        return self._remove(self._recovery.listeners, callback)

    @staticmethod
    def check_workflow_option(internal_connection_workflow: bool) -> None:
        """Refuse pika's ``internal_connection_workflow=False``, for adapter constructors.

        Adapters take the argument for pika's signature and call this before building their
        loop services. amqp_core always runs its own workflow (hosts, attempts, retry delay,
        timeouts); several hosts are given as a sequence of parameters.

        Raises:
            NotImplementedError: ``internal_connection_workflow`` is False.
        """
        if not internal_connection_workflow:
            raise NotImplementedError(
                "internal_connection_workflow=False is not supported: pass several "
                "parameters instead, and the connection tries them in order"
            )

    @staticmethod
    def _require_callable(callback: Any) -> Any:
        if not callable(callback):
            raise TypeError(f"callback must be callable, but got {callback!r}")
        return callback

    @staticmethod
    def _remove(callbacks: list[Any], callback: object) -> bool:
        if callback in callbacks:
            callbacks.remove(callback)
            return True
        return False

    @staticmethod
    def _default_on_open_error(connection: Connection, error: BaseException) -> None:
        # Nobody asked to hear about it: raise it out of the loop rather than lose it.
        raise error

    # ------------------------------------------------------------------ public API

    @property
    def is_open(self) -> bool:
        """True once the handshake completed and until a close starts."""
        return self.connection_state == self.CONNECTION_OPEN

    @property
    def is_closing(self) -> bool:
        """True while the connection is closing."""
        return self.connection_state == self.CONNECTION_CLOSING

    @property
    def is_closed(self) -> bool:
        """True when closed (or never opened, after the workflow failed)."""
        return self.connection_state == self.CONNECTION_CLOSED

    @property
    def is_recovering(self) -> bool:
        """True from a loss until the connection and its topology are restored (or given up)."""
        return self._recovery is not None and self._recovery.active

    @property
    def server_capabilities(self) -> dict[str, FieldValue]:
        """The ``capabilities`` table of the broker's ``server-properties``."""
        caps = self.server_properties.get("capabilities")
        return dict(caps) if isinstance(caps, dict) else {}

    @property
    def basic_nack(self) -> bool:
        """Whether the broker supports ``Basic.Nack``."""
        return bool(self.server_capabilities.get("basic.nack"))

    @property
    def consumer_cancel_notify(self) -> bool:
        """Whether the broker cancels consumers with ``Basic.Cancel``."""
        return bool(self.server_capabilities.get("consumer_cancel_notify"))

    @property
    def exchange_exchange_bindings(self) -> bool:
        """Whether the broker supports exchange-to-exchange bindings."""
        return bool(self.server_capabilities.get("exchange_exchange_bindings"))

    @property
    def publisher_confirms(self) -> bool:
        """Whether the broker supports publisher confirms."""
        return bool(self.server_capabilities.get("publisher_confirms"))

    @property
    def outbound_buffer_size(self) -> int:
        """Bytes written but not yet handed to the OS (engine and transport together).

        Publishers can watch it to slow down while the network or the broker is slow.
        """
        size = self._engine.bytes_to_send if self._engine is not None else 0
        size += self._backlog_bytes
        stream = self._stream
        if stream is not None and stream.transport is not None:
            size += stream.transport.write_buffer_size()
        return size

    def channel(
        self,
        channel_number: int | None = None,
        on_open_callback: Callable[[Channel], None] | None = None,
    ) -> Channel:
        """Open a channel; ``on_open_callback(channel)`` runs once the broker confirms it.

        Args:
            channel_number: the number to use; by default the lowest free one.
            on_open_callback: called with the channel when it is open.

        Returns:
            The channel (still opening).

        Raises:
            ConnectionWrongStateError: the connection is not open.
            NoFreeChannels: every number up to the negotiated channel_max is in use.
            InvalidChannelNumber: ``channel_number`` is outside 1..channel_max.
        """
        from amqp_core.channel import Channel

        engine = self._require_open("channel")
        if on_open_callback is not None:
            self._require_callable(on_open_callback)
        number = engine.open_channel(channel_number)
        channel = Channel(self, number, on_open_callback)
        self._channels[number] = channel
        self._schedule_flush()
        return channel

    def flush(self) -> None:
        """Hand the output of the calls made so far to the transport now.

        Beyond pika. Commands are normally written on the next loop iteration, so that those
        given together (a burst of publishes) leave in one write. A caller about to wait for
        a reply (the native async API does, before each wait) calls this to save that
        iteration. Inside the connection's own callbacks it does nothing: their output is
        written as soon as they return. Without a stream it does nothing either.
        """
        pending = self._flush_pending
        if pending is None or self._dispatching:
            # Every call that queues output outside a dispatch schedules its write, so nothing
            # is waiting (or the dispatch writes it): cheap enough to call before every wait.
            return
        self._flush_pending = None
        pending.cancel()
        self._flush()

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close the connection: its channels first (cancelling their consumers), then itself.

        While the connection is still opening, the workflow is aborted and the open-error
        callback gets ``ConnectionOpenAborted``.

        Raises:
            ConnectionWrongStateError: the connection is closing or closed.
        """
        if self.is_closing or self.is_closed:
            raise ConnectionWrongStateError(
                f"Illegal close({reply_code}, {reply_text!r}) request on {self!r} because it "
                "was called while connection state="
                f"{'CLOSING' if self.is_closing else 'CLOSED'}"
            )
        recovery = self._recovery
        if recovery is not None and recovery.active and not self._opened:
            # Between connections: nothing to close on the wire, just stop retrying.
            recovery.abort(ConnectionClosedByClient(reply_code, reply_text))
            return
        if not self._opened:
            self.connection_state = self.CONNECTION_CLOSED
            self._workflow.abort()
            return
        self.connection_state = self.CONNECTION_CLOSING
        self._pending_close = (reply_code, reply_text)
        for channel in list(self._channels.values()):
            if channel.is_open or channel.is_opening:
                channel._close_for_connection(reply_code, reply_text)
        self._close_if_channels_closed()

    def update_secret(
        self,
        new_secret: str,
        reason: str,
        callback: Callable[[frame.Method], None] | None = None,
    ) -> None:
        """Send a new secret (RabbitMQ's ``Connection.Update-Secret``, e.g. a fresh OAuth token).

        Args:
            new_secret: the new secret; never shown in a repr or error.
            reason: why, for the broker's log.
            callback: ``cb(frame.Method[Connection.UpdateSecretOk])`` when the broker accepts it.

        Raises:
            ConnectionWrongStateError: the connection is not open.
        """
        if callback is not None:
            self._require_callable(callback)
        engine = self._require_open("update_secret")
        engine.update_secret(new_secret, reason)
        self._update_secret_callbacks.append(callback)
        self._schedule_flush()

    def attach_stream(self, transport: Transport) -> StreamListener:
        """Run the AMQP handshake over a stream the adapter has already connected.

        Only for a connection made with ``external_stream=True``, once. The open callbacks
        follow as for any connection; if the handshake fails (or the stream ends first), the
        open-error callbacks get the reason.

        Args:
            transport: the connected stream (TLS already set up, if any).

        Returns:
            The listener the adapter feeds with what the stream receives.

        Raises:
            ConnectionWrongStateError: the connection does not take an external stream, already
                has one, or was closed before it came.
        """
        external = self._workflow
        if not isinstance(external, _ExternalStream) or external.attached or self.is_closed:
            raise ConnectionWrongStateError(f"can't attach a stream to {self!r}")
        external.attached = True
        params = self._configs[0]
        address = AddressInfo(0, 0, 0, (params.host, params.port))
        attempt = _Attempt(self, params, address, external.on_attempt_done)
        self._attempt = attempt
        self._on_stream_connected(attempt, transport)
        return attempt.stream

    # ------------------------------------------------------------------ workflow

    def _start_attempt(
        self,
        params: Parameters,
        address: AddressInfo,
        on_done: Callable[[BaseException | None], None],
    ) -> _Attempt:
        attempt = _Attempt(self, params, address, on_done)
        self._attempt = attempt
        self.params = params
        self.connection_state = self.CONNECTION_INIT
        ssl_options = params.ssl_options
        settings = StreamSettings(
            address=address,
            host=params.host,
            connect_timeout=params.socket_timeout,
            tcp_options=params.tcp_options,
            ssl_context=ssl_options.context if ssl_options is not None else None,
            server_hostname=ssl_options.server_hostname if ssl_options is not None else None,
        )
        stream = attempt.stream
        stream.op = self._io.connect_stream(
            settings, stream, lambda result: self._on_stream_connected(attempt, result)
        )
        return attempt

    def _on_stream_connected(self, attempt: _Attempt, result: Transport | BaseException) -> None:
        stream = attempt.stream
        stream.op = None
        if not stream.active:
            if not isinstance(result, BaseException):
                result.abort()
            return
        if isinstance(result, BaseException):
            stream.active = False
            self._attempt = None
            if attempt.params.ssl_options is not None and _is_tls_error(result):
                error: BaseException = AMQPConnectorTransportSetupError(
                    result, f"{attempt.where()}: TLS phase failed"
                )
            else:
                error = AMQPConnectorSocketConnectError(
                    result, f"{attempt.where()}: TCP phase failed"
                )
            attempt.on_done(error)
            return
        stream.transport = result
        self._stream = stream
        self._tuned = False
        self._engine = Engine(attempt.params.engine_config(self))
        self._max_unsent = attempt.params.max_unsent_bytes or _UNBOUNDED
        self._set_room(0)
        if self._output_full:
            # What was unsent went with the lost stream.
            self._output_full = False
            self._drain_owed = True
        self.connection_state = self.CONNECTION_PROTOCOL
        self._flush()

    def _attempt_aborted(self, attempt: _Attempt) -> None:
        if self._attempt is attempt:
            self._attempt = None
            self._drop_stream()

    def _drop_stream(self) -> None:
        self._stream = None
        self._engine = None
        self._backlog.clear()
        self._backlog_bytes = 0
        self._cancel_timer()
        if self._flush_pending is not None:
            self._flush_pending.cancel()
            self._flush_pending = None

    def _handshake_failed(self, reason: BaseException) -> None:
        attempt = self._attempt
        assert attempt is not None
        self._attempt = None
        stream = attempt.stream
        if stream.active:
            stream.active = False
            self._flush(force=True)
            if stream.transport is not None:
                stream.transport.close()
        self._drop_stream()
        self.connection_state = self.CONNECTION_INIT
        if isinstance(reason, ConnectionClosedByBroker):
            # RabbitMQ refuses a login or a virtual host with Connection.Close during the
            # handshake; name the probable cause as pika does.
            probable = ProbableAccessDeniedError if self._tuned else ProbableAuthenticationError
            closed = reason
            reason = probable(repr(reason))
            reason.__cause__ = closed  # its reply code tells recovery whether to retry
        attempt.on_done(
            AMQPConnectorAMQPHandshakeError(reason, f"{attempt.where()}: AMQP handshake failed")
        )

    def _on_workflow_done(self, result: Parameters | BaseException) -> None:
        if isinstance(result, Parameters):
            return
        self.connection_state = self.CONNECTION_CLOSED
        error = self._open_error(result)
        for callback in list(self._on_open_error):
            callback(self, error)

    def _open_error(self, result: BaseException) -> BaseException:
        params = self.params
        if isinstance(result, AMQPConnectionWorkflowAborted):
            error: BaseException = ConnectionOpenAborted(
                f"{params.host}:{params.port}: the client closed the connection while it was "
                "being opened"
            )
        else:
            assert isinstance(result, AMQPConnectionWorkflowFailed)
            last = result.exceptions[-1]
            if isinstance(last, AMQPConnectorAMQPHandshakeError):
                # pika gives the AMQP error itself (ProbableAuthenticationError ...).
                error = last.exception
            elif isinstance(last, AMQPConnectorPhaseErrorBase):
                error = AMQPConnectionError(f"{last.args[1]}: {last.exception!r}")
            else:
                assert isinstance(last, AMQPConnectorStackTimeout)
                error = AMQPConnectionError(str(last))
            error.__cause__ = result
        if isinstance(error, AMQPConnectionError):
            error.host = params.host
            error.port = params.port
        return error

    # ------------------------------------------------------------------ stream events

    def _on_data(self, data: bytes) -> None:
        engine = self._engine
        assert engine is not None
        now = self._io.now()
        if len(data) <= _FEED_SIZE:
            engine.receive_data(data, now)
            self._process()
            return
        view = memoryview(data)
        for start in range(0, len(view), _FEED_SIZE):
            engine.receive_data(view[start : start + _FEED_SIZE], now)
            self._process()
            if self._engine is not engine:
                return  # the stream was let go while dispatching: the rest is not for us

    def _on_stream_lost(self, error: BaseException | None) -> None:
        if self._close_grace is not None:
            self._close_grace.cancel()
            self._close_grace = None
        stream = self._stream
        assert stream is not None
        stream.active = False
        stream.transport = None
        engine = self._engine
        assert engine is not None
        self._lost_error = error
        engine.receive_data(b"", self._io.now())
        self._process()
        if self._close_reason is not None:
            self._finish_close()

    # ------------------------------------------------------------------ event dispatch

    def _process(self) -> None:
        """Dispatch every pending engine event, then write what the engine queued."""
        if self._dispatching:
            return
        self._dispatching = True
        dispatched = 0
        try:
            while (engine := self._engine) is not None:
                event = engine.next_event()
                if event is NEED_DATA:
                    break
                self._dispatch(event)
                dispatched += 1
                if dispatched % _FLUSH_EVERY == 0:
                    # One read can hold a whole prefetch window of deliveries: send the acks
                    # given so far now, so that the broker refills the window while we work.
                    self._flush()
        except BaseException:
            # A user callback raised: let it out (pika's behaviour), and pick up the events
            # still queued on the next loop iteration.
            if not self._resume_pending and self._engine is not None:
                self._resume_pending = True
                self._io.call_later(0, self._resume)
            raise
        finally:
            self._dispatching = False
            self._flush()

    def _resume(self) -> None:
        self._resume_pending = False
        self._process()

    def _dispatch(self, event: object) -> None:
        kind = type(event)
        if kind is ev.MessageDelivered:
            assert isinstance(event, ev.MessageDelivered)
            self._channel_for(event.channel_id)._on_deliver(event)
        elif kind is ev.MethodReceived:
            assert isinstance(event, ev.MethodReceived)
            if event.channel_id == 0:
                self._on_update_secret_ok(event.method)
            else:
                self._channel_for(event.channel_id)._on_method(event.method)
        elif kind in _CHANNEL_EVENTS:
            channel = self._channel_for(event.channel_id)  # type: ignore[attr-defined]
            getattr(channel, _CHANNEL_EVENTS[kind])(event)
        elif kind is ev.ChannelClosed:
            assert isinstance(event, ev.ChannelClosed)
            self._on_channel_closed(event)
        elif kind is ev.ConnectionTuned:
            self._tuned = True
            self.connection_state = self.CONNECTION_TUNE
        elif kind is ev.ConnectionOpened:
            assert isinstance(event, ev.ConnectionOpened)
            self._on_opened(event)
        elif kind is ev.ConnectionBlocked:
            assert isinstance(event, ev.ConnectionBlocked)
            self._on_blocked_event(event)
        elif kind is ev.ConnectionUnblocked:
            self._on_unblocked_event()
        else:
            assert isinstance(event, ev.ConnectionClosed)
            self._on_closed_event(event)

    def _channel_for(self, channel_id: int) -> Channel:
        return self._channels[channel_id]

    def _on_opened(self, event: ev.ConnectionOpened) -> None:
        attempt = self._attempt
        assert attempt is not None
        self._attempt = None
        self._opened = True
        self.server_properties = dict(event.server_properties)
        self.connection_state = self.CONNECTION_OPEN
        attempt.params.credentials.erase_credentials()
        recovering = self._recovery is not None and self._recovery.active
        attempt.on_done(None)
        if recovering:
            # A reconnection: the application hears of it as Recovered, not as a new open.
            return
        for callback in list(self._on_open):
            callback(self)

    def _on_update_secret_ok(self, method: Any) -> None:
        callback = self._update_secret_callbacks.pop(0)
        if callback is not None:
            callback(frame.Method(0, method))

    def _on_blocked_event(self, event: ev.ConnectionBlocked) -> None:
        timeout = self.params.blocked_connection_timeout
        if timeout is not None and self._blocked_timer is None:
            self._blocked_timer = self._io.call_later(timeout, self._on_blocked_timeout)
        method = frame.Method(0, spec.Connection.Blocked(event.reason))
        for callback in list(self._on_blocked):
            callback(self, method)

    def _on_unblocked_event(self) -> None:
        self._cancel_blocked_timer()
        method = frame.Method(0, spec.Connection.Unblocked())
        for callback in list(self._on_unblocked):
            callback(self, method)

    def _on_blocked_timeout(self) -> None:
        self._blocked_timer = None
        params = self.params
        self._teardown(
            ConnectionBlockedTimeout(
                f"{params.host}:{params.port}: the broker kept the connection blocked for more "
                f"than blocked_connection_timeout={params.blocked_connection_timeout} s"
            )
        )

    def _teardown(self, reason: BaseException) -> None:
        """Drop the stream at once; the connection ends with ``reason``."""
        stream = self._stream
        assert stream is not None
        assert stream.transport is not None
        self._teardown_reason = reason
        stream.transport.abort()

    def _on_closed_event(self, event: ev.ConnectionClosed) -> None:
        reason: BaseException = event.exception
        if self._teardown_reason is not None:
            reason = self._teardown_reason
        elif isinstance(reason, StreamLostError) and self._lost_error is not None:
            reason = StreamLostError(f"Stream connection lost: {self._lost_error!r}")
        if isinstance(reason, AMQPConnectionError):
            reason.host = self.params.host
            reason.port = self.params.port
        self._cancel_blocked_timer()
        if not self._opened:
            self._handshake_failed(reason)
            return
        self.connection_state = self.CONNECTION_CLOSED
        self._close_reason = reason
        stream = self._stream
        if isinstance(reason, AMQPHeartbeatTimeout):
            # A dead peer: drop the stream rather than wait for it to end.
            assert stream is not None
            assert stream.transport is not None
            stream.active = False
            stream.transport.abort()
            self._finish_close()
        elif stream is not None and stream.active:
            # Let the transport send what is queued (our Close-Ok) and end; the close
            # callbacks run once it reports connection_lost.
            self._flush(force=True)
            assert stream.transport is not None
            stream.transport.close()
            # A broker that stopped reading (a node shutting down, flow control) would hold
            # our queued output, and with it the end of the stream, forever: cut it then.
            self._close_grace = self._io.call_later(
                CLOSE_GRACE, lambda: self._abort_closing(stream)
            )

    def _abort_closing(self, stream: _Stream) -> None:
        self._close_grace = None
        if stream.active and stream.transport is not None:
            stream.transport.abort()

    def _finish_close(self) -> None:
        reason = self._close_reason
        assert reason is not None
        self._close_reason = None
        recovery = self._recovery
        if recovery is not None:
            if is_recoverable(reason):
                recovery.connection_lost(reason)
                return
            recovery.active = False
        self._closed_for_good(reason)

    def _reset_for_recovery(self) -> None:
        """Forget the lost stream; the channels stay for recovery to reopen."""
        self._drop_stream()
        self._opened = False
        self._tuned = False
        self.connection_state = self.CONNECTION_INIT
        self._teardown_reason = None
        self._lost_error = None
        self._pending_close = None
        self._update_secret_callbacks.clear()

    def _closed_for_good(self, reason: BaseException) -> None:
        """The connection ends with ``reason``: close its channels, run the close callbacks."""
        self.connection_state = self.CONNECTION_CLOSED
        self._drop_stream()
        self._output_full = self._drain_owed = False
        channels = list(self._channels.values())
        self._channels.clear()
        for channel in channels:
            channel._on_connection_closed(reason)
        for callback in list(self._on_close):
            callback(self, reason)

    def _on_channel_closed(self, event: ev.ChannelClosed) -> None:
        channel = self._channels.pop(event.channel_id)
        channel._on_closed(event)
        self._close_if_channels_closed()

    def _close_if_channels_closed(self) -> None:
        pending = self._pending_close
        if pending is None or self._channels:
            return
        self._pending_close = None
        engine = self._engine
        assert engine is not None
        engine.close(*pending)
        self._schedule_flush()

    def _cancel_blocked_timer(self) -> None:
        if self._blocked_timer is not None:
            self._blocked_timer.cancel()
            self._blocked_timer = None

    # ------------------------------------------------------------------ output and time

    def _require_open(self, command: str) -> Engine:
        engine = self._engine
        if not self.is_open or engine is None:
            raise ConnectionWrongStateError(
                f"can't {command}: the connection is not open ({self!r})"
            )
        return engine

    def _schedule_flush(self) -> None:
        """Write soon: commands given together leave in one write."""
        if self._dispatching or self._flush_pending is not None:
            return
        self._flush_pending = self._io.call_later(0, self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_pending = None
        self._process()

    def _flush(self, force: bool = False) -> None:
        engine = self._engine
        stream = self._stream
        if engine is None or stream is None or stream.transport is None:
            return
        transport = stream.transport
        if force or transport.write_buffer_size() < WRITE_HIGH_WATER:
            buffers = engine.buffers_to_send()
            if self._backlog or sum(map(len, buffers)) > _JOIN_LIMIT:
                self._write_backlog(transport, buffers, force)
            elif len(buffers) > 1:
                transport.write(b"".join(buffers))
            elif buffers:
                transport.write(buffers[0])
            if self._output_full:
                # The engine gave up its output, so only the backlog, the transport and the
                # commands held behind a synchronous request remain. (Otherwise the transport
                # is above WRITE_HIGH_WATER, and its write_drained brings us back here.)
                unsent = self._unsent_bytes()
                if unsent <= self._max_unsent // 2:
                    self._output_drained(unsent)
        self._rearm_timer()

    def _write_backlog(self, transport: Transport, buffers: list[Buffer], force: bool) -> None:
        """Queue ``buffers`` behind the backlog; give the transport what it may take now.

        The transport gets WRITE_HIGH_WATER at a time while it holds less than that (all of
        it with ``force``): some transports join or copy everything they hold, and each write
        costs them an object (a Future, a queue entry), so the rest waits here, compactly
        (bounded memory, max_unsent_bytes). Small pieces are joined into chunks of about
        ``_JOIN_LIMIT``; big body views go as they are.
        """
        self._queue_backlog(buffers)
        backlog = self._backlog
        # Once the transport holds WRITE_HIGH_WATER it is above its low-water mark, so its
        # write_drained brings us back for the rest.
        while backlog and (force or transport.write_buffer_size() < WRITE_HIGH_WATER):
            self._backlog_bytes -= self._write_some(transport, WRITE_HIGH_WATER)

    def _queue_backlog(self, buffers: list[Buffer]) -> None:
        if buffers:
            self._backlog.extend(buffers)
            self._backlog_bytes += sum(map(len, buffers))

    def _write_some(self, transport: Transport, budget: int) -> int:
        backlog = self._backlog
        written = 0
        batch: list[Buffer] = []
        size = 0
        while backlog and written < budget:
            piece = backlog.popleft()
            length = len(piece)
            written += length
            if length >= _JOIN_LIMIT or type(piece) is memoryview:
                if batch:
                    transport.write(b"".join(batch))
                    batch = []
                    size = 0
                transport.write(piece)
                continue
            batch.append(piece)
            size += length
            if size >= _JOIN_LIMIT:
                transport.write(b"".join(batch))
                batch = []
                size = 0
        if batch:
            transport.write(b"".join(batch))
        return written

    def _unsent_bytes(self) -> int:
        # The engine's output (queued, and held behind synchronous requests) and the
        # transport's; the OS's socket buffer is not ours to count.
        engine = self._engine
        held = engine.bytes_held if engine is not None else 0
        return self.outbound_buffer_size + held

    def _make_room(self, size: int) -> int:
        """basic_publish's slow path: the estimate says ``size`` more bytes may not fit.

        Returns the exact unsent output plus ``size`` when the message may go (the new
        estimate). A message bigger than the room left is let through when the output has
        drained to the low-water mark (half the limit), so that any message can be sent.

        Raises:
            OutputBufferFullError: it may not; every publish is refused until the
                output-drained callbacks run.
        """
        limit = self._max_unsent
        if not self._output_full:
            # What the engine holds joins the backlog (so that it is counted once, not again
            # at every measurement), and the transport gets what it may take now.
            engine = self._engine
            assert engine is not None
            self._queue_backlog(engine.buffers_to_send())
            self._flush()
            unsent = self._unsent_bytes()
            if unsent + size <= limit or unsent <= limit // 2:
                self._set_room(unsent + size)
                return unsent + size
            self._output_full = True
            self._unsent = unsent
            self._unsent_limit = -1
        raise OutputBufferFullError(self._unsent, limit)

    def _after_recovery(self, connection: Connection, event: object) -> None:
        if type(event) is Recovered and self._drain_owed:
            # The channels are back: the publishers refused before the loss may go on.
            self._drain_owed = False
            self._io.call_later(0, self._run_drained_callbacks)

    def _set_room(self, unsent: int) -> None:
        self._unsent = unsent
        self._unsent_limit = unsent + (self._max_unsent - unsent) // 2

    def _output_drained(self, unsent: int) -> None:
        self._output_full = False
        self._set_room(unsent)
        # From the loop: _flush runs inside other calls (and inside _process's cleanup), and
        # the callbacks are expected to publish.
        self._io.call_later(0, self._run_drained_callbacks)

    def _run_drained_callbacks(self) -> None:
        if self._output_full or not self.is_open:
            # Full again already (a later drain calls them), or closed: nothing to resume.
            return
        for callback in list(self._on_drained):
            callback(self)

    def _rearm_timer(self) -> None:
        # One timer serves the engine (heartbeats and dead-peer detection), re-armed when
        # the engine's next deadline moves.
        engine = self._engine
        at = engine.next_timer() if engine is not None else None
        if at == self._timer_at:
            return
        self._cancel_timer()
        if at is not None:
            self._timer_at = at
            self._timer = self._io.call_later(max(0.0, at - self._io.now()), self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        engine = self._engine
        assert engine is not None
        engine.handle_timer(self._io.now())
        self._process()


# Channel events dispatched to a Channel method of this name.
_CHANNEL_EVENTS: Final[dict[type, str]] = {
    ev.ChannelOpened: "_handle_open_ok",
    ev.ChannelFlowChanged: "_handle_flow",
    ev.MessageReturned: "_handle_return",
    ev.GetOk: "_handle_get_ok",
    ev.GetEmpty: "_handle_get_empty",
    ev.PublishAcked: "_handle_confirm",
    ev.PublishNacked: "_handle_confirm",
    ev.ConsumerCancelled: "_handle_cancelled",
}
