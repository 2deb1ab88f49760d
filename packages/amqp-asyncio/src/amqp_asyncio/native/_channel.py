"""The native channel, its consumers and messages: awaitable wrappers over amqp_core's channel.

Each method starts the request on amqp_core's callback :class:`~amqp_core.channel.Channel` and
waits for the callback. Which reply answers which request, what a confirm means and when a
returned message fails a publish are amqp_core's decisions (:mod:`amqp_core.awaitable`); this
module only turns callbacks into waits and errors into raises.

A task that is cancelled while it waits simply stops waiting: the request stays on the wire,
its reply is still consumed by the channel (so the channel stays in step with the broker),
and the result is dropped.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel

from amqp_asyncio.native._waiter import Latch, Waiter
from amqp_core import frame
from amqp_core.awaitable import (
    ExchangeDeclareOk,
    QueueDeclareOk,
    QueueDeleteOk,
    QueuePurgeOk,
    cancelled_consumer_tag,
    reply,
)
from amqp_core.channel import Channel as CoreChannel
from amqp_core.confirms import ConfirmTracker, PublishOutcome
from amqp_core.data import FieldValue
from amqp_core.exceptions import (
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConsumerCancelled,
    RecoveryInterrupted,
)
from amqp_core.exchange_type import ExchangeType
from amqp_core.recovery import keeps_buffered_deliveries
from amqp_core.spec import BasicProperties

if TYPE_CHECKING:
    from amqp_asyncio.native._connection import NativeConnection

__all__ = ("Consumer", "Message", "NativeChannel")

#: Publishes awaiting their confirm on one channel, by default; more publishers wait their turn.
DEFAULT_MAX_IN_FLIGHT: Final = 256
# How long leaving a consumer's ``async with`` waits for Cancel-Ok.
_CANCEL_GRACE: Final = 5.0


class _Confirm(Waiter[None]):
    """The wait of one :meth:`NativeChannel.basic_publish` for its confirm."""

    __slots__ = ()

    def settle(self, outcome: PublishOutcome) -> None:
        error = outcome.error
        if error is None:
            self.set_result(None)
        else:
            self.set_error(error)


class _Batch:
    """The wait of one :meth:`NativeChannel.publish_batch` for all its confirms."""

    __slots__ = ("complete", "done", "remaining")

    def __init__(self) -> None:
        self.remaining = 0
        self.complete = False  # every message of the batch is published
        self.done: Waiter[None] = Waiter()

    def settle(self, _outcome: PublishOutcome) -> None:
        self.remaining -= 1
        if not self.remaining and self.complete:
            self.done.set_result(None)


class Message:
    """A message received by a consumer or by :meth:`NativeChannel.basic_get`.

    Attributes:
        body: the body.
        properties: the content properties.
        delivery_tag: the tag to acknowledge it with.
        redelivered: True if the broker delivered it before.
        exchange: the exchange it was published to.
        routing_key: its routing key.
        consumer_tag: the consumer it was delivered to ("" for a get).
        message_count: for a get, the messages left in the queue; else None.
    """

    __slots__ = (
        "_channel",
        "body",
        "consumer_tag",
        "delivery_tag",
        "exchange",
        "message_count",
        "properties",
        "redelivered",
        "routing_key",
    )

    def __init__(
        self,
        channel: NativeChannel,
        method: Any,
        properties: BasicProperties,
        body: bytes,
        consumer_tag: str = "",
        message_count: int | None = None,
    ) -> None:
        self._channel = channel
        self.body = body
        self.properties = properties
        self.delivery_tag: int = method.delivery_tag
        self.redelivered: bool = method.redelivered
        self.exchange: str = method.exchange
        self.routing_key: str = method.routing_key
        self.consumer_tag = consumer_tag
        self.message_count = message_count

    def __repr__(self) -> str:
        return (
            f"<Message tag={self.delivery_tag} exchange={self.exchange!r} "
            f"routing_key={self.routing_key!r} {len(self.body)} bytes>"
        )

    @property
    def channel(self) -> NativeChannel:
        """The channel it arrived on (acknowledgements go back on it)."""
        return self._channel

    async def ack(self, multiple: bool = False) -> None:
        """Acknowledge it (and every earlier unacknowledged delivery with ``multiple``)."""
        await self._channel.basic_ack(self.delivery_tag, multiple)

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        """Refuse it (requeued by default)."""
        await self._channel.basic_nack(self.delivery_tag, multiple, requeue)

    async def reject(self, requeue: bool = True) -> None:
        """Refuse it (requeued by default)."""
        await self._channel.basic_reject(self.delivery_tag, requeue)


def _same(previous: str, value: str) -> str:
    """``previous`` if it equals ``value``: one string object kept instead of two."""
    return previous if value == previous else value


class Consumer:
    """A consumer: an async iterator of :class:`Message`, and an async context manager.

    Made by :meth:`NativeChannel.consume`. ``async with`` starts it and cancels it on the
    way out; plain ``async for`` starts it at the first iteration (it is then cancelled when
    the channel closes, or by :meth:`cancel`). Iteration ends normally after :meth:`cancel`
    or a client-side channel close, and raises the reason otherwise: ``ConsumerCancelled``
    when the broker cancelled it, ``ChannelClosedByBroker``, or the connection's error.
    """

    def __init__(
        self,
        channel: NativeChannel,
        queue: str,
        *,
        auto_ack: bool,
        exclusive: bool,
        consumer_tag: str | None,
        arguments: Mapping[str, FieldValue] | None,
    ) -> None:
        self._channel = channel
        self._queue = queue
        self._auto_ack = auto_ack
        self._exclusive = exclusive
        self._requested_tag = consumer_tag
        self._arguments = arguments
        self._tag: str | None = None
        self._buffer: deque[Message] = deque()
        # The last message's, shared by the next ones that have the same (_on_message).
        self._tag_seen = ""
        self._exchange = ""
        self._routing_key = ""
        self._wake: Waiter[None] = Waiter()
        self._started = False
        self._finished = False
        self._error: BaseException | None = None

    @property
    def consumer_tag(self) -> str | None:
        """The consumer tag, once started."""
        return self._tag

    async def start(self) -> None:
        """Register the consumer with the broker and wait for ``Consume-Ok``."""
        if self._started:
            return
        self._started = True
        channel = self._channel
        waiter: Waiter[frame.Method] = Waiter()
        core = await channel._ready("consume")
        self._tag = core.basic_consume(
            self._queue,
            self._on_message,
            auto_ack=self._auto_ack,
            exclusive=self._exclusive,
            consumer_tag=self._requested_tag,
            arguments=self._arguments,
            callback=waiter.set_result,
        )
        channel._consumers[self._tag] = self
        await channel._wait(waiter)

    async def cancel(self) -> None:
        """Cancel the consumer and wait for ``Cancel-Ok``; iteration then ends.

        Messages already received stay in the iterator and can still be read and
        acknowledged. Nothing happens if the channel is already closed.
        """
        channel = self._channel
        try:
            await channel._connection._wait_recovered()
            tag = self._tag
            if tag is None or self._finished or channel.is_closed:
                return
            waiter: Waiter[frame.Method] = Waiter()
            channel._core_for("cancel").basic_cancel(tag, callback=waiter.set_result)
            await channel._wait(waiter)
        except RecoveryInterrupted:
            # The connection was lost while the cancel was under way: amqp_core does not
            # restore a consumer being cancelled, so it is cancelled all the same.
            pass
        finally:
            self._end(None)

    async def __aenter__(self) -> Consumer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Shielded: a cancelled task still tells the broker to stop delivering to it.
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_GRACE):
            await self.cancel()

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Message:
        if not self._started:
            await self.start()
        buffer = self._buffer
        if buffer:
            # A cancellation point even when the next message is already here (waiting for
            # one, below, is one too).
            await self._channel._connection._checkpoint_if_cancelled()
        while not buffer:
            if self._finished:
                if self._error is not None:
                    # The connection's error reached a task: leaving ``connect()`` need not
                    # raise it again.
                    self._channel._connection._seen(self._error)
                    raise self._error
                raise StopAsyncIteration
            # Whatever this task sent (a request whose answer is the next delivery, acks)
            # leaves before it sleeps.
            connection = self._channel._connection
            connection._core.flush()
            await connection._services.wait(self._wake)
            self._wake = Waiter()
        return buffer.popleft()

    # ------------------------------------------------------------------ from the channel

    def _on_message(
        self, _core: CoreChannel, method: Any, properties: BasicProperties, body: bytes
    ) -> None:
        buffer = self._buffer
        if not buffer:
            # Only an empty buffer can have a task waiting on it.
            self._wake.set_result(None)
        message = Message(self._channel, method, properties, body, method.consumer_tag)
        # Up to a prefetch window of messages may wait here, and most share their tag,
        # exchange and routing key: one string each for them, not one decoded copy each.
        self._tag_seen = message.consumer_tag = _same(self._tag_seen, message.consumer_tag)
        self._exchange = message.exchange = _same(self._exchange, message.exchange)
        self._routing_key = message.routing_key = _same(self._routing_key, message.routing_key)
        buffer.append(message)

    def _connection_lost(self) -> None:
        # amqp_core decides what becomes of deliveries received but not yet handed out.
        if not keeps_buffered_deliveries(self._auto_ack):
            self._buffer.clear()

    def _end(self, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        self._error = error
        if self._tag is not None:
            self._channel._consumers.pop(self._tag, None)
        self._wake.set_result(None)


class NativeChannel:
    """An AMQP channel with awaitable methods; made by :meth:`NativeConnection.channel`.

    ``async with`` closes it on the way out. Once the channel is closed every call raises
    the reason it closed (``ChannelClosedByBroker`` with the broker's reply code, or the
    connection's error), and so does every wait that was in progress.
    """

    def __init__(self, connection: NativeConnection, core: CoreChannel, max_in_flight: int) -> None:
        self._connection = connection
        self._core = core
        self._waiters: set[Waiter[Any]] = set()
        self._consumers: dict[str, Consumer] = {}
        self._tracker: ConfirmTracker | None = None
        # Who waits for each unconfirmed publish, by sequence number.
        self._confirms: dict[int, _Confirm | _Batch] = {}
        # Every unconfirmed publish holds one of max_in_flight slots until it is settled.
        self._free_slots = max_in_flight
        self._slot_waiters: deque[Waiter[None]] = deque()
        self._close_reason: BaseException | None = None
        self._closed = Latch(connection._services.wait)
        core.add_on_close_callback(self._on_core_close)
        core.add_on_cancel_callback(self._on_core_cancel)

    def __repr__(self) -> str:
        return f"<NativeChannel {self._core.channel_number} {self.state}>"

    # ------------------------------------------------------------------ state

    @property
    def channel_number(self) -> int:
        """The channel number."""
        return self._core.channel_number

    @property
    def state(self) -> str:
        """``"OPENING"``, ``"OPEN"``, ``"CLOSING"`` or ``"CLOSED"``."""
        core = self._core
        if core.is_open:
            return "OPEN"
        if core.is_opening:
            return "OPENING"
        return "CLOSING" if core.is_closing else "CLOSED"

    @property
    def is_open(self) -> bool:
        """True while the channel is open."""
        return self._core.is_open

    @property
    def is_closed(self) -> bool:
        """True once the channel is closed."""
        return self._core.is_closed

    @property
    def close_reason(self) -> BaseException | None:
        """Why the channel closed, once it has."""
        return self._close_reason

    @property
    def publisher_confirms(self) -> bool:
        """True once :meth:`confirm_delivery` has put the channel in confirm mode."""
        return self._tracker is not None

    @property
    def publishes_in_flight(self) -> int:
        """Publishes sent and waiting for their confirm."""
        return self._tracker.unsettled if self._tracker is not None else 0

    async def wait_closed(self) -> BaseException | None:
        """Wait until the channel is closed; return why."""
        await self._closed.wait()
        return self._close_reason

    async def __aenter__(self) -> NativeChannel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not (self._core.is_closed or self._core.is_closing):
            with anyio.CancelScope(shield=True):
                await self.close()

    async def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> None:
        """Close the channel (cancelling its consumers first) and wait until it is closed.

        Closing a channel that is already closed does nothing.
        """
        core = self._core
        if not (core.is_closed or core.is_closing):
            core.close(reply_code, reply_text)
        self._connection._core.flush()
        await self._closed.wait()

    # ------------------------------------------------------------------ plumbing

    async def _ready(self, what: str) -> CoreChannel:
        """Wait while the connection recovers; then the core channel, as :meth:`_core_for`."""
        await self._connection._wait_recovered()
        return self._core_for(what)

    def _core_for(self, what: str) -> CoreChannel:
        """The core channel, or the reason it closed raised."""
        reason = self._close_reason
        if reason is not None:
            self._connection._seen(reason)
            raise reason
        core = self._core
        if not core.is_open:
            raise ChannelWrongStateError(
                f"can't {what}: channel {self.channel_number} is {self.state}"
            )
        return core

    async def _wait(self, waiter: Waiter[Any]) -> Any:
        """Wait for a request's reply; the channel's close fails the wait with its reason."""
        if self._close_reason is not None:
            waiter.set_error(self._close_reason)
        self._waiters.add(waiter)
        # The request leaves now, not on the loop's next round: its reply is awaited.
        connection = self._connection
        connection._core.flush()
        try:
            return await connection._services.wait(waiter)
        except BaseException as error:
            connection._seen(error)
            raise
        finally:
            self._waiters.discard(waiter)

    async def _rpc(self, what: str, **kwargs: Any) -> frame.Method:
        waiter: Waiter[frame.Method] = Waiter()
        getattr(await self._ready(what), what)(callback=waiter.set_result, **kwargs)
        result: frame.Method = await self._wait(waiter)
        return result

    def _publishes_unconfirmed(self, reason: BaseException) -> None:
        """The connection was lost before the broker confirmed the publishes in flight."""
        if self._tracker is not None:
            self._tracker.fail_all(
                RecoveryInterrupted(
                    f"the connection was lost before the broker confirmed the message "
                    f"({reason!r}); it may or may not have been received"
                )
            )

    def _connection_lost(self) -> None:
        """The connection died (and recovers): its consumers' buffers hold old deliveries."""
        for consumer in self._consumers.values():
            consumer._connection_lost()

    def _on_core_close(self, core: CoreChannel, reason: BaseException) -> None:
        channels = self._connection._channels
        if channels.get(core.channel_number) is self:
            del channels[core.channel_number]
        self._close_reason = reason
        for waiter in list(self._waiters):
            waiter.set_error(reason)
        if self._tracker is not None:
            self._tracker.fail_all(reason)
        for waiter in self._slot_waiters:
            waiter.set_error(reason)
        self._slot_waiters.clear()
        consumer_error = None if isinstance(reason, ChannelClosedByClient) else reason
        for consumer in list(self._consumers.values()):
            consumer._end(consumer_error)
        self._closed.set()

    def _on_core_return(
        self, _core: CoreChannel, method: Any, properties: BasicProperties, body: bytes
    ) -> None:
        assert self._tracker is not None
        self._tracker.on_return(method, properties, body)

    def _on_core_confirm(self, result: frame.Method) -> None:
        assert self._tracker is not None
        self._tracker.on_confirm(result)

    def _on_core_cancel(self, result: frame.Method) -> None:
        tag = cancelled_consumer_tag(result)
        consumer = self._consumers.get(tag)
        if consumer is not None:
            consumer._end(ConsumerCancelled(f"the broker cancelled consumer {tag!r}"))

    def _on_settled(self, outcome: PublishOutcome) -> None:
        self._release_slot()
        waiter = self._confirms.pop(outcome.sequence, None)
        if waiter is not None:  # else its publisher was cancelled and no longer waits
            waiter.settle(outcome)

    # ------------------------------------------------------------------ exchanges

    async def exchange_declare(
        self,
        exchange: str,
        exchange_type: ExchangeType | str = ExchangeType.direct,
        *,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> ExchangeDeclareOk:
        """Declare an exchange (``passive``: only check it exists)."""
        result = await self._rpc(
            "exchange_declare",
            exchange=exchange,
            exchange_type=exchange_type,
            passive=passive,
            durable=durable,
            auto_delete=auto_delete,
            internal=internal,
            arguments=arguments,
        )
        return reply(result, ExchangeDeclareOk)

    async def exchange_delete(self, exchange: str, *, if_unused: bool = False) -> None:
        """Delete an exchange."""
        await self._rpc("exchange_delete", exchange=exchange, if_unused=if_unused)

    async def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        *,
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> None:
        """Bind exchange ``destination`` to exchange ``source`` (RabbitMQ's extension)."""
        await self._rpc(
            "exchange_bind",
            destination=destination,
            source=source,
            routing_key=routing_key,
            arguments=arguments,
        )

    async def exchange_unbind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        *,
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> None:
        """Remove an exchange-to-exchange binding."""
        await self._rpc(
            "exchange_unbind",
            destination=destination,
            source=source,
            routing_key=routing_key,
            arguments=arguments,
        )

    # ------------------------------------------------------------------ queues

    async def queue_declare(
        self,
        queue: str = "",
        *,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> QueueDeclareOk:
        """Declare a queue ("" = a server-named one); the reply names it and counts it."""
        result = await self._rpc(
            "queue_declare",
            queue=queue,
            passive=passive,
            durable=durable,
            exclusive=exclusive,
            auto_delete=auto_delete,
            arguments=arguments,
        )
        return reply(result, QueueDeclareOk)

    async def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        *,
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> None:
        """Bind a queue to an exchange (the routing key defaults to the queue name)."""
        await self._rpc(
            "queue_bind",
            queue=queue,
            exchange=exchange,
            routing_key=routing_key,
            arguments=arguments,
        )

    async def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        *,
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> None:
        """Remove a queue binding."""
        await self._rpc(
            "queue_unbind",
            queue=queue,
            exchange=exchange,
            routing_key=routing_key,
            arguments=arguments,
        )

    async def queue_purge(self, queue: str) -> QueuePurgeOk:
        """Drop a queue's ready messages; the reply counts them."""
        return reply(await self._rpc("queue_purge", queue=queue), QueuePurgeOk)

    async def queue_delete(
        self, queue: str, *, if_unused: bool = False, if_empty: bool = False
    ) -> QueueDeleteOk:
        """Delete a queue; the reply counts the messages deleted with it."""
        result = await self._rpc(
            "queue_delete", queue=queue, if_unused=if_unused, if_empty=if_empty
        )
        return reply(result, QueueDeleteOk)

    # ------------------------------------------------------------------ basic

    async def basic_qos(
        self, prefetch_count: int = 0, *, prefetch_size: int = 0, global_qos: bool = False
    ) -> None:
        """Limit unacknowledged deliveries (per consumer, or per channel with ``global_qos``)."""
        await self._rpc(
            "basic_qos",
            prefetch_size=prefetch_size,
            prefetch_count=prefetch_count,
            global_qos=global_qos,
        )

    async def confirm_delivery(self) -> None:
        """Turn on publisher confirms: from now on :meth:`basic_publish` waits for each one."""
        if self._tracker is not None:
            return
        core = await self._ready("confirm_delivery")
        tracker = ConfirmTracker(self._on_settled)
        waiter: Waiter[frame.Method] = Waiter()
        core.add_on_return_callback(self._on_core_return)
        core.confirm_delivery(self._on_core_confirm, callback=waiter.set_result)
        self._tracker = tracker
        await self._wait(waiter)

    async def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | str,
        properties: BasicProperties | None = None,
        *,
        mandatory: bool = False,
    ) -> None:
        """Publish a message (a ``str`` body is sent as UTF-8).

        Without confirms it returns once the message is queued for sending. With confirms
        (:meth:`confirm_delivery`) it returns once the broker confirmed it, and raises
        ``NackError`` if the broker refused it or ``UnroutableError`` if it was
        ``mandatory`` and the broker could not route it. At most ``max_in_flight`` messages
        wait for confirms at a time; more publishers wait for a free slot first.

        Backpressure: it waits while the broker has blocked the connection, and while the
        connection's unsent output is above its ``write_high_water``. Otherwise it lets
        other tasks run only once every few publishes (it checks for cancellation every
        time), so that a burst of publishes leaves in few large writes.

        A publisher cancelled while it waits for its confirm does not learn the outcome;
        the message may or may not have been taken by the broker.
        """
        if isinstance(body, str):
            body = body.encode("utf-8")
        tracker = self._tracker
        connection = self._connection
        if tracker is None:
            core = self._ready_now()
            if core is None:
                core = await self._gate()
            else:
                await connection._checkpoint_if_cancelled()
            services = connection._services
            if services.writes_go_straight_out():
                # A lone publish (a request): written now, not by the callback runner.
                services.run_inline(
                    core.basic_publish, exchange, routing_key, body, properties, mandatory
                )
            else:
                core.basic_publish(exchange, routing_key, body, properties, mandatory)
            connection._credit -= 1 + (len(body) >> 11)
            return
        await self._take_slot()
        try:
            core = await self._gate()
        except BaseException:
            self._release_slot()
            raise
        core.basic_publish(exchange, routing_key, body, properties, mandatory)
        connection._credit -= 1 + (len(body) >> 11)
        waiter = _Confirm()
        seq = tracker.published(exchange, routing_key, body, properties, mandatory).sequence
        self._confirms[seq] = waiter
        connection._core.flush()
        try:
            await connection._services.wait(waiter)
        except BaseException as error:
            self._confirms.pop(seq, None)
            self._connection._seen(error)
            raise

    async def publish_batch(
        self, messages: Iterable[tuple[Any, ...]], *, mandatory: bool = False
    ) -> list[PublishOutcome]:
        """Publish many messages with confirms, then wait until the broker settled them all.

        The fastest way to publish with confirms: one task publishes, without a wait per
        message, while at most ``max_in_flight`` messages await their confirm (the window
        is shared with :meth:`basic_publish`). Turns confirms on if they are not yet.

        Args:
            messages: ``(exchange, routing_key, body)`` or
                ``(exchange, routing_key, body, properties)`` tuples.
            mandatory: publish them mandatory (unroutable ones are reported as such).

        Returns:
            One :class:`~amqp_core.confirms.PublishOutcome` per message, in order: ``ok``,
            or ``error`` (``NackError``, ``UnroutableError``, or ``RecoveryInterrupted`` if
            the connection was lost before the confirm).

        Raises:
            AMQPChannelError: the channel's close reason (or the connection's, an
                AMQPConnectionError), if it closes before every message was published.
        """
        await self.confirm_delivery()
        tracker = self._tracker
        assert tracker is not None
        batch = _Batch()
        outcomes: list[PublishOutcome] = []
        confirms = self._confirms
        connection = self._connection
        for message in messages:
            exchange, routing_key, body = message[0], message[1], message[2]
            properties = message[3] if len(message) > 3 else None
            if isinstance(body, str):
                body = body.encode("utf-8")
            if self._free_slots > 0 and not self._slot_waiters:
                self._free_slots -= 1
            else:
                await self._take_slot()
            core = self._ready_now()
            if core is None:
                try:
                    core = await self._gate(check_cancelled=False)
                except BaseException:
                    self._release_slot()
                    raise
            core.basic_publish(exchange, routing_key, body, properties, mandatory)
            connection._credit -= 1 + (len(body) >> 11)
            outcome = tracker.published(exchange, routing_key, body, properties, mandatory)
            confirms[outcome.sequence] = batch
            batch.remaining += 1
            outcomes.append(outcome)
        batch.complete = True
        if batch.remaining:
            connection._core.flush()
            # Settled by confirms, or failed all at once when the channel or connection ends.
            try:
                await connection._services.wait(batch.done)
            except BaseException as error:
                self._connection._seen(error)
                raise
        else:
            await anyio.lowlevel.checkpoint()
        return outcomes

    async def _gate(self, check_cancelled: bool = True) -> CoreChannel:
        """Wait as publishing must (see :meth:`basic_publish`); then the core channel."""
        connection = self._connection
        if connection._credit <= 0 or connection._blocked_reason is not None:
            await connection._publish_pause()
        elif check_cancelled:
            await connection._checkpoint_if_cancelled()
        core = self._core
        if core.is_open and self._close_reason is None and not connection._core.is_recovering:
            return core
        return await self._ready("publish")

    def _ready_now(self) -> CoreChannel | None:
        """The core channel if a publish may go at once (no pause, no wait); else None."""
        connection = self._connection
        core = self._core
        if (
            connection._credit > 0
            and connection._blocked_reason is None
            and core.is_open
            and self._close_reason is None
            and not connection._core.is_recovering
        ):
            return core
        return None

    async def _take_slot(self) -> None:
        """Take one of the ``max_in_flight`` confirm slots, waiting in turn for one."""
        if self._free_slots > 0 and not self._slot_waiters:
            self._free_slots -= 1
            return
        waiter: Waiter[None] = Waiter()
        self._slot_waiters.append(waiter)
        try:
            with self._connection._services.expecting_input():  # confirms free the slots
                await waiter.wait()
        except BaseException as error:
            if waiter.done and waiter.error is None:
                self._release_slot()  # handed a slot in the instant it was cancelled
            else:
                with contextlib.suppress(ValueError):
                    self._slot_waiters.remove(waiter)
            self._connection._seen(error)
            raise

    def _release_slot(self) -> None:
        waiters = self._slot_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done:
                waiter.set_result(None)  # the slot passes on
                return
        self._free_slots += 1

    def consume(
        self,
        queue: str,
        *,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> Consumer:
        """Return a consumer of ``queue``, to use with ``async with`` / ``async for``."""
        return Consumer(
            self,
            queue,
            auto_ack=auto_ack,
            exclusive=exclusive,
            consumer_tag=consumer_tag,
            arguments=arguments,
        )

    async def basic_get(self, queue: str, *, auto_ack: bool = False) -> Message | None:
        """Fetch one message from ``queue``; None if it is empty."""
        waiter: Waiter[Message | None] = Waiter()

        def on_message(
            _core: CoreChannel, method: Any, properties: BasicProperties, body: bytes
        ) -> None:
            message_count: int = method.message_count
            waiter.set_result(Message(self, method, properties, body, message_count=message_count))

        (await self._ready("basic_get")).basic_get(
            queue, on_message, auto_ack, on_empty=lambda _core: waiter.set_result(None)
        )
        result: Message | None = await self._wait(waiter)
        return result

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge a delivery (or all up to it with ``multiple``)."""
        (await self._ready("ack")).basic_ack(delivery_tag, multiple)
        await anyio.lowlevel.checkpoint()

    async def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Refuse a delivery (or all up to it with ``multiple``)."""
        (await self._ready("nack")).basic_nack(delivery_tag, multiple, requeue)
        await anyio.lowlevel.checkpoint()

    async def basic_reject(self, delivery_tag: int, requeue: bool = True) -> None:
        """Refuse one delivery."""
        (await self._ready("reject")).basic_reject(delivery_tag, requeue)
        await anyio.lowlevel.checkpoint()

    # ------------------------------------------------------------------ transactions

    async def tx_select(self) -> None:
        """Put the channel in transaction mode."""
        await self._rpc("tx_select")

    async def tx_commit(self) -> None:
        """Commit the current transaction."""
        await self._rpc("tx_commit")

    async def tx_rollback(self) -> None:
        """Roll back the current transaction."""
        await self._rpc("tx_rollback")
