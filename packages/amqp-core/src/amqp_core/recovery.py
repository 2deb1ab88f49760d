"""Automatic connection and topology recovery, written once for every adapter.

A connection whose parameters carry a :class:`RecoveryPolicy` does not end when its stream is
lost, its heartbeat times out or the broker closes it with a recoverable code (320
``CONNECTION_FORCED``, 541 ``INTERNAL_ERROR`` ...). Instead it:

1. reports :class:`ConnectionLost`, drops the replies its channels were waiting for, reports
   publishes still without a confirm (:class:`PublishesUnconfirmed`, and a ``Basic.Nack`` with
   ``multiple`` to the channel's ack/nack callback: they are never reported as confirmed), and
   starts refusing acknowledgements of the deliveries received before (:class:`StaleDeliveryTag`);
2. reconnects: each attempt tries every configured host once, starting with the one after the
   host that was lost; attempts are spaced by exponential backoff with jitter
   (:class:`Recovering` before each), bounded by ``max_attempts`` and ``max_duration``;
3. once connected, declares again, on a channel of its own, the exchanges, queues and bindings
   the application declared on the connection (:mod:`amqp_core._topology`); a server-named
   queue gets a new name (:class:`QueueRenamed`) that its bindings and consumers follow;
4. reopens every channel that was open, with the same number, and restores its QoS, confirm
   mode, transaction mode and consumers (same tag, same callback);
5. reports :class:`Recovered`.

A declaration refused during recovery is reported (:class:`TopologyRecoveryFailed`) and the
rest goes on. A refused login or a close with 403 ``ACCESS_REFUSED`` / 530 ``NOT_ALLOWED`` /
402 ``INVALID_PATH`` is not retried: recovery ends at once with :class:`RecoveryFailed`, and the
connection's close callbacks follow, as they do when the bounds are exhausted.

Delivery tags and publish sequence numbers continue across a recovery: the broker starts a new
channel at 1, so the channel adds the count it had reached. A tag the application holds from
before the recovery is therefore always smaller than every new one, which is how the channel
recognises (and drops) a stale acknowledgement.

The core has no randomness of its own: the jitter comes from :attr:`RecoveryPolicy.random`, or
from the adapter's ``IOServices.random`` if it offers one, and is off without either.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from amqp_core import frame, spec
from amqp_core._workflow import ConnectionWorkflow
from amqp_core.exceptions import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorAMQPHandshakeError,
    ChannelClosedByBroker,
    ConnectionBlockedTimeout,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionRecoveryFailed,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)
from amqp_core.parameters import Parameters

if TYPE_CHECKING:
    from amqp_core.channel import Channel
    from amqp_core.connection import Connection

__all__ = (
    "ConnectionLost",
    "PublishesUnconfirmed",
    "QueueRenamed",
    "Recovered",
    "Recovering",
    "RecoveryEvent",
    "RecoveryFailed",
    "RecoveryPolicy",
    "StaleDeliveryTag",
    "TopologyRecoveryFailed",
    "keeps_buffered_deliveries",
)

#: Broker close codes that another attempt would only meet again: not retried.
FATAL_CLOSE_CODES: Final = frozenset({402, 403, 530})


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    """How a connection recovers (opt-in: give it as ``ConnectionParameters(recovery=...)``).

    The delay before attempt ``n`` (1, 2, ...) is ``initial_delay * multiplier ** (n - 1)``,
    capped at ``max_delay``; with jitter ``j`` it is then scaled by a factor drawn from
    ``[1 - j, 1]``, so that clients cut off together do not come back together.

    Attributes:
        initial_delay: seconds before the first attempt.
        max_delay: the longest delay between attempts.
        multiplier: growth of the delay per attempt.
        jitter: the fraction of each delay that is random (0 = none, 1 = anything up to it).
        max_attempts: give up after this many attempts (None = no limit). One attempt tries
            every configured host once.
        max_duration: give up when the next attempt would start more than this many seconds
            after the connection was lost (None = no limit).
        random: a source of floats in ``[0, 1)`` for the jitter (e.g. ``random.random``);
            None uses the adapter's ``IOServices.random`` if it has one, else no jitter.
        topology: declare again what the application declared (False: reconnect and reopen
            channels only).
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None
    max_duration: float | None = None
    random: Callable[[], float] | None = None
    topology: bool = True

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("recovery delays must be >= 0")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, but got {self.multiplier!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], but got {self.jitter!r}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 or None, but got {self.max_attempts!r}")
        if self.max_duration is not None and self.max_duration < 0:
            raise ValueError(f"max_duration must be >= 0 or None, but got {self.max_duration!r}")

    def __deepcopy__(self, memo: dict[int, Any]) -> RecoveryPolicy:
        # Immutable, and its random source is meant to be shared, not cloned with the
        # parameters that hold the policy.
        return self

    def delay(self, attempt: int, draw: float | None = None) -> float:
        """Return the delay before ``attempt`` (1-based), jittered by ``draw`` in ``[0, 1)``."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        if draw is None or not self.jitter:
            return base
        return base * (1.0 - self.jitter * draw)


# ---------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """The open connection ended and recovery begins. ``reason``: why it ended."""

    reason: BaseException


@dataclass(frozen=True, slots=True)
class Recovering:
    """Attempt ``attempt`` (1-based) starts in ``delay`` seconds."""

    attempt: int
    delay: float


@dataclass(frozen=True, slots=True)
class Recovered:
    """The connection is back on ``host``:``port``, topology and channels restored.

    ``failures`` counts the :class:`TopologyRecoveryFailed` reported on the way.
    """

    host: str
    port: int
    attempts: int
    failures: int


@dataclass(frozen=True, slots=True)
class RecoveryFailed:
    """Recovery gave up; the connection is closed with ``reason`` (close callbacks follow)."""

    reason: BaseException


@dataclass(frozen=True, slots=True)
class TopologyRecoveryFailed:
    """Restoring ``what`` (e.g. ``"queue 'q'"``, ``"consumer 'ctag1.1' on channel 1"``) failed.

    ``channel_number`` is the application's channel concerned (0: the connection's own
    topology). A channel whose restoration failed is closed with ``error``.
    """

    what: str
    error: BaseException
    channel_number: int = 0


@dataclass(frozen=True, slots=True)
class QueueRenamed:
    """A server-named queue was declared again and got a new name; bindings and consumers follow."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class StaleDeliveryTag:
    """An ack/nack/reject (``method``) of a delivery received before a recovery was dropped.

    Sending it would acknowledge a different message (or make the broker close the channel):
    the broker has requeued the original delivery already and will deliver it again.
    """

    channel_number: int
    delivery_tag: int
    method: str


