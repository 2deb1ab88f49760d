"""The callback-style ``Channel`` (pika's ``pika.channel.Channel``).

A channel is created by :meth:`amqp_core.connection.Connection.channel`. Every method keeps
pika's signature, defaults and callback shapes; RPC callbacks receive a
:class:`amqp_core.frame.Method` holding the reply. Passing ``callback=None`` to a method whose
AMQP request has a ``nowait`` flag sends it with ``nowait`` set, as pika does.

Synchronous requests are serialized per channel by the engine (one in flight, later commands
held in order), so replies arrive in the order the requests were made; the channel matches
them to their callbacks first in, first out.

Differences from pika (see ``docs/migration.md``): the default consumer tag is
``ctag<channel>.<n>`` (deterministic, no uuid); acknowledging a delivery tag the channel does
not hold raises :class:`~amqp_core.exceptions.LocalProtocolError` (a ``ChannelWrongStateError``
is not involved) instead of letting the broker close the channel with 406.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

from amqp_core import events as ev
from amqp_core import frame, spec
from amqp_core.amqp_object import Method
from amqp_core.data import FieldValue
from amqp_core.engine import _REPLIES, Engine
from amqp_core.exceptions import (
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    DuplicateConsumerTag,
    DuplicateGetOkCallback,
    InvalidChannelNumber,
    MethodNotImplemented,
)
from amqp_core.exchange_type import ExchangeType

if TYPE_CHECKING:
    from amqp_core.connection import Connection
    from amqp_core.recovery import Recovery

__all__ = ("MAX_CHANNELS", "Channel")

#: The highest channel number AMQP allows (channel ids are 16-bit; 0 is the connection).
MAX_CHANNELS: Final = 65535

RPCCallback = Callable[[frame.Method], None]
MessageCallback = Callable[["Channel", Any, spec.BasicProperties, bytes], None]

_B = spec.Basic

# What a publish adds to the connection's unsent output besides its body, as basic_publish
# estimates it. The real figure is 48 bytes of framing, the exchange and routing key names and
# the properties. The connection measures exactly whenever the estimates have used half of
# the room left, so a message up to twice its estimate (names up to ~140 bytes together,
# without properties) never takes the output past max_unsent_bytes unmeasured.
_PUBLISH_OVERHEAD: Final = 64
_PROPERTIES_OVERHEAD: Final = 320


def _require_callable(name: str, callback: object) -> None:
    if not callable(callback):
        raise TypeError(f"{name} must be callable, but got {callback!r}")


def _optional_callable(name: str, callback: object) -> None:
    if callback is not None:
        _require_callable(name, callback)


def _require_str(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, but got {value!r}")


class _Pending:
    """One synchronous request waiting for its reply."""

    __slots__ = ("callback", "replies")

    def __init__(self, replies: tuple[int, ...], callback: Callable[[Any], None] | None) -> None:
        self.replies = replies
        self.callback = callback


class Channel:
    """A channel of a :class:`~amqp_core.connection.Connection`, driven by callbacks.

    Args:
        connection: the connection it belongs to.
        channel_number: its number, 1..65535.
        on_open_callback: ``cb(channel)`` once the broker confirms it.

    Raises:
        InvalidChannelNumber: ``channel_number`` is not an int in 1..65535.
    """

    CLOSED: ClassVar[int] = 0
    OPENING: ClassVar[int] = 1
    OPEN: ClassVar[int] = 2
    CLOSING: ClassVar[int] = 3

    def __init__(
        self,
        connection: Connection,
        channel_number: int,
        on_open_callback: Callable[[Channel], None] | None = None,
    ) -> None:
        if not isinstance(channel_number, int) or not 0 < channel_number <= MAX_CHANNELS:
            raise InvalidChannelNumber(f"invalid channel number {channel_number!r}")
        self.connection = connection
        self.channel_number = channel_number
        self._state = self.OPENING
        self._on_open_callback = on_open_callback
        self._on_close: list[Callable[[Channel, BaseException], None]] = []
        self._on_cancel: list[RPCCallback] = []
        self._on_flow: list[Callable[[bool], None]] = []
        self._on_return: list[MessageCallback] = []
        self._observers: list[tuple[Callable[[Any], None], frozenset[type], bool]] = []
        self._pending: list[_Pending] = []
        self._consumers: dict[str, MessageCallback] = {}
        self._cancelling: set[str] = set()
        self._get_callback: MessageCallback | None = None
        self._get_empty_callback: Callable[[Channel], None] | None = None
        self._ack_nack_callback: RPCCallback | None = None
        self._close_args: tuple[int, str] | None = None
        self._flow_active = True
        # Recovery (amqp_core.recovery): what is restored on a new connection, and the tag
        # offsets that keep delivery tags and publish sequence numbers growing across it.
        self._recording = True
        self._consume_args: dict[str, tuple[str, bool, bool, Mapping[str, FieldValue] | None]] = {}
        self._recovery_qos: Method | None = None
        self._recovery_tx = False
        self._tag_offset = 0
        self._epoch_tag = 0
        self._publish_offset = 0
        self._epoch_seq = 0
        self._max_confirmed = 0
        self._confirm_gap = False
        self._restore_close: Callable[[Channel, BaseException], None] | None = None
        self._user_open = on_open_callback

    def __int__(self) -> int:
        return self.channel_number

    def __repr__(self) -> str:
        state = ("CLOSED", "OPENING", "OPEN", "CLOSING")[self._state]
        return f"<Channel number={self.channel_number} {state} conn={self.connection!r}>"

    # ------------------------------------------------------------------ state

    @property
    def is_closed(self) -> bool:
        """True once the channel is closed."""
        return self._state == self.CLOSED

    @property
    def is_closing(self) -> bool:
        """True while the channel is closing."""
        return self._state == self.CLOSING

    @property
    def is_open(self) -> bool:
        """True while the channel is open."""
        return self._state == self.OPEN

    @property
    def is_opening(self) -> bool:
        """True until the broker confirms the channel."""
        return self._state == self.OPENING

    @property
    def consumer_tags(self) -> list[str]:
        """The tags of this channel's active consumers."""
        return list(self._consumers)

    @property
    def flow_active(self) -> bool:
        """False while the broker has paused publishing on this channel (``Channel.Flow``)."""
        return self._flow_active

    def _engine(self) -> Engine:
        if self._state != self.OPEN:
            state = ("CLOSED", "OPENING", "OPEN", "CLOSING")[self._state]
            raise ChannelWrongStateError(f"channel {self.channel_number} is {state}, not OPEN")
        engine = self.connection._engine
        if engine is None:  # pragma: no cover - the connection closes its channels first
            raise ChannelWrongStateError(f"channel {self.channel_number}: connection is gone")
        return engine

    def _sent(self) -> None:
        connection = self.connection
        # Checked here first: after the first command of a burst, a flush is already due.
        if connection._flush_pending is None:
            connection._schedule_flush()

    # ------------------------------------------------------------------ callbacks

    def add_callback(
        self,
        callback: Callable[[frame.Method], None],
        replies: Collection[type[Method]],
        one_shot: bool = True,
    ) -> None:
        """Call ``callback(frame.Method)`` when a method of one of ``replies`` arrives.

        Args:
            callback: the callback.
            replies: method classes to watch, e.g. ``[spec.Basic.GetEmpty]``.
            one_shot: forget the callback after its first call.
        """
        _require_callable("callback", callback)
        self._observers.append((callback, frozenset(replies), one_shot))

    def remove_callback(
        self,
        callback: Callable[[frame.Method], None],
        replies: Collection[type[Method]] | None = None,
    ) -> bool:
        """Forget a callback given to :meth:`add_callback`; return whether it was there."""
        before = len(self._observers)
        self._observers = [
            entry
            for entry in self._observers
            if not (entry[0] == callback and (replies is None or entry[1] == frozenset(replies)))
        ]
        return len(self._observers) != before

    def add_on_cancel_callback(self, callback: RPCCallback) -> None:
        """Call ``callback(frame.Method[Basic.Cancel])`` when the broker cancels a consumer."""
        _require_callable("callback", callback)
        self._on_cancel.append(callback)

    def remove_on_cancel_callback(self, callback: RPCCallback) -> bool:
        """Forget a cancel callback; return whether it was registered."""
        return _remove(self._on_cancel, callback)

    def add_on_close_callback(self, callback: Callable[[Channel, BaseException], None]) -> None:
        """Call ``callback(channel, reason)`` when the channel closes.

        ``reason`` is ``ChannelClosedByBroker``, ``ChannelClosedByClient``, or the
        connection's close reason when the connection ended first.
        """
        _require_callable("callback", callback)
        self._on_close.append(callback)

    def remove_on_close_callback(self, callback: Callable[[Channel, BaseException], None]) -> bool:
        """Forget a close callback; return whether it was registered."""
        return _remove(self._on_close, callback)

    def add_on_flow_callback(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(active)`` when the broker sends ``Channel.Flow``."""
        _require_callable("callback", callback)
        self._on_flow.append(callback)

    def remove_on_flow_callback(self, callback: Callable[[bool], None]) -> bool:
        """Forget a flow callback; return whether it was registered."""
        return _remove(self._on_flow, callback)

    def add_on_return_callback(self, callback: MessageCallback) -> None:
        """Call ``callback(channel, Basic.Return, properties, body)`` for returned messages."""
        _require_callable("callback", callback)
        self._on_return.append(callback)

    def remove_on_return_callback(self, callback: MessageCallback) -> bool:
        """Forget a return callback; return whether it was registered."""
        return _remove(self._on_return, callback)

    # ------------------------------------------------------------------ open and close

    def open(self) -> None:
        """Open the channel again after it was closed (the connection opens new ones)."""
        if self._state != self.CLOSED:
            raise ChannelWrongStateError(f"channel {self.channel_number} is not closed")
        engine = self.connection._require_open("open a channel")
        engine.open_channel(self.channel_number)
        self._state = self.OPENING
        self.connection._channels[self.channel_number] = self
        self._sent()

    def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> None:
        """Close the channel, cancelling its consumers first.

        Raises:
            ChannelWrongStateError: the channel is closing or closed.
        """
        if self._state in (self.CLOSED, self.CLOSING):
            raise ChannelWrongStateError(
                f"channel {self.channel_number} is already closing or closed"
            )
        self._start_close(reply_code, reply_text)

    def _close_for_connection(self, reply_code: int, reply_text: str) -> None:
        if self._state != self.CLOSING:
            self._start_close(reply_code, reply_text)

    def _start_close(self, reply_code: int, reply_text: str) -> None:
        self._state = self.CLOSING
        self._close_args = (reply_code, reply_text)
        engine = self.connection._engine
        assert engine is not None
        # Cancel the consumers first and wait for their Cancel-Ok, so that no message is
        # delivered to a consumer whose channel is going away (pika 1.4.1's order).
        for tag in list(self._consumers):
            if tag not in self._cancelling:
                self._cancelling.add(tag)
                engine.send_method(self.channel_number, _B.Cancel(tag))
                self._pending.append(_Pending((_B.CancelOk.INDEX,), None))
        self._close_when_cancelled()
        self._sent()

    def _close_when_cancelled(self) -> None:
        if self._state != self.CLOSING or self._cancelling or self._close_args is None:
            return
        reply_code, reply_text = self._close_args
        self._close_args = None
        engine = self.connection._engine
        assert engine is not None
        engine.close_channel(self.channel_number, reply_code, reply_text)
        self._sent()

    # ------------------------------------------------------------------ RPC plumbing

    def _rpc(self, method: Method, callback: Callable[[Any], None] | None) -> None:
        engine = self._engine()
        topology = self.connection._topology
        if topology is not None and self._recording:
            callback = topology.observe(self, method, callback)
        engine.send_method(self.channel_number, method)
        replies = _REPLIES.get(method.INDEX)
        if replies is not None and not getattr(method, "nowait", False):
            self._pending.append(_Pending(replies, callback))
        self._sent()

    def _complete(self, method: Any, result: Any) -> bool:
        """Hand a reply to the request waiting for it; return whether one was."""
        if self._pending and method.INDEX in self._pending[0].replies:
            pending = self._pending.pop(0)
            if pending.callback is not None:
                pending.callback(result)
            return True
        return False

    def _notify(self, method: Any) -> None:
        if not self._observers:
            return
        wrapped = frame.Method(self.channel_number, method)
        for entry in list(self._observers):
            callback, replies, one_shot = entry
            if type(method) in replies:
                if one_shot:
                    self._observers.remove(entry)
                callback(wrapped)

    # ------------------------------------------------------------------ events from the connection

    def _handle_open_ok(self, event: ev.ChannelOpened) -> None:
        self._state = self.OPEN
        callback = self._on_open_callback
        if callback is not None:
            callback(self)

    def _on_method(self, method: Any) -> None:
        if isinstance(method, _B.CancelOk):
            tag = method.consumer_tag
            self._consumers.pop(tag, None)
            self._cancelling.discard(tag)
        result: Any = frame.Method(self.channel_number, method)
        if isinstance(method, spec.Channel.FlowOk):
            result = method.active
        self._complete(method, result)
        self._notify(method)
        self._close_when_cancelled()

    def _on_deliver(self, event: ev.MessageDelivered) -> None:
        method = event.method
        self._epoch_tag = method.delivery_tag
        if self._tag_offset:
            method.delivery_tag += self._tag_offset
        callback = self._consumers.get(method.consumer_tag)
        if callback is not None:
            callback(self, method, event.properties, event.body)

    def _handle_return(self, event: ev.MessageReturned) -> None:
        for callback in list(self._on_return):
            callback(self, event.method, event.properties, event.body)

    def _handle_get_ok(self, event: ev.GetOk) -> None:
        self._epoch_tag = event.method.delivery_tag
        if self._tag_offset:
            event.method.delivery_tag += self._tag_offset
        self._complete(event.method, event)
        self._notify(event.method)

    def _handle_get_empty(self, event: ev.GetEmpty) -> None:
        self._complete(event.method, None)
        self._notify(event.method)

    def _handle_confirm(self, event: ev.PublishAcked | ev.PublishNacked) -> None:
        method: Method
        tag = event.delivery_tag + self._publish_offset
        if tag > self._max_confirmed:
            # Remember whether confirms came out of order: then a loss cannot tell which
            # publishes below the highest confirm are still unconfirmed.
            if not event.multiple and tag != self._max_confirmed + 1:
                self._confirm_gap = True
            self._max_confirmed = tag
        if isinstance(event, ev.PublishAcked):
            method = _B.Ack(tag, event.multiple)
        else:
            method = _B.Nack(tag, event.multiple)
        callback = self._ack_nack_callback
        if callback is not None:
            callback(frame.Method(self.channel_number, method))

    def _handle_cancelled(self, event: ev.ConsumerCancelled) -> None:
        self._consumers.pop(event.consumer_tag, None)
        wrapped = frame.Method(self.channel_number, _B.Cancel(event.consumer_tag))
        for callback in list(self._on_cancel):
            callback(wrapped)

    def _handle_flow(self, event: ev.ChannelFlowChanged) -> None:
        self._flow_active = event.active
        for callback in list(self._on_flow):
            callback(event.active)

    def _on_closed(self, event: ev.ChannelClosed) -> None:
        reason: BaseException
        if event.by_broker:
            reason = ChannelClosedByBroker(event.reply_code, event.reply_text)
        else:
            reason = ChannelClosedByClient(event.reply_code, event.reply_text)
        self._cleanup(reason)

    def _on_connection_closed(self, reason: BaseException) -> None:
        self._cleanup(reason)

    def _lose(self) -> tuple[int, int | None] | None:
        """The connection is lost and will be recovered: keep what recovery restores.

        Returns:
            ``(last publish sequence number, how many are unconfirmed or None if unknown)``
            when publishes may lack their confirm, else None.
        """
        self._state = self.OPENING
        self._pending.clear()
        if self._restore_close is not None:
            # Lost again in the middle of a restore: undo its hooks; it starts over.
            self._on_close.remove(self._restore_close)
            self._restore_close = None
            self._on_open_callback = self._user_open
        for tag in self._cancelling:
            # A cancel was under way: the consumer is not restored.
            self._consumers.pop(tag, None)
        self._cancelling.clear()
        self._get_callback = None
        self._get_empty_callback = None
        self._close_args = None
        self._flow_active = True
        # Tags of the new connection start above every tag handed out so far.
        self._tag_offset += self._epoch_tag
        self._epoch_tag = 0
        last = self._publish_offset + self._epoch_seq
        self._publish_offset = last
        self._epoch_seq = 0
        unconfirmed: tuple[int, int | None] | None = None
        if self._ack_nack_callback is not None and (
            last > self._max_confirmed or self._confirm_gap
        ):
            unconfirmed = (last, None if self._confirm_gap else last - self._max_confirmed)
        self._max_confirmed = last
        self._confirm_gap = False
        return unconfirmed

    def _recover(self, recovery: Recovery, renames: Mapping[str, str]) -> None:
        """Open the channel on the new connection and restore its modes and consumers."""
        engine = self.connection._engine
        assert engine is not None
        user_open = self._user_open = self._on_open_callback
        steps: list[tuple[str, Callable[[Callable[[Any], None]], None]]] = []
        if self._recovery_qos is not None:
            qos = self._recovery_qos
            steps.append(("QoS", lambda done: self._rpc(qos, done)))
        if self._ack_nack_callback is not None:
            steps.append(("confirm mode", lambda done: self._rpc(spec.Confirm.Select(), done)))
        if self._recovery_tx:
            steps.append(("transaction mode", lambda done: self._rpc(spec.Tx.Select(), done)))
        self._consume_args = {
            tag: args for tag, args in self._consume_args.items() if tag in self._consumers
        }
        for tag, on_message in list(self._consumers.items()):
            queue, auto_ack, exclusive, arguments = self._consume_args[tag]
            queue = renames.get(queue, queue)

            def consume(
                done: Callable[[Any], None],
                tag: str = tag,
                queue: str = queue,
                on_message: MessageCallback = on_message,
                auto_ack: bool = auto_ack,
                exclusive: bool = exclusive,
                arguments: Mapping[str, FieldValue] | None = arguments,
            ) -> None:
                # Still listed (a loss in mid-restore keeps it); basic_consume adds it back,
                # unless the application cancelled it meanwhile.
                if self._consumers.pop(tag, None) is None:
                    done(None)
                    return
                self.basic_consume(queue, on_message, auto_ack, exclusive, tag, arguments, done)

            steps.append((f"consumer {tag!r} on queue {queue!r}", consume))
        current = [""]

        def on_close(_channel: Channel, reason: BaseException) -> None:
            self._on_open_callback = user_open
            self._on_close.remove(on_close)
            self._restore_close = None
            recovery.channel_restored(self, current[0] or "channel", reason)

        def run(_reply: Any) -> None:
            if self._state != self.OPEN:
                return
            if not steps:
                self._on_close.remove(on_close)
                self._restore_close = None
                recovery.channel_restored(self, "", None)
                return
            current[0], start = steps.pop(0)
            current[0] = f"{current[0]} on channel {self.channel_number}"
            start(run)

        def opened(_channel: Channel) -> None:
            self._on_open_callback = user_open
            run(None)

        self._on_open_callback = opened
        self._restore_close = on_close
        self._on_close.insert(0, on_close)
        engine.open_channel(self.channel_number)
        self._sent()

    def _cleanup(self, reason: BaseException) -> None:
        self._state = self.CLOSED
        self._pending.clear()
        self._consumers.clear()
        self._cancelling.clear()
        self._get_callback = None
        self._get_empty_callback = None
        self._close_args = None
        for callback in list(self._on_close):
            callback(self, reason)

    # ------------------------------------------------------------------ basic

    def _live_tag(self, delivery_tag: int, method: str) -> int | None:
        """Map an application's delivery tag to this connection's; None if it is stale."""
        if delivery_tag == 0:
            return 0
        if delivery_tag <= self._tag_offset:
            # Received before a recovery: the broker requeued it; acking this number on the
            # new channel would settle a different message.
            recovery = self.connection._recovery
            if recovery is not None:
                recovery.stale_tag(self, delivery_tag, method)
            return None
        return delivery_tag - self._tag_offset

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Acknowledge one delivery, or every one up to ``delivery_tag`` with ``multiple``.

        After a recovery, a tag received before it is dropped (and reported), not sent.
        """
        if self._tag_offset:
            tag = self._live_tag(delivery_tag, "basic_ack")
            if tag is None:
                return
            delivery_tag = tag
        self._engine().ack(self.channel_number, delivery_tag, multiple)
        self._sent()

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Refuse one delivery (or several with ``multiple``); requeue it by default."""
        if self._tag_offset:
            tag = self._live_tag(delivery_tag, "basic_nack")
            if tag is None:
                return
            delivery_tag = tag
        self._engine().nack(self.channel_number, delivery_tag, multiple, requeue)
        self._sent()

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        """Refuse one delivery; requeue it by default.

        Raises:
            TypeError: ``delivery_tag`` is not an int.
        """
        if not isinstance(delivery_tag, int):
            raise TypeError(f"delivery_tag must be an int, but got {delivery_tag!r}")
        if self._tag_offset:
            tag = self._live_tag(delivery_tag, "basic_reject")
            if tag is None:
                return
            delivery_tag = tag
        self._engine().reject(self.channel_number, delivery_tag, requeue)
        self._sent()

    def basic_cancel(self, consumer_tag: str = "", callback: RPCCallback | None = None) -> None:
        """Cancel a consumer; ``callback(frame.Method[Basic.CancelOk])`` once done.

        With ``callback=None`` the cancel is sent with ``nowait``. An unknown tag, or one
        already being cancelled, is ignored (as in pika).
        """
        _optional_callable("callback", callback)
        self._engine()
        if consumer_tag not in self._consumers or consumer_tag in self._cancelling:
            return
        if callback is None:
            self._rpc(_B.Cancel(consumer_tag, nowait=True), None)
            del self._consumers[consumer_tag]
            return
        self._cancelling.add(consumer_tag)
        self._rpc(_B.Cancel(consumer_tag), callback)

    def basic_consume(
        self,
        queue: str,
        on_message_callback: MessageCallback,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: Mapping[str, FieldValue] | None = None,
        callback: RPCCallback | None = None,
    ) -> str:
        """Start a consumer: ``on_message_callback(channel, Basic.Deliver, properties, body)``.

        Args:
            queue: the queue.
            on_message_callback: called for every delivery.
            auto_ack: the broker considers messages acknowledged once sent (``no_ack``).
            exclusive: ask to be the queue's only consumer.
            consumer_tag: the tag; by default ``ctag<channel>.<n>``.
            arguments: consumer arguments (``x-priority`` ...).
            callback: ``cb(frame.Method[Basic.ConsumeOk])``.

        Returns:
            The consumer tag.

        Raises:
            DuplicateConsumerTag: the tag is in use on this channel.
        """
        _require_str("queue", queue)
        _require_callable("on_message_callback", on_message_callback)
        _optional_callable("callback", callback)
        engine = self._engine()
        if consumer_tag and consumer_tag in self._consumers:
            raise DuplicateConsumerTag(consumer_tag)
        tag: str = engine.consume(
            self.channel_number,
            queue,
            consumer_tag or "",
            no_ack=auto_ack,
            exclusive=exclusive,
            arguments=arguments,
        )
        self._consumers[tag] = on_message_callback
        if self.connection._recovery is not None:
            self._consume_args[tag] = (queue, auto_ack, exclusive, arguments)
        self._pending.append(_Pending((_B.ConsumeOk.INDEX,), callback))
        self._sent()
        return tag

    def basic_get(
        self,
        queue: str,
        callback: MessageCallback,
        auto_ack: bool = False,
        *,
        on_empty: Callable[[Channel], None] | None = None,
    ) -> None:
        """Fetch one message: ``callback(channel, Basic.GetOk, properties, body)``.

        When the queue is empty the callback is not called; ``on_empty(channel)`` is, if
        given (beyond pika, whose users watch ``Basic.GetEmpty`` with :meth:`add_callback`,
        which works here too).

        Raises:
            DuplicateGetOkCallback: a previous ``basic_get`` has not completed yet.
        """
        _require_str("queue", queue)
        _require_callable("callback", callback)
        _optional_callable("on_empty", on_empty)
        if self._get_callback is not None:
            raise DuplicateGetOkCallback(
                f"basic_get on channel {self.channel_number}: the previous basic_get has not "
                "completed yet"
            )
        self._get_callback = callback
        self._get_empty_callback = on_empty
        self._rpc(_B.Get(queue=queue, no_ack=auto_ack), self._on_get_result)

    def _on_get_result(self, result: ev.GetOk | None) -> None:
        callback, self._get_callback = self._get_callback, None
        on_empty, self._get_empty_callback = self._get_empty_callback, None
        if result is not None and callback is not None:
            callback(self, result.method, result.properties, result.body)
        elif result is None and on_empty is not None:
            on_empty(self)

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: str | bytes,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> None:
        """Publish a message; a ``str`` body is encoded as UTF-8.

        Raises:
            ChannelWrongStateError: the channel is not open.
            TypeError: ``body`` is neither ``str`` nor bytes-like.
            OutputBufferFullError: the connection holds ``max_unsent_bytes`` of output the
                broker has not taken yet; nothing was queued. Publish again once the
                connection's output-drained callbacks have run.
        """
        engine = self._engine()
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError(f"body must be str or bytes, but got {type(body).__name__}")
        # Bounded output: one comparison against a running estimate; the connection measures
        # exactly (and may refuse) only when the estimate passes its threshold.
        conn = self.connection
        size = len(body) + (_PUBLISH_OVERHEAD if properties is None else _PROPERTIES_OVERHEAD)
        unsent = conn._unsent + size
        if unsent > conn._unsent_limit:
            unsent = conn._make_room(size)
        seq = engine.publish(
            self.channel_number, exchange, routing_key, body, properties, mandatory
        )
        conn._unsent = unsent
        if seq is not None:
            self._epoch_seq = seq
        self._sent()

    def basic_qos(
        self,
        prefetch_size: int = 0,
        prefetch_count: int = 0,
        global_qos: bool = False,
        callback: RPCCallback | None = None,
    ) -> None:
        """Set the prefetch window; ``callback(frame.Method[Basic.QosOk])``.

        Raises:
            ValueError: a negative prefetch value.
        """
        _optional_callable("callback", callback)
        for name, value in (("prefetch_size", prefetch_size), ("prefetch_count", prefetch_count)):
            if not isinstance(value, int):
                raise TypeError(f"{name} must be an int, but got {value!r}")
            if value < 0:
                raise ValueError(f"{name} must be >= 0, but got {value!r}")
        self._rpc(_B.Qos(prefetch_size, prefetch_count, global_qos), callback)

    def basic_recover(self, requeue: bool = False, callback: RPCCallback | None = None) -> None:
        """Ask the broker to redeliver unacknowledged messages; ``cb(Basic.RecoverOk)``."""
        _optional_callable("callback", callback)
        self._rpc(_B.Recover(requeue), callback)

    def confirm_delivery(
        self, ack_nack_callback: RPCCallback, callback: RPCCallback | None = None
    ) -> None:
        """Turn on publisher confirms: ``ack_nack_callback(frame.Method[Basic.Ack|Nack])``.

        Calling it again replaces the ack/nack callback (pika's HEAD behaviour).

        Raises:
            ValueError: ``ack_nack_callback`` is not callable.
            MethodNotImplemented: the broker does not support publisher confirms.
        """
        if not callable(ack_nack_callback):
            raise ValueError(f"ack_nack_callback must be callable, but got {ack_nack_callback!r}")
        _optional_callable("callback", callback)
        self._engine()
        if not (self.connection.publisher_confirms and self.connection.basic_nack):
            raise MethodNotImplemented("Confirm.Select not supported by the broker")
        first = self._ack_nack_callback is None
        self._ack_nack_callback = ack_nack_callback
        if first:
            self._rpc(spec.Confirm.Select(nowait=callback is None), callback)
        elif callback is not None:
            # Already in confirm mode: Confirm.Select again is harmless and answered.
            self._rpc(spec.Confirm.Select(), callback)

    # ------------------------------------------------------------------ exchange

    def exchange_declare(
        self,
        exchange: str,
        exchange_type: ExchangeType | str = ExchangeType.direct,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, FieldValue] | None = None,
        callback: RPCCallback | None = None,
    ) -> None:
        """Declare an exchange; ``callback(frame.Method[Exchange.DeclareOk])``."""
        _require_str("exchange", exchange)
        _optional_callable("callback", callback)
        kind = exchange_type.value if isinstance(exchange_type, ExchangeType) else exchange_type
        self._rpc(
            spec.Exchange.Declare(
                exchange=exchange,
                type=kind,
                passive=passive,
                durable=durable,
                auto_delete=auto_delete,
                internal=internal,
                nowait=callback is None,
                arguments=dict(arguments) if arguments else {},
            ),
            callback,
        )

    def exchange_delete(
        self,
        exchange: str | None = None,
        if_unused: bool = False,
        callback: RPCCallback | None = None,
    ) -> None:
        """Delete an exchange; ``callback(frame.Method[Exchange.DeleteOk])``."""
        _optional_callable("callback", callback)
        self._rpc(
            spec.Exchange.Delete(
                exchange=exchange or "", if_unused=if_unused, nowait=callback is None
            ),
            callback,
        )

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, FieldValue] | None = None,
        callback: RPCCallback | None = None,
    ) -> None:
        """Bind an exchange to another; ``callback(frame.Method[Exchange.BindOk])``."""
        _require_str("destination", destination)
        _require_str("source", source)
        _optional_callable("callback", callback)
        self._rpc(
            spec.Exchange.Bind(
                destination=destination,
                source=source,
                routing_key=routing_key,
                nowait=callback is None,
                arguments=dict(arguments) if arguments else {},
            ),
            callback,
        )

    def exchange_unbind(
        self,
        destination: str | None = None,
        source: str | None = None,
        routing_key: str = "",
        arguments: Mapping[str, FieldValue] | None = None,
        callback: RPCCallback | None = None,
    ) -> None:
        """Remove an exchange-to-exchange binding; ``cb(frame.Method[Exchange.UnbindOk])``."""
        _optional_callable("callback", callback)
        self._rpc(
            spec.Exchange.Unbind(
                destination=destination or "",
                source=source or "",
                routing_key=routing_key,
                nowait=callback is None,
                arguments=dict(arguments) if arguments else {},
            ),
            callback,
        )

    # ------------------------------------------------------------------ queue

    def queue_declare(
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, FieldValue] | None = None,
        callback: RPCCallback | None = None,
    ) -> None:
        """Declare a queue (``""``: the broker names it); ``cb(frame.Method[Queue.DeclareOk])``."""
        _require_str("queue", queue)
        _optional_callable("callback", callback)
        self._rpc(
            spec.Queue.Declare(
                queue=queue,
                passive=passive,
                durable=durable,
                exclusive=exclusive,
                auto_delete=auto_delete,
                nowait=callback is None,
                arguments=dict(arguments) if arguments else {},
            ),
            callback,
        )

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: Mapping[str, FieldValue] | None = None,
        callback: RPCCallback | None = None,
    ) -> None:
        """Bind a queue (routing key defaults to the queue name); ``cb(Queue.BindOk)``."""
        _require_str("queue", queue)
        _require_str("exchange", exchange)
        _optional_callable("callback", callback)
        self._rpc(
            spec.Queue.Bind(
                queue=queue,
                exchange=exchange,
                routing_key=queue if routing_key is None else routing_key,
                nowait=callback is None,
                arguments=dict(arguments) if arguments else {},
            ),
            callback,
        )

    def queue_unbind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str | None = None,
        arguments: Mapping[str, FieldValue] | None = None,
        callback: RPCCallback | None = None,
    ) -> None:
        """Remove a queue binding; ``callback(frame.Method[Queue.UnbindOk])``.

        ``Queue.Unbind`` has no ``nowait`` flag: the reply is awaited even without callback.
        """
        _require_str("queue", queue)
        _optional_callable("callback", callback)
        self._rpc(
            spec.Queue.Unbind(
                queue=queue,
                exchange=exchange or "",
                routing_key=queue if routing_key is None else routing_key,
                arguments=dict(arguments) if arguments else {},
            ),
            callback,
        )

    def queue_purge(self, queue: str, callback: RPCCallback | None = None) -> None:
        """Drop a queue's ready messages; ``callback(frame.Method[Queue.PurgeOk])``."""
        _require_str("queue", queue)
        _optional_callable("callback", callback)
        self._rpc(spec.Queue.Purge(queue=queue, nowait=callback is None), callback)

    def queue_delete(
        self,
        queue: str,
        if_unused: bool = False,
        if_empty: bool = False,
        callback: RPCCallback | None = None,
    ) -> None:
        """Delete a queue; ``callback(frame.Method[Queue.DeleteOk])``."""
        _require_str("queue", queue)
        _optional_callable("callback", callback)
        self._rpc(
            spec.Queue.Delete(
                queue=queue, if_unused=if_unused, if_empty=if_empty, nowait=callback is None
            ),
            callback,
        )

    # ------------------------------------------------------------------ flow and tx

    def flow(self, active: bool, callback: Callable[[bool], None] | None = None) -> None:
        """Ask the broker to pause (False) or resume (True) deliveries; ``callback(active)``."""
        _optional_callable("callback", callback)
        self._rpc(spec.Channel.Flow(active), callback)

    def tx_select(self, callback: RPCCallback | None = None) -> None:
        """Put the channel in transaction mode; ``callback(frame.Method[Tx.SelectOk])``."""
        _optional_callable("callback", callback)
        self._rpc(spec.Tx.Select(), callback)

    def tx_commit(self, callback: RPCCallback | None = None) -> None:
        """Commit the transaction; ``callback(frame.Method[Tx.CommitOk])``."""
        _optional_callable("callback", callback)
        self._rpc(spec.Tx.Commit(), callback)

    def tx_rollback(self, callback: RPCCallback | None = None) -> None:
        """Roll the transaction back; ``callback(frame.Method[Tx.RollbackOk])``."""
        _optional_callable("callback", callback)
        self._rpc(spec.Tx.Rollback(), callback)


def _remove(callbacks: list[Any], callback: object) -> bool:
    if callback in callbacks:
        callbacks.remove(callback)
        return True
    return False
