"""The events the engine produces, and the ``NEED_DATA`` sentinel.

Every event is a frozen, slotted dataclass; received things are named in the past tense. A whole
message (the method frame, the content header and every body frame) is one event:
:class:`MessageDelivered`, :class:`MessageReturned` or :class:`GetOk`.

Events are plain records: they never reference the engine, and building one never sends
anything. Don't subclass them; the engine dispatches on exact types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from amqp_core import spec
from amqp_core.amqp_object import Method
from amqp_core.data import FieldTable
from amqp_core.exceptions import AMQPConnectionError

__all__ = (
    "NEED_DATA",
    "ChannelClosed",
    "ChannelFlowChanged",
    "ChannelOpened",
    "ConnectionBlocked",
    "ConnectionClosed",
    "ConnectionOpened",
    "ConnectionTuned",
    "ConnectionUnblocked",
    "ConsumerCancelled",
    "Event",
    "GetEmpty",
    "GetOk",
    "MessageDelivered",
    "MessageReturned",
    "MethodReceived",
    "NeedData",
    "PublishAcked",
    "PublishNacked",
)


class NeedData:
    """The type of :data:`NEED_DATA`: ``next_event()`` has nothing until more bytes arrive."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by ``Engine.next_event()`` when no event is ready.
NEED_DATA: Final = NeedData()


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionTuned(Event):
    """``Connection.Tune`` was answered with ``Tune-Ok`` and ``Connection.Open`` was sent."""

    #: The negotiated highest channel number (0 = no limit).
    channel_max: int
    #: The negotiated largest frame, header and end octet included (0 = no limit).
    frame_max: int
    #: The negotiated heartbeat timeout in seconds (0 = off).
    heartbeat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOpened(Event):
    """``Connection.Open-Ok`` arrived: channels may now be opened."""

    #: The broker's ``server-properties`` from ``Connection.Start``.
    server_properties: FieldTable
    #: ``known-hosts`` from ``Open-Ok`` (deprecated, usually empty).
    known_hosts: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionBlocked(Event):
    """The broker sent ``Connection.Blocked``: it has stopped reading from publishers."""

    #: Why, in the broker's words (for example ``"low on memory"``).
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionUnblocked(Event):
    """The broker sent ``Connection.Unblocked``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """The connection is over; the transport should be closed once pending data is written.

    It is the last event. It follows a close from either side, a protocol error, a lost
    transport, a dead peer (heartbeats), or a failed handshake; ``exception`` tells them
    apart. Open channels are gone with it: no ``ChannelClosed`` is emitted for them.
    """

    #: The AMQP reply code (for a lost transport or a heartbeat timeout: 0).
    reply_code: int
    #: The reply text, or a description of what happened.
    reply_text: str
    #: Where the broker said so, the class of the method that caused the close; else 0.
    class_id: int = 0
    #: Where the broker said so, the method that caused the close; else 0.
    method_id: int = 0
    #: What a pika close callback receives: ``ConnectionClosedByBroker``,
    #: ``ConnectionClosedByClient``, ``ConnectionOpenAborted``, ``StreamLostError``,
    #: ``AMQPHeartbeatTimeout``, ``ProbableAuthenticationError``,
    #: ``ProbableAccessDeniedError``, ``IncompatibleProtocolError``, ``AuthenticationError``
    #: or ``RemoteProtocolError``.
    exception: AMQPConnectionError


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelOpened(Event):
    """``Channel.Open-Ok`` arrived: the channel accepts commands."""

    #: The channel number.
    channel_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelClosed(Event):
    """The channel is closed and its number free again."""

    #: The channel number.
    channel_id: int
    #: The AMQP reply code of the close.
    reply_code: int
    #: The reply text of the close.
    reply_text: str
    #: The class of the method that caused the close, or 0.
    class_id: int = 0
    #: The method that caused the close, or 0.
    method_id: int = 0
    #: True if the broker closed the channel (``ChannelClosedByBroker`` in pika's terms),
    #: False if the client did (``ChannelClosedByClient``).
    by_broker: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelFlowChanged(Event):
    """The broker sent ``Channel.Flow``; the engine answered ``Flow-Ok``."""

    #: The channel number.
    channel_id: int
    #: False: the broker asks the client to stop publishing on this channel.
    active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodReceived(Event):
    """A method without content that has no event of its own, mostly a synchronous reply.

    For example ``Queue.DeclareOk``, ``Basic.ConsumeOk``, ``Basic.QosOk``,
    ``Confirm.SelectOk``, ``Channel.FlowOk`` or ``Connection.UpdateSecretOk`` (channel 0).
    """

    #: The channel number (0 for connection methods).
    channel_id: int
    #: The method.
    method: Method


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageDelivered(Event):
    """A ``Basic.Deliver`` with its content: a message for a consumer."""

    #: The channel number.
    channel_id: int
    #: The ``Basic.Deliver`` method (consumer tag, delivery tag, redelivered, exchange,
    #: routing key).
    method: spec.Basic.Deliver
    #: The content properties.
    properties: spec.BasicProperties
    #: The message body.
    body: bytes

    @property
    def delivery_tag(self) -> int:
        """The delivery tag to acknowledge the message with."""
        return self.method.delivery_tag

    @property
    def consumer_tag(self) -> str:
        """The consumer the message is for."""
        return self.method.consumer_tag


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReturned(Event):
    """A ``Basic.Return`` with its content: a mandatory message the broker could not route."""

    #: The channel number.
    channel_id: int
    #: The ``Basic.Return`` method (reply code and text, exchange, routing key).
    method: spec.Basic.Return
    #: The content properties.
    properties: spec.BasicProperties
    #: The message body.
    body: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class GetOk(Event):
    """A ``Basic.Get-Ok`` with its content: the answer to ``Basic.Get`` when a message waited."""

    #: The channel number.
    channel_id: int
    #: The ``Basic.GetOk`` method (delivery tag, redelivered, exchange, routing key,
    #: message count).
    method: spec.Basic.GetOk
    #: The content properties.
    properties: spec.BasicProperties
    #: The message body.
    body: bytes

    @property
    def delivery_tag(self) -> int:
        """The delivery tag to acknowledge the message with."""
        return self.method.delivery_tag


@dataclass(frozen=True, slots=True, kw_only=True)
class GetEmpty(Event):
    """``Basic.Get-Empty``: the answer to ``Basic.Get`` when the queue was empty."""

    #: The channel number.
    channel_id: int
    #: The ``Basic.GetEmpty`` method.
    method: spec.Basic.GetEmpty


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishAcked(Event):
    """A publisher confirm: the broker took responsibility for the message(s)."""

    #: The channel number.
    channel_id: int
    #: The confirmed publish sequence number (counted from 1 per channel after
    #: ``Confirm.Select``).
    delivery_tag: int
    #: True: every outstanding publish up to and including ``delivery_tag`` is confirmed.
    multiple: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishNacked(Event):
    """A negative publisher confirm: the broker could not take the message(s)."""

    #: The channel number.
    channel_id: int
    #: The refused publish sequence number.
    delivery_tag: int
    #: True: every outstanding publish up to and including ``delivery_tag`` is refused.
    multiple: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerCancelled(Event):
    """The broker cancelled a consumer with ``Basic.Cancel``.

    RabbitMQ does so when the queue is deleted or its node goes down (the
    ``consumer_cancel_notify`` capability); the engine answered ``Cancel-Ok`` unless
    ``nowait`` was set.
    """

    #: The channel number.
    channel_id: int
    #: The cancelled consumer.
    consumer_tag: str