@dataclass(frozen=True, slots=True)
class PublishesUnconfirmed:
    """Publishes up to ``last_sequence`` that had no confirm yet when the connection died.

    ``count`` of them were unconfirmed (None: unknown, the broker confirmed out of order); they
    are reported to the ack/nack callback as a ``Basic.Nack`` with ``multiple``: the broker may
    or may not have them.
    """

    channel_number: int
    last_sequence: int
    count: int | None
    reason: BaseException


RecoveryEvent = (
    ConnectionLost
    | Recovering
    | Recovered
    | RecoveryFailed
    | TopologyRecoveryFailed
    | QueueRenamed
    | StaleDeliveryTag
    | PublishesUnconfirmed
)
RecoveryListener = Callable[["Connection", RecoveryEvent], None]


def is_recoverable(reason: BaseException) -> bool:
    """Whether a connection that ended with ``reason`` should be recovered."""
    if isinstance(reason, ConnectionClosedByClient):
        return False
    if isinstance(reason, ConnectionClosedByBroker):
        return reason.reply_code not in FATAL_CLOSE_CODES
    # The broker stays in its resource alarm: coming back would only be blocked again.
    return not isinstance(reason, ConnectionBlockedTimeout)


def keeps_buffered_deliveries(auto_ack: bool) -> bool:
    """Whether a consumer still hands out, after a connection loss, what it had buffered.

    An adapter that buffers deliveries between the socket and the application (an iterator,
    a queue) holds, when the connection dies, messages received on the dead channel.

    * Manual acknowledgement (``auto_ack=False``): drop them. The broker requeues every
      unacknowledged delivery of a dead channel and delivers it again after the recovery,
      flagged ``redelivered``; the buffered copies carry delivery tags of the dead channel,
      whose acknowledgements would be dropped (:class:`StaleDeliveryTag`).
    * ``auto_ack=True``: keep handing them out. The broker counted them as delivered when it
      sent them and will not deliver them again; dropping them would lose them.

    Args:
        auto_ack: whether the consumer was started with ``auto_ack``.
    """
    return auto_ack


