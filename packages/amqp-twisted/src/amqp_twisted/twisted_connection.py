"""``TwistedProtocolConnection``: an AMQP connection as a Twisted protocol, with Deferreds.

The module path mirrors pika's ``pika.adapters.twisted_connection``. Twisted connects the
stream (``ClientCreator``, endpoints, ``connectTCP``/``connectSSL``); the protocol hands it to
amqp_core's connection (``external_stream=True``), which runs the AMQP handshake and everything
after it. This module turns amqp_core's callbacks into Deferreds and makes no AMQP decision:
confirms are matched by amqp_core's :class:`~amqp_core.confirms.ConfirmTracker`. With a
recovery policy, the reconnections are amqp_core's too; the reactor opens them
(:mod:`amqp_twisted._reactor`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from twisted.internet import defer, interfaces
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import classImplements  # type: ignore[import-untyped]

from amqp_core._types import Buffer
from amqp_core.channel import Channel
from amqp_core.confirms import ConfirmTracker, PublishOutcome
from amqp_core.connection import Connection
from amqp_core.data import FieldValue
from amqp_core.exceptions import ConsumerCancelled, OutputBufferFullError, RecoveryInterrupted
from amqp_core.exchange_type import ExchangeType
from amqp_core.parameters import Parameters
from amqp_core.recovery import ConnectionLost, Recovered, RecoveryEvent
from amqp_core.transport import AddressInfo, Cancellable, StreamListener, StreamSettings, Transport
from amqp_twisted import _reactor

__all__ = (
    "ClosableDeferredQueue",
    "ReceivedMessage",
    "TwistedChannel",
    "TwistedConnection",
    "TwistedProtocolConnection",
)

_T = TypeVar("_T")
_log = Logger()

#: The default :attr:`TwistedChannel.confirm_window`.
DEFAULT_CONFIRM_WINDOW = 10_000
# publish_batch publishes at most this many messages per reactor turn: the output of one chunk
# leaves (and the broker works on it) while the next is encoded, and the reactor serves its
# other work in between.
_BATCH_CHUNK = 1000
# What a message iterator gives when it is exhausted.
_DONE: Any = object()


class ReceivedMessage(NamedTuple):
    """A message from a consumer queue, ``basic_get`` or a return (pika's namedtuple)."""

    channel: TwistedChannel
    method: Any
    properties: Any
    body: bytes


class ClosableDeferredQueue(defer.DeferredQueue[_T]):
    """A ``DeferredQueue`` that can be closed: then every ``get`` fails with the reason.

    Attributes:
        closed: the reason it was closed, or None while open.
    """

    def __init__(self, size: int | None = None, backlog: int | None = None) -> None:
        super().__init__(size, backlog)
        self.closed: BaseException | None = None

    # put and get are DeferredQueue's, inlined: they run once per delivery.

    def put(self, obj: _T) -> None:
        """Add ``obj``; ignored once the queue is closed.

        Raises:
            QueueOverflow: the queue holds ``size`` items already.
        """
        if self.closed is not None:
            return
        if self.waiting:
            self.waiting.pop(0).callback(obj)
        elif self.size is None or len(self.pending) < self.size:
            self.pending.append(obj)
        else:
            raise defer.QueueOverflow()

    def get(self) -> defer.Deferred[_T]:
        """Return a Deferred of the next item; it fails with the reason once closed.

        Raises:
            QueueUnderflow: ``backlog`` calls wait already.
        """
        if self.closed is not None:
            return defer.fail(self.closed)
        if self.pending:
            return defer.succeed(self.pending.pop(0))
        if self.backlog is not None and len(self.waiting) >= self.backlog:
            raise defer.QueueUnderflow()
        waiter: defer.Deferred[_T] = defer.Deferred(canceller=self._cancelGet)
        self.waiting.append(waiter)
        return waiter

    def close(self, reason: BaseException) -> None:
        """Close: waiting ``get`` calls fail with ``reason``, queued items are dropped."""
        self.closed = reason
        while self.waiting:
            self.waiting.pop().errback(reason)
        self.pending.clear()


class _Timer:
    __slots__ = ("_call",)

    def __init__(self, call: Any) -> None:
        self._call = call

    def cancel(self) -> None:
        if self._call.active():
            self._call.cancel()


class _ReactorServices:
    """amqp_core's I/O services on a reactor; Twisted itself connects the first stream."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def random(self) -> float:
        """Return a float in ``[0, 1)``: the jitter source of connection recovery."""
        import random  # only recovery's jitter needs it: not loaded by every program

        return random.random()

    def now(self) -> float:
        return float(self.reactor.seconds())

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        return _Timer(self.reactor.callLater(max(delay, 0.0), callback))

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        self.reactor.callFromThread(callback)

    def getaddrinfo(
        self,
        host: str,
        port: int,
        on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
    ) -> Cancellable:
        # Only for the reconnections of a recovery: Twisted connected the first stream.
        return _reactor.resolve(self.reactor, host, port, on_done)

    def connect_stream(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> Cancellable:
        # Only for the reconnections of a recovery: Twisted connected the first stream.
        return _reactor.connect(self.reactor, settings, listener, on_done, _TwistedTransport)


# Twisted's FileDescriptor.bufferSize: above it, a transport pauses its producer.
_TWISTED_BUFFER_SIZE = 64 * 1024


class _TwistedTransport:
    """amqp_core's Transport over a Twisted transport.

    Twisted does not tell how much it buffers, only when to pause (as a push producer: it holds
    more than its ``bufferSize`` then) and when to resume (its buffer is empty then). While
    paused, the transport reports the most Twisted may hold: a ``bufferSize`` and everything
    written since the pause. amqp_core counts that against ``max_unsent_bytes`` and stops
    writing above its WRITE_HIGH_WATER until the resume.
    """

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        # A socket transport of Twisted's (a FileDescriptor) buffers what is written until
        # the reactor's next turn calls doWrite(); calling it here sends a request at once.
        # Other transports (TLS wrappers, test doubles) have no doWrite and keep their way.
        self._send_now: Callable[[], object] | None = getattr(transport, "doWrite", None)
        self._paused = False
        # Bytes written since the last write made while not paused (that one included).
        self._since_unpaused = 0
        self.listener: StreamListener | None = None
        transport.registerProducer(self, True)
        self._registered = True

    def write(self, data: Buffer) -> None:
        chunk = data if type(data) is bytes else bytes(data)
        if not self._paused:
            self._since_unpaused = 0
        self._since_unpaused += len(chunk)
        transport = self._transport
        transport.write(chunk)
        send_now = self._send_now
        # Not while Twisted pauses us (its doWrite would resume us, inside this write), nor
        # once the transport is closing (its doWrite would finish the close, for the
        # reactor to carry out) or closed: the reactor's turn does those.
        if (
            send_now is not None
            and not self._paused
            and transport.connected
            and not transport.disconnecting
        ):
            # What it returns is an error the reactor meets too: what failed to go stays
            # buffered, and the transport stays registered for writing.
            send_now()

    def write_buffer_size(self) -> int:
        if not self._paused:
            # Twisted pauses us as soon as it holds more than its bufferSize.
            return 0
        return _TWISTED_BUFFER_SIZE + self._since_unpaused

    def close(self) -> None:
        # A transport with a registered producer (TLS's in particular) waits for it to go
        # away before it closes.
        self._unregister()
        self._transport.loseConnection()

    def abort(self) -> None:
        self._unregister()
        self._transport.abortConnection()

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            self._transport.unregisterProducer()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        if self.listener is not None:
            self.listener.write_drained()

    def stopProducing(self) -> None:
        self._paused = False


# Twisted pauses and resumes a registered producer; say what the transport wrapper is.
classImplements(_TwistedTransport, interfaces.IPushProducer)


class _ProtocolConnection(Connection):
    """amqp_core's connection over a stream Twisted has connected."""


class _Batch:
    """One :meth:`TwistedChannel.publish_batch`: publishes in chunks, fires when all settled.

    It publishes up to ``_BATCH_CHUNK`` messages per reactor turn while the channel has fewer
    than ``confirm_window`` unconfirmed; with the window full it goes on once half of it is
    confirmed (not at every ack). Refused for a full output buffer, it goes on from the
    connection's output-drained callback; while the connection recovers, once it is back.
    """

    __slots__ = (
        "channel",
        "complete",
        "deferred",
        "held",
        "mandatory",
        "messages",
        "outcomes",
        "remaining",
        "scheduled",
        "waiting",
    )

    def __init__(
        self, channel: TwistedChannel, messages: Iterator[tuple[Any, ...]], mandatory: bool
    ) -> None:
        self.channel = channel
        self.messages = messages
        self.mandatory = mandatory
        self.outcomes: list[PublishOutcome] = []
        self.remaining = 0  # published, not yet settled
        self.complete = False  # every message is published
        self.held: Any = None  # a message the output buffer refused, published first
        self.scheduled = False  # a run is due on the reactor
        self.waiting = ""  # what a stopped batch waits for: "window", "drain", "recovery"
        self.deferred: defer.Deferred[list[PublishOutcome]] = defer.Deferred()

    def schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            self.channel._get_reactor().callLater(0, self.run)

    def run(self) -> None:
        self.scheduled = False
        self.waiting = ""
        if self.deferred.called:
            return
        channel = self.channel
        if self._recovering():
            self.waiting = "recovery"
            return
        tracker = channel._tracker
        assert tracker is not None
        room = min(_BATCH_CHUNK, channel.confirm_window - tracker.unsettled)
        publish = channel._channel.basic_publish
        published = tracker.published
        waiters = channel._publishes
        outcomes = self.outcomes
        messages = self.messages
        mandatory = self.mandatory
        sent = 0
        while True:
            message = self.held
            if message is None:
                message = next(messages, _DONE)
                if message is _DONE:
                    self.complete = True
                    break
            else:
                self.held = None
            if sent >= room:
                # Read ahead, so that a batch whose last message went is complete.
                self.held = message
                break
            exchange, routing_key, body = message[0], message[1], message[2]
            properties = message[3] if len(message) > 3 else None
            try:
                publish(exchange, routing_key, body, properties, mandatory)
            except OutputBufferFullError:
                self.held = message
                self.waiting = "drain"
                channel.connection.add_on_output_drained_callback(self._drained)
                return
            except Exception as exc:
                if self._recovering():
                    # Refused for the recovery under way: go on once it is over.
                    self.held = message
                    self.waiting = "recovery"
                    return
                self.fail(exc)
                return
            if type(body) is not bytes:
                body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
            outcome = published(exchange, routing_key, body, properties, mandatory)
            waiters[outcome.sequence] = self
            outcomes.append(outcome)
            sent += 1
        self.remaining += sent
        if self.complete:
            self.finish()
        elif sent == _BATCH_CHUNK:
            self.schedule()
        else:
            # The window is full: settle() goes on when half of it is confirmed.
            self.waiting = "window"

    def _recovering(self) -> bool:
        return self.channel.connection.is_recovering

    def _drained(self, connection: Connection) -> None:
        connection.remove_on_output_drained_callback(self._drained)
        if self.waiting == "drain":
            self.schedule()

    def settle(self, outcome: PublishOutcome) -> None:
        self.remaining -= 1
        if self.complete:
            self.finish()
        elif self.waiting == "window":
            self.window_moved()

    def window_moved(self) -> None:
        """A confirm came (maybe of a basic_publish): go on once half the window is free."""
        tracker = self.channel._tracker
        assert tracker is not None
        if tracker.unsettled <= tracker.refill_level(self.channel.confirm_window):
            self.schedule()

    def recovered(self) -> None:
        if self.waiting == "recovery":
            self.schedule()

    def finish(self) -> None:
        if not self.remaining and not self.deferred.called:
            self.channel._batches.discard(self)
            self.deferred.callback(self.outcomes)

    def fail(self, reason: BaseException) -> None:
        if not self.deferred.called:
            self.channel._batches.discard(self)
            self.deferred.errback(reason)


class TwistedChannel:
    """A channel whose methods return Deferreds (pika's ``TwistedChannel``).

    RPC methods fire with what the callback-style method's callback gets (a ``frame.Method``);
    every call still pending when the channel closes fails with the close reason
    (``ChannelClosedByBroker``, ``ChannelClosedByClient`` ...).

    Attributes:
        confirm_window: the most unconfirmed messages :meth:`publish_batch` lets be
            (``DEFAULT_CONFIRM_WINDOW``, 10,000, unless set).

    Args:
        channel: The callback-style channel to wrap.
        custom_reactor: The reactor :meth:`publish_batch` runs on; by default Twisted's
            global one (``TwistedProtocolConnection.channel`` passes its own).
    """

    def __init__(self, channel: Channel, custom_reactor: Any = None) -> None:
        self._channel = channel
        self._reactor = custom_reactor
        self.confirm_window = DEFAULT_CONFIRM_WINDOW
        self._batches: set[_Batch] = set()
        self._calls: set[defer.Deferred[Any]] = set()
        self._consumers: dict[str, ClosableDeferredQueue[ReceivedMessage]] = {}
        self._auto_ack: set[str] = set()
        self._tracker: ConfirmTracker | None = None
        # The Deferred of a basic_publish, or the _Batch of a publish_batch, by sequence number.
        self._publishes: dict[int, defer.Deferred[None] | _Batch] = {}
        self._on_return: list[Callable[[ReceivedMessage], None]] = []
        self._closed: defer.Deferred[Any] | None = None
        channel.add_on_close_callback(self._on_closed)
        channel.add_on_cancel_callback(self._on_broker_cancel)
        channel.add_on_return_callback(self._on_returned)

    def __repr__(self) -> str:
        return f"<TwistedChannel {self._channel!r}>"

    # -- properties

    @property
    def channel_number(self) -> int:
        """The channel's number."""
        return self._channel.channel_number

    @property
    def connection(self) -> Connection:
        """The callback-style connection the channel belongs to."""
        return self._channel.connection

    @property
    def is_closed(self) -> bool:
        """True once closed."""
        return self._channel.is_closed

    @property
    def is_closing(self) -> bool:
        """True while closing."""
        return self._channel.is_closing

    @property
    def is_open(self) -> bool:
        """True while open."""
        return self._channel.is_open

    @property
    def flow_active(self) -> bool:
        """Whether the broker lets the channel publish."""
        return self._channel.flow_active

    @property
    def consumer_tags(self) -> list[str]:
        """The tags of the channel's consumers."""
        return self._channel.consumer_tags

    # -- plumbing

    def _get_reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    def _call(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> defer.Deferred[Any]:
        deferred: defer.Deferred[Any] = defer.Deferred()
        self._calls.add(deferred)

        def done(*result: Any) -> None:
            if deferred in self._calls:
                self._calls.discard(deferred)
                deferred.callback(result[0] if len(result) == 1 else result)

        try:
            getattr(self._channel, name)(*args, callback=done, **kwargs)
        except Exception as exc:
            self._calls.discard(deferred)
            return defer.fail(exc)
        return deferred

    def callback_deferred(self, deferred: defer.Deferred[Any], replies: Sequence[Any]) -> None:
        """Fire ``deferred`` with the first of ``replies`` (method classes) the channel gets."""
        self._channel.add_callback(deferred.callback, replies, one_shot=True)

    def _on_closed(self, channel: Channel, reason: BaseException) -> None:
        calls, self._calls = self._calls, set()
        for deferred in calls:
            deferred.errback(reason)
        consumers, self._consumers = self._consumers, {}
        for queue in consumers.values():
            queue.close(reason)
        for batch in list(self._batches):
            if not batch.complete:
                # Not every message could be published: the batch fails with the reason.
                batch.fail(reason)
        if self._tracker is not None:
            self._tracker.fail_all(reason)
        if self._closed is not None:
            closed, self._closed = self._closed, None
            closed.callback(reason)

    def _on_connection_lost(self, reason: BaseException) -> None:
        # The connection is being recovered: the replies waited for will not come, and the
        # publishes without a confirm may or may not have reached the broker. Called before
        # the core reports those as nacked, so they fail with the clearer error.
        calls, self._calls = self._calls, set()
        for deferred in calls:
            deferred.errback(
                RecoveryInterrupted(
                    f"the connection was lost before the reply came ({reason!r}); the broker "
                    "may or may not have carried the request out"
                )
            )
        if self._tracker is not None:
            self._tracker.fail_all(
                RecoveryInterrupted(
                    f"the connection was lost before the broker confirmed the message "
                    f"({reason!r}); it may or may not have been received"
                )
            )
        for tag, queue in self._consumers.items():
            if tag not in self._auto_ack:
                # Not yet taken by the application: the broker requeues them and their tags
                # are stale; they come again after the recovery.
                queue.pending.clear()

    def _on_recovered(self) -> None:
        for batch in list(self._batches):
            batch.recovered()

    def _on_broker_cancel(self, method_frame: Any) -> None:
        queue = self._consumers.pop(method_frame.method.consumer_tag, None)
        if queue is not None:
            queue.close(ConsumerCancelled(method_frame))

    def _on_returned(self, channel: Channel, method: Any, properties: Any, body: bytes) -> None:
        if self._tracker is not None:
            self._tracker.on_return(method, properties, body)
        message = ReceivedMessage(self, method, properties, body)
        for callback in list(self._on_return):
            callback(message)

    def _on_settled(self, outcome: PublishOutcome) -> None:
        deferred = self._publishes.pop(outcome.sequence, None)
        if deferred is None:
            return
        if type(deferred) is _Batch:
            deferred.settle(outcome)
            return
        assert isinstance(deferred, defer.Deferred)
        error = outcome.error
        if error is None:
            deferred.callback(None)
        else:
            deferred.errback(error)
        for batch in self._batches:
            # A batch may wait for a window that basic_publish calls hold.
            if batch.waiting == "window":
                batch.window_moved()

    # -- methods with their own shape

    def add_on_return_callback(self, callback: Callable[[ReceivedMessage], None]) -> None:
        """Call ``callback(ReceivedMessage)`` for every message the broker returns."""
        self._on_return.append(callback)

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Acknowledge a delivery (no reply, so no Deferred)."""
        self._channel.basic_ack(delivery_tag, multiple)

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Refuse a delivery (no reply, so no Deferred)."""
        self._channel.basic_nack(delivery_tag, multiple, requeue)

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        """Refuse one delivery (no reply, so no Deferred)."""
        self._channel.basic_reject(delivery_tag, requeue)

    def basic_consume(
        self,
        queue: str,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict[str, Any] | None = None,
        *,
        on_message: Callable[[ReceivedMessage], object] | None = None,
    ) -> defer.Deferred[tuple[ClosableDeferredQueue[ReceivedMessage], str]]:
        """Start a consumer; fire with ``(ClosableDeferredQueue, consumer_tag)``.

        The queue receives a :class:`ReceivedMessage` per delivery; it is closed with
        ``ConsumerCancelled`` when the consumer is cancelled (by us or by the broker) and with
        the close reason when the channel closes.

        Args:
            queue: the queue to consume from.
            auto_ack: let the broker count messages acknowledged once sent.
            exclusive: ask to be the queue's only consumer.
            consumer_tag: the tag (the broker picks one if None).
            arguments: the consumer's arguments (``x-priority`` ...).
            on_message: beyond pika, the fast way: ``on_message(ReceivedMessage)`` is called
                for each delivery as it arrives, with no Deferred per message; the queue then
                stays empty, but is closed all the same when the consumer ends. An exception
                it raises is logged and the consumer goes on.
        """
        messages: ClosableDeferredQueue[ReceivedMessage] = ClosableDeferredQueue()

        if on_message is None:

            def deliver(channel: Channel, method: Any, properties: Any, body: bytes) -> None:
                messages.put(ReceivedMessage(self, method, properties, body))

        else:
            callback = on_message

            def deliver(channel: Channel, method: Any, properties: Any, body: bytes) -> None:
                try:
                    callback(ReceivedMessage(self, method, properties, body))
                except Exception:
                    # Raised into the stream's dataReceived it would drop the connection.
                    _log.failure("on_message of consumer {tag} raised", tag=method.consumer_tag)

        kwargs: dict[str, Any] = {"auto_ack": auto_ack, "exclusive": exclusive}
        if consumer_tag is not None:
            kwargs["consumer_tag"] = consumer_tag
        if arguments is not None:
            kwargs["arguments"] = arguments
        deferred = self._call("basic_consume", (queue, deliver), kwargs)

        def started(ok: Any) -> tuple[ClosableDeferredQueue[ReceivedMessage], str]:
            tag: str = ok.method.consumer_tag
            self._consumers[tag] = messages
            if auto_ack:
                self._auto_ack.add(tag)
            return messages, tag

        return deferred.addCallback(started)

    def basic_cancel(self, consumer_tag: str = "") -> defer.Deferred[Any]:
        """Cancel a consumer; its queue is closed with ``ConsumerCancelled``."""
        queue = self._consumers.pop(consumer_tag, None)
        self._auto_ack.discard(consumer_tag)
        deferred = self._call("basic_cancel", (consumer_tag,), {})
        if queue is not None:
            queue.close(ConsumerCancelled(consumer_tag))
        return deferred

    def basic_get(
        self, queue: str, auto_ack: bool = False
    ) -> defer.Deferred[ReceivedMessage | None]:
        """Fetch one message: fire with a :class:`ReceivedMessage`, or None if it is empty."""
        deferred: defer.Deferred[ReceivedMessage | None] = defer.Deferred()
        self._calls.add(deferred)

        def got(channel: Channel, method: Any, properties: Any, body: bytes) -> None:
            self._calls.discard(deferred)
            deferred.callback(ReceivedMessage(self, method, properties, body))

        def empty(channel: Channel) -> None:
            self._calls.discard(deferred)
            deferred.callback(None)

        try:
            self._channel.basic_get(queue, got, auto_ack, on_empty=empty)
        except Exception as exc:
            self._calls.discard(deferred)
            return defer.fail(exc)
        return deferred

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: str | bytes,
        properties: Any = None,
        mandatory: bool = False,
    ) -> defer.Deferred[None]:
        """Publish; fire at once, or with confirms on, once the broker confirms the message.

        With confirms, the Deferred fails with ``NackError`` for a nack and with
        ``UnroutableError`` for a mandatory message the broker returned.
        """
        try:
            self._channel.basic_publish(exchange, routing_key, body, properties, mandatory)
        except Exception as exc:
            return defer.fail(exc)
        if self._tracker is None:
            return defer.succeed(None)
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        outcome = self._tracker.published(exchange, routing_key, data, properties, mandatory)
        deferred: defer.Deferred[None] = defer.Deferred()
        self._publishes[outcome.sequence] = deferred
        return deferred

    def confirm_delivery(self) -> defer.Deferred[Any]:
        """Turn on publisher confirms: from then on ``basic_publish`` waits for them."""
        if self._tracker is None:
            self._tracker = ConfirmTracker(self._on_settled)
        tracker = self._tracker
        return self._call("confirm_delivery", (tracker.on_confirm,), {})

    def publish_batch(
        self, messages: Iterable[tuple[Any, ...]], mandatory: bool = False
    ) -> defer.Deferred[list[PublishOutcome]]:
        """Publish many messages with confirms; fire once the broker settled them all.

        The fastest way to publish with confirms: no Deferred per message. The messages are
        published in chunks, one per reactor turn, with at most :attr:`confirm_window`
        unconfirmed (counting those of :meth:`basic_publish`); a full output buffer
        (``max_unsent_bytes``) or a recovering connection makes it wait, then go on. Turns
        confirms on if they are not yet.

        Args:
            messages: ``(exchange, routing_key, body)`` or
                ``(exchange, routing_key, body, properties)`` tuples (any iterable: it is
                read as the batch goes).
            mandatory: publish them mandatory (unroutable ones are reported as such).

        Returns:
            A Deferred of one :class:`~amqp_core.confirms.PublishOutcome` per message, in
            order: ``ok``, or ``error`` (``NackError``, ``UnroutableError``, or
            ``RecoveryInterrupted`` if the connection was lost before the confirm). It fails
            with the channel's close reason if the channel closes before every message was
            published, and with the error of a message that could not be published
            (``ChannelWrongStateError`` ...).
        """
        if self._tracker is None:
            selected = self.confirm_delivery()
            if selected.called:
                # Refused at once (the channel is not open): that failure is the batch's.
                return selected
            # Should the channel close before Confirm.SelectOk, the batch fails with the
            # reason (see _on_closed): reported there, not twice.
            selected.addErrback(lambda _failure: None)
        batch = _Batch(self, iter(messages), mandatory)
        self._batches.add(batch)
        batch.run()
        return batch.deferred

    def close(
        self, reply_code: int = 0, reply_text: str = "Normal shutdown"
    ) -> defer.Deferred[Any]:
        """Close the channel; fire with the close reason once it is closed."""
        if self._closed is None:
            self._closed = defer.Deferred()
        closed = self._closed
        try:
            self._channel.close(reply_code, reply_text)
        except Exception as exc:
            self._closed = None
            return defer.fail(exc)
        return closed

    def open(self) -> None:
        """Open the channel again (pika's ``open``)."""
        self._channel.open()

    # -- plain RPC methods: a Deferred of the reply frame

    def basic_qos(
        self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False
    ) -> defer.Deferred[Any]:
        """Set the prefetch window; fire with ``Basic.QosOk``."""
        return self._call("basic_qos", (prefetch_size, prefetch_count, global_qos), {})

    def basic_recover(self, requeue: bool = False) -> defer.Deferred[Any]:
        """Ask for unacknowledged messages again; fire with ``Basic.RecoverOk``."""
        return self._call("basic_recover", (requeue,), {})

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> defer.Deferred[Any]:
        """Bind an exchange to an exchange; fire with ``Exchange.BindOk``."""
        return self._call("exchange_bind", (destination, source, routing_key, arguments), {})

    def exchange_declare(
        self,
        exchange: str,
        exchange_type: ExchangeType | str = ExchangeType.direct,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> defer.Deferred[Any]:
        """Declare an exchange; fire with ``Exchange.DeclareOk``."""
        args = (exchange, exchange_type, passive, durable, auto_delete, internal, arguments)
        return self._call("exchange_declare", args, {})

    def exchange_delete(
        self, exchange: str | None = None, if_unused: bool = False
    ) -> defer.Deferred[Any]:
        """Delete an exchange; fire with ``Exchange.DeleteOk``."""
        return self._call("exchange_delete", (exchange, if_unused), {})

    def exchange_unbind(
        self,
        destination: str | None = None,
        source: str | None = None,
        routing_key: str = "",
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> defer.Deferred[Any]:
        """Remove an exchange-to-exchange binding; fire with ``Exchange.UnbindOk``."""
        return self._call("exchange_unbind", (destination, source, routing_key, arguments), {})

    def flow(self, active: bool) -> defer.Deferred[Any]:
        """``Channel.Flow``; fire with the broker's answer (a bool)."""
        return self._call("flow", (active,), {})

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> defer.Deferred[Any]:
        """Bind a queue to an exchange; fire with ``Queue.BindOk``."""
        return self._call("queue_bind", (queue, exchange, routing_key, arguments), {})

    def queue_declare(
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> defer.Deferred[Any]:
        """Declare a queue; fire with ``Queue.DeclareOk`` (``method.queue`` is its name)."""
        args = (queue, passive, durable, exclusive, auto_delete, arguments)
        return self._call("queue_declare", args, {})

    def queue_delete(
        self, queue: str, if_unused: bool = False, if_empty: bool = False
    ) -> defer.Deferred[Any]:
        """Delete a queue; fire with ``Queue.DeleteOk``."""
        return self._call("queue_delete", (queue, if_unused, if_empty), {})

    def queue_purge(self, queue: str) -> defer.Deferred[Any]:
        """Drop a queue's messages; fire with ``Queue.PurgeOk``."""
        return self._call("queue_purge", (queue,), {})

    def queue_unbind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str | None = None,
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> defer.Deferred[Any]:
        """Remove a queue binding; fire with ``Queue.UnbindOk``."""
        return self._call("queue_unbind", (queue, exchange, routing_key, arguments), {})

    def tx_commit(self) -> defer.Deferred[Any]:
        """``Tx.Commit``."""
        return self._call("tx_commit", (), {})

    def tx_rollback(self) -> defer.Deferred[Any]:
        """``Tx.Rollback``."""
        return self._call("tx_rollback", (), {})

    def tx_select(self) -> defer.Deferred[Any]:
        """``Tx.Select``."""
        return self._call("tx_select", (), {})


class TwistedProtocolConnection(Protocol):
    """An AMQP connection as a Twisted protocol (pika's ``TwistedProtocolConnection``).

    Connect it with Twisted (``ClientCreator(reactor, TwistedProtocolConnection, params)``,
    an endpoint and ``connectProtocol`` ...): the host, port and TLS settings of
    ``parameters`` are not used for that first connection, the rest (credentials, virtual
    host, heartbeat, frame size ...) is.

    With a ``RecoveryPolicy`` in ``parameters``, a lost connection is recovered by amqp_core:
    it reconnects, when and where it decides, to the host and port (and TLS settings) of
    ``parameters`` (each of them in turn, given a sequence), through the reactor, and restores
    the channels, their consumers and the declared topology. The ``TwistedChannel`` objects
    and their consumer queues stay valid; calls waiting for a reply when the connection was
    lost, and publishes waiting for a confirm, fail with ``RecoveryInterrupted``. The protocol
    instance keeps its first transport: the new streams are the adapter's own.

    Attributes:
        ready: fires with the protocol once the AMQP connection is open, or fails with the
            reason it could not be opened.
        closed: once ready, a Deferred that fires with the close reason when the connection
            closes (``ConnectionClosedByClient``, ``ConnectionClosedByBroker``,
            ``StreamLostError`` ...).

    Args:
        parameters: The connection's parameters (defaults if None); a sequence of them gives
            the hosts a recovery tries, in turn.
        custom_reactor: The reactor to use; by default Twisted's global one.
    """

    def __init__(
        self,
        parameters: Parameters | Sequence[Parameters] | None = None,
        custom_reactor: Any = None,
    ) -> None:
        if custom_reactor is None:
            from twisted.internet import reactor as custom_reactor
        self._reactor = custom_reactor
        self.ready: defer.Deferred[Any] | None = defer.Deferred()
        self.ready.addCallback(lambda _: self.connectionReady())
        self.closed: defer.Deferred[Any] | None = None
        self._listener: StreamListener | None = None
        self._transport: _TwistedTransport | None = None
        self._channels: dict[int, TwistedChannel] = {}
        self._recovery_listeners: list[Callable[[TwistedProtocolConnection, Any], None]] = []
        self._impl = _ProtocolConnection(
            parameters,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_close,
            io_services=_ReactorServices(custom_reactor),
            external_stream=True,
        )
        self._impl.add_recovery_listener(self._on_recovery_event)

    # -- Twisted's protocol hooks

    def connectionMade(self) -> None:
        """Hand the connected stream to amqp_core, which starts the AMQP handshake."""
        transport = _TwistedTransport(self.transport)
        self._transport = transport
        transport.listener = self._listener = self._impl.attach_stream(transport)

    def dataReceived(self, data: bytes) -> None:
        """Feed what arrived to amqp_core."""
        if self._listener is not None:
            self._listener.data_received(data)

    def connectionLost(self, reason: Failure = ConnectionDone) -> None:  # type: ignore[assignment]
        """Tell amqp_core that the stream ended (an orderly end, or why not)."""
        listener, self._listener = self._listener, None
        if self._transport is not None:
            self._transport.listener = None
        if listener is not None:
            error = None if isinstance(reason.value, ConnectionDone) else reason.value
            listener.connection_lost(error)

    def connectionReady(self) -> TwistedProtocolConnection:
        """Called once the AMQP connection is open; ``ready`` fires with what it returns."""
        return self

    # -- amqp_core's callbacks

    def _on_open(self, connection: Connection) -> None:
        self.closed = defer.Deferred()
        ready, self.ready = self.ready, None
        if ready is not None:
            ready.callback(None)

    def _on_open_error(self, connection: Connection, error: BaseException) -> None:
        ready, self.ready = self.ready, None
        if ready is not None:
            ready.errback(error)

    def _on_recovery_event(self, connection: Connection, event: RecoveryEvent) -> None:
        if isinstance(event, ConnectionLost):
            for channel in list(self._channels.values()):
                channel._on_connection_lost(event.reason)
        elif isinstance(event, Recovered):
            for channel in list(self._channels.values()):
                channel._on_recovered()
        for callback in list(self._recovery_listeners):
            callback(self, event)

    def _on_close(self, connection: Connection, reason: BaseException) -> None:
        closed, self.closed = self.closed, None
        if closed is not None:
            closed.callback(reason)

    # -- the connection's API

    @property
    def is_open(self) -> bool:
        """True while the AMQP connection is open."""
        return self._impl.is_open

    @property
    def is_closed(self) -> bool:
        """True once the AMQP connection is closed."""
        return self._impl.is_closed

    @property
    def is_recovering(self) -> bool:
        """True from a loss until the connection and its topology are restored (or given up)."""
        return self._impl.is_recovering

    def add_recovery_listener(
        self, callback: Callable[[TwistedProtocolConnection, RecoveryEvent], None]
    ) -> None:
        """Call ``callback(connection, event)`` for every recovery event.

        The events are those of :mod:`amqp_core.recovery` (``ConnectionLost``,
        ``Recovering``, ``Recovered``, ``RecoveryFailed``, ``StaleDeliveryTag`` ...); only a
        connection whose parameters carry a ``RecoveryPolicy`` recovers.
        """
        self._recovery_listeners.append(callback)

    def remove_recovery_listener(
        self, callback: Callable[[TwistedProtocolConnection, RecoveryEvent], None]
    ) -> bool:
        """Forget a recovery listener; return whether it was registered."""
        if callback in self._recovery_listeners:
            self._recovery_listeners.remove(callback)
            return True
        return False

    def add_on_connection_blocked_callback(
        self, callback: Callable[[TwistedProtocolConnection, Any], None]
    ) -> None:
        """Call ``callback(connection, frame.Method[Connection.Blocked])`` when blocked."""
        self._impl.add_on_connection_blocked_callback(lambda _, frame: callback(self, frame))

    def add_on_connection_unblocked_callback(
        self, callback: Callable[[TwistedProtocolConnection, Any], None]
    ) -> None:
        """Call ``callback(connection, frame.Method[Connection.Unblocked])`` when unblocked."""
        self._impl.add_on_connection_unblocked_callback(lambda _, frame: callback(self, frame))

    def add_on_output_drained_callback(
        self, callback: Callable[[TwistedProtocolConnection], None]
    ) -> None:
        """Call ``callback(connection)`` when publishing may resume after a refusal.

        Once a ``basic_publish`` Deferred failed with
        :class:`~amqp_core.exceptions.OutputBufferFullError` (the connection holds
        ``max_unsent_bytes`` of output the broker has not taken), every publish fails so
        until the output has drained to half of that; then this callback runs.
        """
        self._impl.add_on_output_drained_callback(lambda _: callback(self))

    def channel(self, channel_number: int | None = None) -> defer.Deferred[TwistedChannel]:
        """Open a channel; fire with its :class:`TwistedChannel` once the broker confirms it."""
        deferred: defer.Deferred[TwistedChannel] = defer.Deferred()

        def opened(channel: Channel) -> None:
            channel.remove_on_close_callback(failed)
            wrapper = TwistedChannel(channel, self._reactor)
            number = channel.channel_number
            self._channels[number] = wrapper

            def forget(_channel: Channel, _reason: BaseException) -> None:
                if self._channels.get(number) is wrapper:
                    del self._channels[number]

            channel.add_on_close_callback(forget)
            deferred.callback(wrapper)

        def failed(channel: Channel, reason: BaseException) -> None:
            if not deferred.called:
                deferred.errback(reason)

        try:
            channel = self._impl.channel(channel_number, on_open_callback=opened)
        except Exception as exc:
            return defer.fail(exc)
        channel.add_on_close_callback(failed)
        return deferred

    def close(
        self, reply_code: int = 200, reply_text: str = "Normal shutdown"
    ) -> defer.Deferred[Any] | None:
        """Close the connection; return ``closed`` (fires with the reason), None if closed."""
        if not self._impl.is_closing and not self._impl.is_closed:
            self._impl.close(reply_code, reply_text)
        return self.closed


#: pika's other name for the protocol.
TwistedConnection = TwistedProtocolConnection