def _fatal_open_error(error: BaseException) -> bool:
    # A login or vhost refusal (403, 530, 402 during the handshake) will not fix itself; a
    # node that closes with 320 while shutting down is just not available yet.
    if isinstance(error, AMQPConnectionWorkflowFailed):
        for failure in error.exceptions:
            if isinstance(failure, AMQPConnectorAMQPHandshakeError) and isinstance(
                failure.exception, (ProbableAuthenticationError, ProbableAccessDeniedError)
            ):
                closed = failure.exception.__cause__
                if not isinstance(closed, ConnectionClosedByBroker):
                    return True
                if closed.reply_code in FATAL_CLOSE_CODES:
                    return True
    return False


# ---------------------------------------------------------------------- the driver


class Recovery:
    """Drives the recovery of one connection (created by the connection when it has a policy).

    Args:
        connection: the connection.
        policy: its recovery policy.
    """

    def __init__(self, connection: Connection, policy: RecoveryPolicy) -> None:
        self.connection = connection
        self.policy = policy
        self.topology_enabled = policy.topology
        self.active = False
        self.listeners: list[RecoveryListener] = []
        self._attempt = 0
        self._lost_at = 0.0
        self._reason: BaseException | None = None
        self._pending: Any = None
        self._workflow: ConnectionWorkflow | None = None
        self._host_index = 0
        self._failures = 0
        self._channels: list[Channel] = []
        self._waiting = 0
        self._replay: Channel | None = None

    # ------------------------------------------------------------------ reporting

    def emit(self, event: RecoveryEvent) -> None:
        """Hand ``event`` to every listener."""
        for listener in list(self.listeners):
            listener(self.connection, event)

    def stale_tag(self, channel: Channel, delivery_tag: int, method: str) -> None:
        """A channel dropped an acknowledgement of a delivery from before a recovery."""
        self.emit(StaleDeliveryTag(channel.channel_number, delivery_tag, method))

    # ------------------------------------------------------------------ losing the connection

    def connection_lost(self, reason: BaseException) -> None:
        """The open connection ended with a recoverable ``reason``: keep the channels, retry.

        Called by the connection before it drops the old engine (read here for the counters).
        """
        conn = self.connection
        self.active = True
        self._reason = reason
        self._attempt = 0
        self._failures = 0
        self._lost_at = conn._io.now()
        self.emit(ConnectionLost(reason))
        for number, channel in list(conn._channels.items()):
            if channel is self._replay or channel.is_closing or channel.is_closed:
                del conn._channels[number]
                channel._on_connection_closed(reason)
                continue
            unconfirmed = channel._lose()
            if unconfirmed is not None:
                last, count = unconfirmed
                self.emit(PublishesUnconfirmed(number, last, count, reason))
                callback = channel._ack_nack_callback
                if callback is not None:
                    callback(frame.Method(number, spec.Basic.Nack(last, True, False)))
        self._replay = None
        self._channels = []
        conn._reset_for_recovery()
        self._schedule()

    def _schedule(self) -> None:
        conn = self.connection
        policy = self.policy
        self._attempt += 1
        if policy.max_attempts is not None and self._attempt > policy.max_attempts:
            self._fail(
                f"gave up after {policy.max_attempts} attempt(s)",
            )
            return
        source = policy.random or getattr(conn._io, "random", None)
        delay = policy.delay(self._attempt, source() if source is not None else None)
        if (
            policy.max_duration is not None
            and conn._io.now() + delay - self._lost_at > policy.max_duration
        ):
            self._fail(f"gave up after {policy.max_duration} s")
            return
        self.emit(Recovering(self._attempt, delay))
        self._pending = conn._io.call_later(delay, self._start_attempt)

    def _start_attempt(self) -> None:
        self._pending = None
        conn = self.connection
        configs = conn._configs
        # Start with the host after the one that was lost: in a cluster, another node.
        start = (self._host_index + 1) % len(configs)
        order = [configs[(start + i) % len(configs)] for i in range(len(configs))]
        # Each host is tried once per attempt; the backoff spaces the attempts.
        copies = []
        for params in order:
            once = copy.copy(params)
            once.connection_attempts = 1
            copies.append(once)
        self._order = [(start + i) % len(configs) for i in range(len(configs))]
        self._copies = copies
        self._workflow = ConnectionWorkflow(
            conn._io, copies, conn._start_attempt, self._on_workflow_done
        )
        conn._workflow = self._workflow
        self._workflow.start()

    def _on_workflow_done(self, result: Parameters | BaseException) -> None:
        self._workflow = None
        if not self.active:
            return
        if isinstance(result, Parameters):
            index = next(i for i, p in enumerate(self._copies) if p is result)
            self._host_index = self._order[index]
            self.connection.params = self.connection._configs[self._host_index]
            self._restore()
            return
        if _fatal_open_error(result):
            self._fail("the broker refused the login", result)
            return
        self._schedule()

    def _fail(self, why: str, cause: BaseException | None = None) -> None:
        conn = self.connection
        error = ConnectionRecoveryFailed(f"connection recovery failed: {why}: {self._reason!r}")
        error.__cause__ = cause if cause is not None else self._reason
        error.host = conn.params.host
        error.port = conn.params.port
        self.active = False
        self.emit(RecoveryFailed(error))
        conn._closed_for_good(error)

    def abort(self, reason: BaseException) -> None:
        """The application closed the connection while it was recovering."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self.active = False
        workflow, self._workflow = self._workflow, None
        if workflow is not None:
            workflow.abort()
        self.connection._closed_for_good(reason)

    def closed_during_restore(self) -> None:
        """The new connection ended while the topology was being restored."""
        self._replay = None

    # ------------------------------------------------------------------ restoring

    def _restore(self) -> None:
        conn = self.connection
        self._channels = [ch for ch in conn._channels.values() if ch is not self._replay]
        topology = conn._topology
        if topology is None or not self.topology_enabled:
            self._reopen_channels({})
            return
        steps: list[tuple[str, Any]] = []
        steps.extend(
            (f"exchange {name!r}", declare) for name, declare in topology.exchanges.items()
        )
        steps.extend(
            (f"queue {name!r}", (name, declare)) for name, declare in topology.queues.items()
        )
        steps.extend(
            (f"binding {b.source!r} -> {b.destination!r} ({b.routing_key!r})", b)
            for b in list(topology.bindings)
        )
        renames: dict[str, str] = {}
        if not steps:
            self._reopen_channels(renames)
            return
        self._run_steps(steps, renames)

    def _replay_channel(self, on_open: Callable[[Channel], None]) -> Channel:
        conn = self.connection
        used = set(conn._channels)
        # A number no channel of the application has (they are reopened with theirs later).
        number = max(used, default=0) + 1
        if number > 65535:
            number = next(n for n in range(1, 65536) if n not in used)
        channel = conn.channel(number, on_open)
        channel._recording = False
        self._replay = channel
        return channel

    def _run_steps(self, steps: list[tuple[str, Any]], renames: dict[str, str]) -> None:
        """Run ``steps`` one at a time on a replay channel; go on after a refusal."""
        _Replay(self, steps, renames).start()

    def _reopen_channels(self, renames: dict[str, str]) -> None:
        channels = [ch for ch in self._channels if ch.is_opening]
        self._channels = []
        self._waiting = len(channels)
        if not channels:
            self._finished()
            return
        for channel in channels:
            channel._recover(self, renames)

    def channel_restored(self, channel: Channel, what: str, error: BaseException | None) -> None:
        """A channel finished restoring (``error``: the refusal that closed it, if any)."""
        if error is not None:
            self._failures += 1
            self.emit(TopologyRecoveryFailed(what, error, channel.channel_number))
        self._waiting -= 1
        if self._waiting == 0:
            self._finished()

    def _finished(self) -> None:
        if not self.active:
            return
        self.active = False
        conn = self.connection
        self.emit(Recovered(conn.params.host, conn.params.port, self._attempt, self._failures))


class _Replay:
    """Declares the recorded exchanges, queues and bindings again, one at a time.

    A refused declaration closes the channel it was made on: it is reported, and the rest
    continues on a new channel.
    """

    def __init__(
        self, recovery: Recovery, steps: list[tuple[str, Any]], renames: dict[str, str]
    ) -> None:
        self.recovery = recovery
        self.steps = steps
        self.renames = renames
        self.index = 0
        self.what = ""
        self.channel: Channel | None = None

    def start(self) -> None:
        channel = self.recovery._replay_channel(self.step)
        channel.add_on_close_callback(self.on_close)
        self.channel = channel

    def step(self, channel: Channel, _reply: Any = None) -> None:
        recovery = self.recovery
        if not recovery.active or recovery._replay is not channel:
            return
        if self.index >= len(self.steps):
            recovery._replay = None
            channel.remove_on_close_callback(self.on_close)
            channel.close()
            recovery._reopen_channels(self.renames)
            return
        self.what, item = self.steps[self.index]
        self.index += 1
        then = functools.partial(self.step, channel)
        if isinstance(item, spec.Exchange.Declare):
            channel.exchange_declare(
                item.exchange,
                item.type,
                durable=item.durable,
                auto_delete=item.auto_delete,
                internal=item.internal,
                arguments=item.arguments,
                callback=then,
            )
        elif isinstance(item, tuple):
            name, declare = item
            channel.queue_declare(
                declare.queue,
                durable=declare.durable,
                exclusive=declare.exclusive,
                auto_delete=declare.auto_delete,
                arguments=declare.arguments,
                callback=functools.partial(self.declared, channel, name),
            )
        elif item.to_queue:
            channel.queue_bind(
                item.destination,
                item.source,
                item.routing_key,
                arguments=item.arguments,
                callback=then,
            )
        else:
            channel.exchange_bind(
                item.destination,
                item.source,
                item.routing_key,
                arguments=item.arguments,
                callback=then,
            )

    def declared(self, channel: Channel, name: str, reply: Any) -> None:
        new = reply.method.queue
        if new != name:
            recovery = self.recovery
            self.renames[name] = new
            topology = recovery.connection._topology
            assert topology is not None
            topology.rename_queue(name, new)
            recovery.emit(QueueRenamed(name, new))
        self.step(channel)

    def on_close(self, channel: Channel, reason: BaseException) -> None:
        recovery = self.recovery
        if not recovery.active or recovery._replay is not channel:
            return
        recovery._replay = None
        if isinstance(reason, ChannelClosedByBroker):
            recovery._failures += 1
            recovery.emit(TopologyRecoveryFailed(self.what, reason))
            # Carry on with the rest on a fresh channel.
            self.start()
