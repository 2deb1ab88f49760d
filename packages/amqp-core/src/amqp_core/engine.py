"""The sans-I/O AMQP 0-9-1 client engine: bytes in, events and bytes out, time passed in.

Theory of operation
-------------------

:class:`Engine` plays the client side of one AMQP connection and all of its channels. It
never touches a socket, a clock or a thread. Its caller (an adapter) pumps bytes:

1. ``receive_data(data, now)`` with every chunk read from the transport (``b""`` at EOF);
2. ``next_event()`` until it returns :data:`~amqp_core.events.NEED_DATA`, acting on each
   event;
3. ``data_to_send()`` (or ``buffers_to_send()``) and write the result;
4. re-arm one timer at ``next_timer()`` and call ``handle_timer(now)`` when it fires.

Commands (``open_channel``, ``publish``, ``ack``, ``send_method``, ``close`` ...) only queue
bytes; the caller writes them with step 3.

Receiving is eager: ``receive_data`` parses every complete frame at once, answers what the
engine answers by itself (see ``docs/engine.md``, "What the engine sends for you") and queues
events. Only the tail of an incomplete frame stays in the receive buffer, and a frame header
announcing more than the negotiated ``frame_max`` is refused before its payload arrives, so the
buffer never holds more than one frame beyond what was parsed. The buffer is one
``bytearray`` read at offsets with ``struct.unpack_from`` and compacted once per call; when it is
empty, the incoming ``bytes`` are parsed in place and only their incomplete tail is kept.

Errors are split the h11 way. A command that is illegal in the current state raises
:class:`~amqp_core.exceptions.LocalProtocolError` (or one of its subclasses, which are also
pika's ``ConnectionWrongStateError`` / ``ChannelWrongStateError``), sends nothing and changes
nothing. Input from the peer that breaks the protocol never raises: the engine queues
``Connection.Close`` with the matching reply code, becomes ``CLOSED`` and emits
:class:`~amqp_core.events.ConnectionClosed` whose ``exception`` is a
:class:`~amqp_core.exceptions.RemoteProtocolError`.

State transitions are looked up in :mod:`amqp_core._state`.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Mapping
from typing import Final

from amqp_core import spec
from amqp_core._state import (
    ChannelInput,
    ChannelState,
    ConnectionInput,
    ConnectionState,
    channel_next,
    connection_next,
    require_channel,
    require_connection,
)
from amqp_core._tune import TuneParameters, negotiate
from amqp_core._types import Buffer
from amqp_core.amqp_object import Method
from amqp_core.config import DEFAULT_FRAME_MAX, EngineConfig
from amqp_core.data import FieldTable, FieldValue
from amqp_core.events import (
    NEED_DATA,
    ChannelClosed,
    ChannelFlowChanged,
    ChannelOpened,
    ConnectionBlocked,
    ConnectionClosed,
    ConnectionOpened,
    ConnectionTuned,
    ConnectionUnblocked,
    ConsumerCancelled,
    Event,
    GetEmpty,
    GetOk,
    MessageDelivered,
    MessageReturned,
    MethodReceived,
    NeedData,
    PublishAcked,
    PublishNacked,
)
from amqp_core.exceptions import (
    AMQPCodecError,
    AMQPConnectionError,
    AMQPHeartbeatTimeout,
    AuthenticationError,
    BodyTooLongError,
    ChannelStateError,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionOpenAborted,
    ConnectionStateError,
    IncompatibleProtocolError,
    InvalidChannelNumber,
    InvalidFrameError,
    LocalProtocolError,
    NoFreeChannels,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    RemoteProtocolError,
    StreamLostError,
)
from amqp_core.frame import (
    PROTOCOL_HEADER,
    decode_content,
    decode_header_payload,
    decode_method_payload,
    encode_heartbeat,
    encode_message,
    encode_method_frame,
    parse_frame_header,
)

__all__ = ("PUBLISH_CACHE_SIZE", "Engine")

# Integer ids for dispatch (spec.<Class>.<Method>.INDEX = class_id << 16 | method_id).
_C = spec.Connection
_START: Final = _C.Start.INDEX
_SECURE: Final = _C.Secure.INDEX
_TUNE: Final = _C.Tune.INDEX
_OPEN_OK: Final = _C.OpenOk.INDEX
_CLOSE: Final = _C.Close.INDEX
_CLOSE_OK: Final = _C.CloseOk.INDEX
_BLOCKED: Final = _C.Blocked.INDEX
_UNBLOCKED: Final = _C.Unblocked.INDEX
_UPDATE_SECRET: Final = _C.UpdateSecret.INDEX
_UPDATE_SECRET_OK: Final = _C.UpdateSecretOk.INDEX

_CH_OPEN_OK: Final = spec.Channel.OpenOk.INDEX
_CH_CLOSE: Final = spec.Channel.Close.INDEX
_CH_CLOSE_OK: Final = spec.Channel.CloseOk.INDEX
_CH_FLOW: Final = spec.Channel.Flow.INDEX

_B = spec.Basic
_DELIVER: Final = _B.Deliver.INDEX
_RETURN: Final = _B.Return.INDEX
_GET_OK: Final = _B.GetOk.INDEX
_GET_EMPTY: Final = _B.GetEmpty.INDEX
# The method index of the method frame whose payload starts 7 bytes further on.
_unpack_index = struct.Struct(">I").unpack_from
# What ends the connection or a channel: held back while earlier events are unread.
_CLOSES: Final = frozenset((_CLOSE, _CH_CLOSE))
_ACK: Final = _B.Ack.INDEX
_NACK: Final = _B.Nack.INDEX
_REJECT: Final = _B.Reject.INDEX
_CONSUME: Final = _B.Consume.INDEX
_CONSUME_OK: Final = _B.ConsumeOk.INDEX
_CANCEL: Final = _B.Cancel.INDEX
_CANCEL_OK: Final = _B.CancelOk.INDEX
_RECOVER: Final = _B.Recover.INDEX
_RECOVER_ASYNC: Final = _B.RecoverAsync.INDEX
_CONFIRM_SELECT: Final = spec.Confirm.Select.INDEX

_FRAME_METHOD: Final = spec.FRAME_METHOD
_FRAME_HEADER: Final = spec.FRAME_HEADER
_FRAME_BODY: Final = spec.FRAME_BODY
_FRAME_HEARTBEAT: Final = spec.FRAME_HEARTBEAT

#: The synchronous requests a client sends on a channel and the replies each one waits for
#: (spec section 1.4 lists the "response" of every synchronous method). ``nowait`` set on the
#: request means no reply comes.
_REPLIES: Final[dict[int, tuple[int, ...]]] = {
    spec.Channel.Flow.INDEX: (spec.Channel.FlowOk.INDEX,),
    spec.Access.Request.INDEX: (spec.Access.RequestOk.INDEX,),
    spec.Exchange.Declare.INDEX: (spec.Exchange.DeclareOk.INDEX,),
    spec.Exchange.Delete.INDEX: (spec.Exchange.DeleteOk.INDEX,),
    spec.Exchange.Bind.INDEX: (spec.Exchange.BindOk.INDEX,),
    spec.Exchange.Unbind.INDEX: (spec.Exchange.UnbindOk.INDEX,),
    spec.Queue.Declare.INDEX: (spec.Queue.DeclareOk.INDEX,),
    spec.Queue.Bind.INDEX: (spec.Queue.BindOk.INDEX,),
    spec.Queue.Purge.INDEX: (spec.Queue.PurgeOk.INDEX,),
    spec.Queue.Delete.INDEX: (spec.Queue.DeleteOk.INDEX,),
    spec.Queue.Unbind.INDEX: (spec.Queue.UnbindOk.INDEX,),
    _B.Qos.INDEX: (_B.QosOk.INDEX,),
    _CONSUME: (_CONSUME_OK,),
    _CANCEL: (_CANCEL_OK,),
    _B.Get.INDEX: (_GET_OK, _GET_EMPTY),
    _RECOVER: (_B.RecoverOk.INDEX,),
    spec.Tx.Select.INDEX: (spec.Tx.SelectOk.INDEX,),
    spec.Tx.Commit.INDEX: (spec.Tx.CommitOk.INDEX,),
    spec.Tx.Rollback.INDEX: (spec.Tx.RollbackOk.INDEX,),
    _CONFIRM_SELECT: (spec.Confirm.SelectOk.INDEX,),
}
#: Every reply a broker may send to one of the requests above.
_ALL_REPLIES: Final = frozenset(reply for replies in _REPLIES.values() for reply in replies)
#: Asynchronous methods a client may send on a channel with ``send_method``.
_CLIENT_ASYNC: Final = frozenset((spec.Channel.FlowOk.INDEX, _ACK, _NACK, _REJECT, _RECOVER_ASYNC))

#: At most this many encoded ``Basic.Publish`` frames are cached per channel, keyed by
#: (exchange, routing key, mandatory); an application publishing to unbounded keys gets a
#: cache that is cleared when full rather than one that grows.
PUBLISH_CACHE_SIZE: Final = 256

_QueuedCommand = tuple["Method | None", "list[Buffer]", "tuple[int, ...] | None"]


class _PeerError(Exception):
    """Raised inside the receive path when the peer broke the protocol; never escapes."""

    def __init__(self, reply_code: int, reply_text: str, method: Method | None = None) -> None:
        super().__init__(reply_code, reply_text)
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.index = method.INDEX if method is not None else 0


class _Channel:
    """The engine's book-keeping for one channel."""

    __slots__ = (
        "close_reply",
        "confirm_done",
        "confirm_low",
        "confirming",
        "consumer_seq",
        "consumers",
        "content_method",
        "content_parts",
        "content_props",
        "content_received",
        "content_size",
        "flow_active",
        "get_no_ack",
        "id",
        "next_publish_tag",
        "publish_cache",
        "queue",
        "rpc",
        "rpc_replies",
        "state",
        "unacked",
    )

    def __init__(self, channel_id: int) -> None:
        self.id = channel_id
        self.state = ChannelState.OPENING
        # The synchronous request waiting for its reply, and the replies it accepts.
        self.rpc: Method | None = None
        self.rpc_replies: tuple[int, ...] = ()
        # Commands held behind a synchronous request, in the order they were given.
        self.queue: deque[_QueuedCommand] = deque()
        # consumer tag -> no_ack
        self.consumers: dict[str, bool] = {}
        self.consumer_seq = 0
        # Delivery tags of received messages that still need ack/nack/reject.
        self.unacked: set[int] = set()
        self.get_no_ack = False
        # Publisher confirms: tags below confirm_low are all confirmed, and so are those in
        # confirm_done; next_publish_tag is the tag the next publish gets.
        self.confirming = False
        self.next_publish_tag = 1
        self.confirm_low = 1
        self.confirm_done: set[int] = set()
        self.flow_active = True
        # The message being received: its method, then its properties and body so far.
        self.content_method: Method | None = None
        self.content_props: spec.BasicProperties | None = None
        self.content_size = 0
        self.content_received = 0
        self.content_parts: list[bytes] | None = None
        self.publish_cache: dict[tuple[str, str, bool], bytes] = {}
        # (reply_code, reply_text, class_id, method_id, by_broker) of the close under way.
        self.close_reply: tuple[int, str, int, int, bool] = (0, "", 0, 0, False)


def _channel_to(chan: _Channel, event: ChannelInput) -> ChannelState:
    """Return the channel's next state from the table; the caller has checked it is legal."""
    nxt = channel_next(chan.state, event)
    assert nxt is not None, (chan.state, event)
    return nxt


def _copy(src: Buffer, start: int, end: int) -> bytes:
    """Copy ``src[start:end]`` into a new ``bytes`` exactly once."""
    if type(src) is bytes:
        return src[start:end]
    # A bytearray slice would be a bytearray (a second copy to make bytes); a memoryview slice
    # copies once. Both views are released before the caller resizes the buffer.
    with memoryview(src) as view, view[start:end] as part:
        return part.tobytes()


class Engine:
    """The client side of one AMQP 0-9-1 connection, without I/O.

    Creating the engine queues the protocol header; the handshake (Start-Ok, Tune-Ok, Open)
    then runs by itself as the broker's frames are fed in, ending with
    :class:`~amqp_core.events.ConnectionOpened`.

    Args:
        config: the settings; the defaults log in as ``guest`` to vhost ``/``.
    """

    def __init__(self, config: EngineConfig | None = None) -> None:
        self._config = config if config is not None else EngineConfig()
        self._state = ConnectionState.AWAIT_START
        self._out: list[Buffer] = [PROTOCOL_HEADER]
        # Incremented on every write: the heartbeat timer sends a heartbeat only when this has
        # not moved for an interval.
        self._writes = 1
        self._events: deque[Event] = deque()
        self._buf = bytearray()
        # A Close (of the connection or a channel), or the end of the stream, that came after
        # events the application has not taken yet waits for them (see _parse): a command
        # made while it handles them (an ack in a delivery callback) meets the state they
        # were received in, as the peer sent them, not the state the Close brings.
        self._held = False
        self._eof_held = False
        self._channels: dict[int, _Channel] = {}
        self._tune: TuneParameters | None = None
        # Before tuning, accept frames up to the size we are about to propose (spec 4.2.3:
        # "frame-min-size" is the floor everybody accepts).
        self._frame_max_in = self._config.frame_max or DEFAULT_FRAME_MAX
        self._frame_max_out = 0
        self._channel_max = 0
        self._heartbeat = 0
        self._last_received = 0.0
        self._next_heartbeat = 0.0
        self._writes_at_check = 0
        self._server_properties: FieldTable = {}
        self._blocked = False
        self._update_secret_pending = 0
        # What a ConnectionClosed says when our own close completes.
        self._close_exception: AMQPConnectionError = ConnectionClosedByClient(
            200, "Normal shutdown"
        )
        self._channel_handlers: dict[int, Callable[[_Channel, Method], None]] = {
            _DELIVER: self._recv_content_method,
            _RETURN: self._recv_content_method,
            _ACK: self._recv_confirm,
            _NACK: self._recv_confirm,
            _CANCEL: self._recv_cancel,
            _CH_FLOW: self._recv_flow,
            _CH_CLOSE: self._recv_channel_close,
            **dict.fromkeys(_ALL_REPLIES, self._recv_reply),
        }

    # ------------------------------------------------------------------ state, read-only

    @property
    def state(self) -> ConnectionState:
        """The connection's state."""
        return self._state

    @property
    def config(self) -> EngineConfig:
        """The settings the engine was built with."""
        return self._config

    @property
    def is_open(self) -> bool:
        """True once ``Open-Ok`` arrived and until a close starts."""
        return self._state is ConnectionState.OPEN

    @property
    def tune_parameters(self) -> TuneParameters | None:
        """The negotiated channel_max, frame_max and heartbeat, once tuned."""
        return self._tune

    @property
    def server_properties(self) -> FieldTable:
        """The broker's ``server-properties`` from ``Connection.Start`` (empty before)."""
        return self._server_properties

    @property
    def server_capabilities(self) -> Mapping[str, FieldValue]:
        """The ``capabilities`` table of the server properties (empty if absent)."""
        capabilities = self._server_properties.get("capabilities")
        return capabilities if isinstance(capabilities, Mapping) else {}

    @property
    def is_blocked(self) -> bool:
        """True between ``Connection.Blocked`` and ``Connection.Unblocked``."""
        return self._blocked

    @property
    def channel_ids(self) -> list[int]:
        """The numbers of the channels that are not closed, in the order they were opened."""
        return list(self._channels)

    def channel_state(self, channel_id: int) -> ChannelState:
        """Return a channel's state; an unknown or freed channel number is ``CLOSED``."""
        chan = self._channels.get(channel_id)
        return ChannelState.CLOSED if chan is None else chan.state

    def next_publish_seq_no(self, channel_id: int) -> int:
        """Return the delivery tag the next publish on a confirm-mode channel will get.

        Raises:
            ChannelStateError: the channel is not known.
        """
        return self._known_channel(channel_id, "next_publish_seq_no").next_publish_tag

    def unconfirmed_count(self, channel_id: int) -> int:
        """Return how many publishes on the channel wait for a confirm.

        Raises:
            ChannelStateError: the channel is not known.
        """
        chan = self._known_channel(channel_id, "unconfirmed_count")
        if not chan.confirming:
            return 0
        return chan.next_publish_tag - chan.confirm_low - len(chan.confirm_done)

    def unacked_count(self, channel_id: int) -> int:
        """Return how many received messages on the channel still need ack, nack or reject.

        Raises:
            ChannelStateError: the channel is not known.
        """
        return len(self._known_channel(channel_id, "unacked_count").unacked)

    # ------------------------------------------------------------------ bytes and events

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Feed bytes read from the transport; ``b""`` means the peer closed it.

        Every complete frame is parsed at once; events become available from
        :meth:`next_event`, and automatic replies from :meth:`data_to_send`. Input that breaks
        the protocol does not raise: it ends with a
        :class:`~amqp_core.events.ConnectionClosed` event. Data fed after the connection is
        ``CLOSED`` is ignored.

        One exception keeps the peer's order: a ``Connection.Close`` or ``Channel.Close``
        that follows events not yet taken with :meth:`next_event`, and the end of the stream
        in the same case, take effect only once those events are taken. So a command made
        while handling them (an ack in a delivery's callback) is accepted, as it would have
        been had the bytes come in two reads, rather than refused because of a Close the
        application has not seen yet. (The peer then discards it, as spec 2.2.4 says.)

        Args:
            data: the bytes, or ``b""`` at end of file.
            now: the current time in seconds, from the caller's monotonic clock.
        """
        if self._state is ConnectionState.CLOSED:
            return
        if not data:
            if self._events or self._held:
                self._eof_held = True
            else:
                self._on_eof()
            return
        self._last_received = now
        buf = self._buf
        if self._held:
            buf += data  # behind the held Close: parsed once it is
            return
        # After an error _parse reports everything consumed, so nothing is kept.
        if buf or type(data) is not bytes:
            buf += data
            del buf[: self._parse(buf, len(buf))]
        else:
            # Nothing buffered: parse the caller's bytes in place and keep only the tail.
            consumed = self._parse(data, len(data))
            if consumed < len(data):
                buf += memoryview(data)[consumed:]

    def next_event(self) -> Event | NeedData:
        """Return the next event, or :data:`~amqp_core.events.NEED_DATA` if there is none."""
        events = self._events
        if events:
            return events.popleft()
        if self._held:
            # Everything before the held Close is handed out: now it takes effect.
            self._held = False
            buf = self._buf
            del buf[: self._parse(buf, len(buf))]
        if self._eof_held and not self._held and not events:
            self._eof_held = False
            if self._state is not ConnectionState.CLOSED:
                self._on_eof()
        if events:
            return events.popleft()
        return NEED_DATA

    def data_to_send(self) -> bytes:
        """Return (and forget) every byte queued for the transport, joined."""
        out = self._out
        if not out:
            return b""
        self._out = []
        if len(out) == 1 and type(out[0]) is bytes:
            return out[0]
        return b"".join(out)

    def buffers_to_send(self) -> list[Buffer]:
        """Return (and forget) the queued output as a list of buffers, for vectored writes.

        Large message bodies appear as ``memoryview`` slices of the caller's body, not copies.
        """
        out = self._out
        self._out = []
        return out

    @property
    def bytes_to_send(self) -> int:
        """How many bytes are queued for the transport (for an adapter's backpressure)."""
        return sum(len(piece) for piece in self._out)

    @property
    def bytes_held(self) -> int:
        """How many bytes of commands wait behind a synchronous request, not yet queued.

        They move to :meth:`data_to_send` once the request is answered; with
        :attr:`bytes_to_send` they make up the output the engine holds.
        """
        return sum(
            len(piece)
            for chan in self._channels.values()
            for _, frames, _ in chan.queue
            for piece in frames
        )

    # ------------------------------------------------------------------ time

    def next_timer(self) -> float | None:
        """Return when :meth:`handle_timer` should next run, or None if it need not.

        Heartbeats are on from tuning until the connection is closed, if negotiated.
        """
        if not self._heartbeat or self._state is ConnectionState.CLOSED:
            return None
        return min(self._next_heartbeat, self._last_received + 2 * self._heartbeat)

    def handle_timer(self, now: float) -> None:
        """Send a heartbeat if nothing was sent lately, and detect a silent peer.

        Every ``heartbeat / 2`` seconds the engine sends a heartbeat frame unless something
        else was written since the last check. A peer from which nothing at all arrived for
        two heartbeat intervals is dead: the connection becomes ``CLOSED`` and a
        :class:`~amqp_core.events.ConnectionClosed` with
        :class:`~amqp_core.exceptions.AMQPHeartbeatTimeout` follows.

        Args:
            now: the current time in seconds, on the clock given to :meth:`receive_data`.
        """
        if not self._heartbeat or self._state is ConnectionState.CLOSED:
            return
        silent = now - self._last_received
        # The deadline compared exactly as next_timer computes it: ``now - last >= 2 * hb`` can
        # be False at ``now == last + 2 * hb`` by rounding, and the timer would fire forever.
        if now >= self._last_received + 2 * self._heartbeat:
            text = f"no data from the broker for {silent:.1f} s (heartbeat {self._heartbeat} s)"
            self._terminate(ConnectionInput.TIMEOUT, 0, text, AMQPHeartbeatTimeout(text))
            return
        if now >= self._next_heartbeat:
            if self._writes == self._writes_at_check:
                self._write(encode_heartbeat())
            self._writes_at_check = self._writes
            self._next_heartbeat = now + self._heartbeat / 2

    # ------------------------------------------------------------------ connection commands

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close the connection.

        When open, ``Connection.Close`` is sent and the state is ``CLOSING`` until the broker's
        ``Close-Ok`` (then :class:`~amqp_core.events.ConnectionClosed` with
        ``ConnectionClosedByClient``). During the handshake the connection is abandoned: it is
        ``CLOSED`` at once, with ``ConnectionOpenAborted``, and the transport should be closed.

        Args:
            reply_code: the reply code to send (200 for a normal shutdown).
            reply_text: the reply text to send.

        Raises:
            ConnectionStateError: the connection is already closing or closed.
        """
        state = self._state
        if state in (
            ConnectionState.AWAIT_START,
            ConnectionState.AWAIT_TUNE,
            ConnectionState.AWAIT_OPEN_OK,
        ):
            require_connection(state, ConnectionInput.SEND_ABORT, "close")
            text = f"the client closed the connection during the handshake ({state.value})"
            self._terminate(
                ConnectionInput.SEND_ABORT, reply_code, reply_text, ConnectionOpenAborted(text)
            )
            return
        nxt = require_connection(state, ConnectionInput.SEND_CLOSE, "close")
        frame = encode_method_frame(0, _C.Close(reply_code, reply_text, 0, 0))
        self._state = nxt
        self._close_exception = ConnectionClosedByClient(reply_code, reply_text)
        self._write(frame)

    def update_secret(self, new_secret: str | bytes, reason: str) -> None:
        """Send ``Connection.Update-Secret`` (RabbitMQ: refresh an expiring OAuth 2 token).

        The broker's ``Update-Secret-Ok`` comes back as
        :class:`~amqp_core.events.MethodReceived` on channel 0.

        Raises:
            ConnectionStateError: the connection is not open.
        """
        self._require_open("update_secret")
        self._update_secret_pending += 1
        self._write(encode_method_frame(0, _C.UpdateSecret(new_secret, reason)))

    # ------------------------------------------------------------------ channel commands

    def open_channel(self, channel_id: int | None = None) -> int:
        """Open a channel: send ``Channel.Open``; ``ChannelOpened`` follows its ``Open-Ok``.

        Args:
            channel_id: the number to use; by default the lowest free one.

        Returns:
            The channel number.

        Raises:
            ConnectionStateError: the connection is not open.
            InvalidChannelNumber: ``channel_id`` is outside 1..channel_max.
            ChannelStateError: the channel number is in use.
            NoFreeChannels: every number up to channel_max is in use.
        """
        self._require_open("open_channel")
        channels = self._channels
        if channel_id is None:
            channel_id = next(
                (n for n in range(1, self._channel_max + 1) if n not in channels), None
            )
            if channel_id is None:
                raise NoFreeChannels(f"all {self._channel_max} channels are in use")
        elif not 1 <= channel_id <= self._channel_max:
            raise InvalidChannelNumber(f"channel {channel_id} is outside 1..{self._channel_max}")
        elif channel_id in channels:
            state = channels[channel_id].state.value
            raise ChannelStateError(
                f"can't open_channel {channel_id} when channel {channel_id} is {state}",
                state=state,
                command="open_channel",
            )
        channels[channel_id] = _Channel(channel_id)
        self._write(encode_method_frame(channel_id, spec.Channel.Open()))
        return channel_id

    def close_channel(
        self, channel_id: int, reply_code: int = 200, reply_text: str = "Normal shutdown"
    ) -> None:
        """Close a channel: send ``Channel.Close``; ``ChannelClosed`` follows its ``Close-Ok``.

        Commands held behind a synchronous request on this channel are dropped, and anything
        the broker sends on it before ``Close-Ok`` is discarded (spec 2.2.5).

        Raises:
            ConnectionStateError: the connection is not open.
            ChannelStateError: the channel is not opening or open.
        """
        self._require_open("close_channel")
        chan = self._known_channel(channel_id, "close_channel")
        chan.state = require_channel(
            channel_id, chan.state, ChannelInput.SEND_CLOSE, "close_channel"
        )
        chan.queue.clear()
        chan.rpc = None
        chan.content_method = None
        chan.content_props = None
        chan.content_parts = None
        chan.close_reply = (reply_code, reply_text, 0, 0, False)
        self._write(
            encode_method_frame(channel_id, spec.Channel.Close(reply_code, reply_text, 0, 0))
        )

    def send_method(self, channel_id: int, method: Method) -> None:
        """Send any method a client may send, with the engine's book-keeping.

        One synchronous request is in flight per channel: while one waits for its reply, later
        commands on the channel are held and sent in order once it is answered, so a publish
        never overtakes the declaration it depends on. The reply comes back as an event
        (mostly :class:`~amqp_core.events.MethodReceived`).

        Use :meth:`publish` for ``Basic.Publish``, :meth:`open_channel` / :meth:`close_channel`
        for ``Channel.Open`` / ``Close``, and :meth:`close` for ``Connection.Close``.

        Args:
            channel_id: the channel (0 for ``Connection.Update-Secret``).
            method: the method, for example ``spec.Queue.Declare(queue="q")``.

        Raises:
            LocalProtocolError: the method is not one a client sends this way, or it
                acknowledges a delivery tag that is not outstanding, or it reuses a consumer
                tag, or cancels an unknown one.
            ConnectionStateError: the connection is not open.
            ChannelStateError: the channel is not open.
        """
        index = method.INDEX
        if channel_id == 0:
            if index != _UPDATE_SECRET:
                raise LocalProtocolError(
                    f"can't send_method {method.NAME} on channel 0",
                    state=self._state.value,
                    command=method.NAME,
                )
            assert isinstance(method, _C.UpdateSecret)
            self.update_secret(method.new_secret, method.reason)
            return
        replies = _REPLIES.get(index)
        if replies is None and index not in _CLIENT_ASYNC:
            raise LocalProtocolError(
                f"can't send_method {method.NAME}: it is not a method a client sends this way",
                state=self._state.value,
                command=method.NAME,
            )
        chan = self._open_channel(channel_id, method.NAME)
        if index in (_ACK, _NACK, _REJECT):
            self._settle(chan, method)
        elif index == _CONSUME:
            self._check_consume(chan, method)
        elif index == _CANCEL:
            assert isinstance(method, _B.Cancel)
            if method.consumer_tag not in chan.consumers:
                raise LocalProtocolError(
                    f"can't cancel consumer {method.consumer_tag!r} on channel {channel_id}: "
                    "no such consumer",
                    state=chan.state.value,
                    command=method.NAME,
                )
            if method.nowait:
                del chan.consumers[method.consumer_tag]
        elif index == _CONFIRM_SELECT:
            # Publishes after Confirm.Select are confirmed even before Select-Ok arrives: the
            # broker handles the channel's frames in order.
            chan.confirming = True
        elif index in (_RECOVER, _RECOVER_ASYNC):
            # The broker redelivers every unacknowledged message, with new delivery tags.
            chan.unacked.clear()
        if replies is not None and getattr(method, "nowait", False):
            replies = None
        self._submit(chan, method, [encode_method_frame(channel_id, method)], replies)

    def publish(
        self,
        channel_id: int,
        exchange: str,
        routing_key: str,
        body: bytes | bytearray | memoryview,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> int | None:
        """Publish a message: ``Basic.Publish``, its content header and body frames.

        The body is split into frames of the negotiated ``frame_max``. A mandatory message
        that cannot be routed comes back as :class:`~amqp_core.events.MessageReturned`.

        Args:
            channel_id: the channel.
            exchange: the exchange name (``""`` for the default exchange).
            routing_key: the routing key.
            body: the message body; a large one is not copied until written.
            properties: the content properties, or None for none.
            mandatory: ask the broker to return the message if no queue takes it.

        Returns:
            The publish sequence number (delivery tag of the coming confirm) on a channel in
            confirm mode, else None.

        Raises:
            ConnectionStateError: the connection is not open.
            ChannelStateError: the channel is not open, or the broker stopped its flow.
        """
        chan = self._channels.get(channel_id)
        if (
            chan is None
            or chan.state is not ChannelState.OPEN
            or self._state is not ConnectionState.OPEN
        ):
            chan = self._open_channel(channel_id, "publish")
        if not chan.flow_active:
            raise ChannelStateError(
                f"can't publish on channel {channel_id}: the broker stopped its flow "
                "(Channel.Flow active=false)",
                state=chan.state.value,
                command="publish",
            )
        key = (exchange, routing_key, mandatory)
        method_frame = chan.publish_cache.get(key)
        if method_frame is None:
            method_frame = encode_method_frame(
                channel_id,
                _B.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
            )
            if len(chan.publish_cache) >= PUBLISH_CACHE_SIZE:
                chan.publish_cache.clear()
            chan.publish_cache[key] = method_frame
        pieces = encode_message(
            channel_id,
            method_frame,
            properties,
            body,
            self._frame_max_out,
        )
        if chan.queue:
            chan.queue.append((None, pieces, None))
        else:
            self._out.extend(pieces)
            self._writes += 1
        if chan.confirming:
            tag = chan.next_publish_tag
            chan.next_publish_tag = tag + 1
            return tag
        return None

    def ack(self, channel_id: int, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Acknowledge a delivery (``Basic.Ack``).

        Args:
            channel_id: the channel the message arrived on.
            delivery_tag: its delivery tag; with ``multiple``, 0 means every outstanding one.
            multiple: acknowledge every outstanding delivery up to ``delivery_tag`` too.

        Raises:
            LocalProtocolError: the tag was never delivered, or is already settled.
            ConnectionStateError: the connection is not open.
            ChannelStateError: the channel is not open.
        """
        self.send_method(channel_id, _B.Ack(delivery_tag, multiple))

    def nack(
        self, channel_id: int, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Refuse a delivery (``Basic.Nack``, a RabbitMQ extension); see :meth:`ack`.

        Args:
            channel_id: the channel the message arrived on.
            delivery_tag: its delivery tag; with ``multiple``, 0 means every outstanding one.
            multiple: refuse every outstanding delivery up to ``delivery_tag`` too.
            requeue: put the message(s) back in the queue rather than drop or dead-letter them.

        Raises:
            LocalProtocolError: as :meth:`ack`.
            ConnectionStateError: the connection is not open.
            ChannelStateError: the channel is not open.
        """
        self.send_method(channel_id, _B.Nack(delivery_tag, multiple, requeue))

    def reject(self, channel_id: int, delivery_tag: int, requeue: bool = True) -> None:
        """Refuse one delivery (``Basic.Reject``); see :meth:`nack`.

        Raises:
            LocalProtocolError: as :meth:`ack`.
            ConnectionStateError: the connection is not open.
            ChannelStateError: the channel is not open.
        """
        self.send_method(channel_id, _B.Reject(delivery_tag, requeue))

    def consume(
        self,
        channel_id: int,
        queue: str,
        consumer_tag: str = "",
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: Mapping[str, FieldValue] | None = None,
    ) -> str:
        """Start a consumer (``Basic.Consume``); ``Consume-Ok`` comes as ``MethodReceived``.

        Args:
            channel_id: the channel.
            queue: the queue to consume from.
            consumer_tag: the consumer tag; by default the engine makes one
                (``ctag<channel>.<n>``, unique on the channel).
            no_ack: the broker considers messages acknowledged once sent.
            exclusive: ask to be the queue's only consumer.
            arguments: consumer arguments (for example ``x-priority``).

        Returns:
            The consumer tag.

        Raises:
            LocalProtocolError: the consumer tag is in use on the channel.
            ConnectionStateError: the connection is not open.
            ChannelStateError: the channel is not open.
        """
        chan = self._open_channel(channel_id, "consume")
        if not consumer_tag:
            chan.consumer_seq += 1
            consumer_tag = f"ctag{channel_id}.{chan.consumer_seq}"
        self.send_method(
            channel_id,
            _B.Consume(
                queue=queue,
                consumer_tag=consumer_tag,
                no_ack=no_ack,
                exclusive=exclusive,
                arguments=dict(arguments) if arguments else {},
            ),
        )
        return consumer_tag

    def cancel(self, channel_id: int, consumer_tag: str) -> None:
        """Cancel a consumer (``Basic.Cancel``); ``Cancel-Ok`` comes as ``MethodReceived``.

        Raises:
            LocalProtocolError: no consumer has this tag on the channel.
            ConnectionStateError: the connection is not open.
            ChannelStateError: the channel is not open.
        """
        self.send_method(channel_id, _B.Cancel(consumer_tag))

    def qos(
        self,
        channel_id: int,
        prefetch_count: int = 0,
        prefetch_size: int = 0,
        global_qos: bool = False,
    ) -> None:
        """Set the prefetch window (``Basic.Qos``); ``Qos-Ok`` comes as ``MethodReceived``.

        In RabbitMQ, ``global_qos=False`` applies the limit to each consumer started after it
        (the ``per_consumer_qos`` capability), ``True`` to the whole channel.

        Raises:
            ConnectionStateError: the connection is not open.
            ChannelStateError: the channel is not open.
        """
        self.send_method(channel_id, _B.Qos(prefetch_size, prefetch_count, global_qos))

    def get(self, channel_id: int, queue: str, no_ack: bool = False) -> None:
        """Ask for one message (``Basic.Get``); ``GetOk`` or ``GetEmpty`` follows.

        Raises:
            ConnectionStateError: the connection is not open.
            ChannelStateError: the channel is not open.
        """
        self.send_method(channel_id, _B.Get(queue=queue, no_ack=no_ack))

    def confirm_select(self, channel_id: int) -> None:
        """Put the channel in publisher-confirm mode (``Confirm.Select``).

        From then on, :meth:`publish` returns a sequence number counted from 1, and every
        publish is answered by :class:`~amqp_core.events.PublishAcked` or
        :class:`~amqp_core.events.PublishNacked` (possibly covering several with
        ``multiple``).

        Raises:
            ConnectionStateError: the connection is not open.
            ChannelStateError: the channel is not open.
        """
        self.send_method(channel_id, spec.Confirm.Select())

    # ------------------------------------------------------------------ command helpers

    def _require_open(self, command: str) -> None:
        if self._state is not ConnectionState.OPEN:
            raise ConnectionStateError(
                f"can't {command} when the connection is {self._state.value}",
                state=self._state.value,
                command=command,
            )

    def _known_channel(self, channel_id: int, command: str) -> _Channel:
        chan = self._channels.get(channel_id)
        if chan is None:
            raise ChannelStateError(
                f"can't {command} on channel {channel_id}: it is CLOSED",
                state=ChannelState.CLOSED.value,
                command=command,
            )
        return chan

    def _open_channel(self, channel_id: int, command: str) -> _Channel:
        self._require_open(command)
        chan = self._known_channel(channel_id, command)
        if chan.state is not ChannelState.OPEN:
            raise ChannelStateError(
                f"can't {command} on channel {channel_id}: it is {chan.state.value}",
                state=chan.state.value,
                command=command,
            )
        return chan

    def _settle(self, chan: _Channel, method: Method) -> None:
        """Check and forget the delivery tag(s) an Ack, Nack or Reject settles."""
        assert isinstance(method, (_B.Ack, _B.Nack, _B.Reject))
        tag = method.delivery_tag
        multiple = not isinstance(method, _B.Reject) and method.multiple
        unacked = chan.unacked
        if multiple and tag == 0:
            # Spec (basic.ack): "If the multiple field is 1, and the delivery tag is zero, this
            # indicates acknowledgement of all outstanding messages."
            unacked.clear()
            return
        if tag not in unacked:
            raise LocalProtocolError(
                f"can't {method.NAME} delivery tag {tag} on channel {chan.id}: it was never "
                "delivered, was delivered with no_ack, or is already settled",
                state=chan.state.value,
                command=method.NAME,
            )
        if multiple:
            chan.unacked = {t for t in unacked if t > tag}
        else:
            unacked.remove(tag)

    def _check_consume(self, chan: _Channel, method: Method) -> None:
        assert isinstance(method, _B.Consume)
        tag = method.consumer_tag
        pending = [chan.rpc, *(queued for queued, _, _ in chan.queue)]
        if tag and (
            tag in chan.consumers
            or any(isinstance(other, _B.Consume) and other.consumer_tag == tag for other in pending)
        ):
            raise LocalProtocolError(
                f"can't consume with consumer tag {tag!r} on channel {chan.id}: it is in use",
                state=chan.state.value,
                command=method.NAME,
            )
        if method.nowait:
            if not tag:
                raise LocalProtocolError(
                    f"can't consume with nowait and no consumer tag on channel {chan.id}: the "
                    "broker's tag would never be known",
                    state=chan.state.value,
                    command=method.NAME,
                )
            chan.consumers[tag] = method.no_ack

    def _submit(
        self, chan: _Channel, method: Method, frames: list[Buffer], replies: tuple[int, ...] | None
    ) -> None:
        """Send now, or hold behind the synchronous request in flight (keeping the order)."""
        if chan.queue or (replies is not None and chan.rpc is not None):
            chan.queue.append((method, frames, replies))
            return
        self._out.extend(frames)
        self._writes += 1
        if replies is not None:
            chan.rpc = method
            chan.rpc_replies = replies

    def _drain(self, chan: _Channel) -> None:
        """Send the held commands up to and including the next synchronous request."""
        queue = chan.queue
        while queue and chan.rpc is None:
            method, frames, replies = queue.popleft()
            self._out.extend(frames)
            self._writes += 1
            if replies is not None:
                chan.rpc = method
                chan.rpc_replies = replies

    def _write(self, data: Buffer) -> None:
        self._out.append(data)
        self._writes += 1

    # ------------------------------------------------------------------ receive path

    def _parse(self, src: Buffer, end: int) -> int:
        """Handle every complete frame in ``src[:end]``; return how many bytes were used."""
        offset = 0
        try:
            if self._state is ConnectionState.AWAIT_START and src[0] == PROTOCOL_HEADER[0]:
                # Frames start with a type octet (1, 2, 3 or 8); "A" starts a protocol header,
                # which a broker sends back when it does not speak our version (spec 4.2.2).
                if end < len(PROTOCOL_HEADER):
                    return 0
                header = bytes(src[: len(PROTOCOL_HEADER)])
                text = f"the broker answered with the protocol header {header!r}, not AMQP 0-9-1"
                self._terminate(ConnectionInput.FAIL, 0, text, IncompatibleProtocolError(text))
                return end
            while True:
                if end - offset >= 11 and src[offset] == _FRAME_METHOD:
                    # Most frames received are deliveries: try them whole, in one call.
                    after = self._recv_delivery(src, offset, end)
                    if after:
                        offset = after
                        continue
                located = parse_frame_header(src, offset, end, self._frame_max_in)
                if located is None:
                    return offset
                frame_type, channel_id, start, stop = located
                if (
                    frame_type == _FRAME_METHOD
                    and self._events
                    and stop - start >= 4
                    and _unpack_index(src, start)[0] in _CLOSES
                ):
                    self._held = True  # until next_event() has handed out what came first
                    return offset
                offset = stop + 1
                if frame_type == _FRAME_METHOD:
                    method = decode_method_payload(src, start, stop)
                    if channel_id:
                        self._recv_channel_method(channel_id, method)
                    else:
                        self._recv_connection_method(method)
                elif frame_type == _FRAME_BODY:
                    self._recv_body(channel_id, src, start, stop)
                elif frame_type == _FRAME_HEADER:
                    self._recv_header(channel_id, src, start, stop)
                elif frame_type == _FRAME_HEARTBEAT:
                    # Spec 4.2.7: heartbeats travel on channel 0 and carry no payload.
                    if channel_id or stop != start:
                        raise InvalidFrameError(
                            f"heartbeat frame on channel {channel_id} with "
                            f"{stop - start} payload bytes"
                        )
                else:
                    raise InvalidFrameError(
                        f"unknown frame type {frame_type} on channel {channel_id}"
                    )
                if self._state is ConnectionState.CLOSED:
                    return end
        except AMQPCodecError as exc:
            self._fail(exc.reply_code, f"{exc.reason} (connection {self._state.value})")
        except _PeerError as exc:
            self._fail(exc.reply_code, exc.reply_text, exc.index)
        return end

    def _recv_delivery(self, src: Buffer, offset: int, end: int) -> int:
        """The fast path for a ``Basic.Deliver`` or ``Basic.Return`` and its content.

        When the method frame at ``offset`` is one of them, its content header and body have
        all arrived, and the channel is open and expects no other content, the message is
        decoded in one call (:func:`~amqp_core.frame.decode_content`) and delivered.

        Returns:
            The offset after the message, or 0 when the frame-by-frame path must handle it
            (anything else, an incomplete message, or anything that path reports or discards).
        """
        index = _unpack_index(src, offset + 7)[0]
        if (index != _DELIVER and index != _RETURN) or self._state is not ConnectionState.OPEN:
            return 0
        fused = decode_content(src, offset, end, self._frame_max_in)
        if fused is None:
            return 0
        channel_id, method, properties, body, after = fused
        chan = self._channels.get(channel_id)
        if (
            chan is None
            or chan.state is not ChannelState.OPEN
            or chan.content_method is not None
            or len(body) > self._config.max_message_size
        ):
            return 0
        assert isinstance(properties, spec.BasicProperties)
        self._deliver(chan, method, properties, body)
        return after

    def _recv_connection_method(self, method: Method) -> None:
        index = method.INDEX
        state = self._state
        if state is ConnectionState.CLOSING and index != _CLOSE and index != _CLOSE_OK:
            # Spec 2.2.4: after sending Close, discard everything but Close and Close-Ok.
            return
        if index == _START:
            self._recv_start(method, self._expect(ConnectionInput.RECV_START, method))
        elif index == _TUNE:
            self._recv_tune(method, self._expect(ConnectionInput.RECV_TUNE, method))
        elif index == _OPEN_OK:
            self._state = self._expect(ConnectionInput.RECV_OPEN_OK, method)
            assert isinstance(method, _C.OpenOk)
            self._events.append(
                ConnectionOpened(
                    server_properties=self._server_properties, known_hosts=method.known_hosts
                )
            )
        elif index == _CLOSE:
            assert isinstance(method, _C.Close)
            # Spec 2.2.4: answer the peer's Close with Close-Ok, then the connection is over.
            self._write(encode_method_frame(0, _C.CloseOk()))
            self._terminate(
                ConnectionInput.RECV_CLOSE,
                method.reply_code,
                method.reply_text,
                ConnectionClosedByBroker(method.reply_code, method.reply_text),
                method.class_id,
                method.method_id,
            )
        elif index == _CLOSE_OK:
            self._expect(ConnectionInput.RECV_CLOSE_OK, method)
            exc = self._close_exception
            code, text = exc.args[0], exc.args[1]
            self._terminate(ConnectionInput.RECV_CLOSE_OK, code, text, exc)
        elif (
            index == _BLOCKED
            and state is not ConnectionState.AWAIT_START
            and state is not ConnectionState.AWAIT_TUNE
        ):
            assert isinstance(method, _C.Blocked)
            self._blocked = True
            self._events.append(ConnectionBlocked(reason=method.reason))
        elif (
            index == _UNBLOCKED
            and state is not ConnectionState.AWAIT_START
            and state is not ConnectionState.AWAIT_TUNE
        ):
            self._blocked = False
            self._events.append(ConnectionUnblocked())
        elif index == _UPDATE_SECRET_OK and self._update_secret_pending:
            self._update_secret_pending -= 1
            self._events.append(MethodReceived(channel_id=0, method=method))
        elif index == _SECURE and state is ConnectionState.AWAIT_TUNE:
            text = (
                "the broker sent a Connection.Secure challenge, which no supported mechanism uses"
            )
            self._fail(spec.NOT_IMPLEMENTED, text, index, AuthenticationError(text))
        else:
            raise _PeerError(
                spec.COMMAND_INVALID,
                f"unexpected {method.NAME} on channel 0 when the connection is {state.value}",
                method,
            )

    def _expect(self, event: ConnectionInput, method: Method) -> ConnectionState:
        nxt = connection_next(self._state, event)
        if nxt is None:
            raise _PeerError(
                spec.COMMAND_INVALID,
                f"unexpected {method.NAME} when the connection is {self._state.value}",
                method,
            )
        return nxt

    def _recv_start(self, method: Method, nxt: ConnectionState) -> None:
        assert isinstance(method, _C.Start)
        # Spec 1.4.2.1 (connection.start): "If the server cannot support the protocol specified
        # in the protocol header, it MUST respond with a valid protocol header and then close"
        # - a Start that names another version is the same refusal.
        if (method.version_major, method.version_minor) != (0, 9):
            text = (
                f"the broker speaks AMQP {method.version_major}-{method.version_minor}, not 0-9-1"
            )
            self._terminate(ConnectionInput.FAIL, 0, text, IncompatibleProtocolError(text))
            return
        self._server_properties = dict(method.server_properties or {})
        credentials = self._config.credentials
        mechanism, response = credentials.response_for(method)
        if mechanism is None or response is None:
            text = (
                f"the broker offers the mechanisms {method.mechanisms!r}; "
                f"{type(credentials).__name__} can use none of them"
            )
            self._terminate(ConnectionInput.FAIL, 0, text, AuthenticationError(text))
            return
        self._state = nxt
        self._write(
            encode_method_frame(
                0,
                _C.StartOk(
                    client_properties=self._config.build_client_properties(),
                    mechanism=mechanism,
                    response=response,
                    locale=self._config.locale,
                ),
            )
        )
        credentials.erase_credentials()

    def _recv_tune(self, method: Method, nxt: ConnectionState) -> None:
        assert isinstance(method, _C.Tune)
        try:
            tune = negotiate(self._config, method.channel_max, method.frame_max, method.heartbeat)
        except ValueError as exc:
            raise _PeerError(spec.NOT_ALLOWED, str(exc), method) from None
        self._state = nxt
        self._tune = tune
        self._channel_max = tune.usable_channel_max
        self._frame_max_out = tune.frame_max
        # With no frame limit negotiated, a frame can still not be bigger than the biggest
        # message we accept plus its framing; that keeps the receive buffer bounded.
        self._frame_max_in = tune.frame_max or self._config.max_message_size + 8
        self._heartbeat = tune.heartbeat
        self._write(
            encode_method_frame(0, _C.TuneOk(tune.channel_max, tune.frame_max, tune.heartbeat))
        )
        self._write(encode_method_frame(0, _C.Open(virtual_host=self._config.virtual_host)))
        now = self._last_received
        self._next_heartbeat = now + tune.heartbeat / 2
        self._writes_at_check = self._writes
        self._events.append(
            ConnectionTuned(
                channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=tune.heartbeat
            )
        )

    def _recv_channel_method(self, channel_id: int, method: Method) -> None:
        state = self._state
        if state is not ConnectionState.OPEN:
            if state is ConnectionState.CLOSING:
                return
            raise _PeerError(
                spec.CHANNEL_ERROR,
                f"{method.NAME} on channel {channel_id} when the connection is {state.value}",
                method,
            )
        chan = self._channels.get(channel_id)
        if chan is None:
            raise _PeerError(
                spec.CHANNEL_ERROR,
                f"{method.NAME} on channel {channel_id}, which is not open",
                method,
            )
        chan_state = chan.state
        if chan_state is ChannelState.OPEN:
            if chan.content_method is not None:
                raise _PeerError(
                    spec.UNEXPECTED_FRAME,
                    f"{method.NAME} on channel {channel_id} while the content of "
                    f"{chan.content_method.NAME} was expected",
                    method,
                )
            handler = self._channel_handlers.get(method.INDEX)
            if handler is None:
                raise _PeerError(
                    spec.COMMAND_INVALID,
                    f"unexpected {method.NAME} on channel {channel_id}, which is OPEN",
                    method,
                )
            handler(chan, method)
            return
        index = method.INDEX
        if chan_state is ChannelState.OPENING:
            if index == _CH_OPEN_OK:
                chan.state = _channel_to(chan, ChannelInput.RECV_OPEN_OK)
                self._events.append(ChannelOpened(channel_id=channel_id))
            elif index == _CH_CLOSE:
                self._recv_channel_close(chan, method)
            else:
                raise _PeerError(
                    spec.COMMAND_INVALID,
                    f"unexpected {method.NAME} on channel {channel_id}, which is OPENING",
                    method,
                )
            return
        # CLOSING: spec 2.2.5, discard everything but Close and Close-Ok.
        if index == _CH_CLOSE:
            assert isinstance(method, spec.Channel.Close)
            # Both sides closed at once: answer, and keep waiting for our Close-Ok; the
            # broker's reason is the more useful one to report.
            self._write(encode_method_frame(channel_id, spec.Channel.CloseOk()))
            chan.state = _channel_to(chan, ChannelInput.RECV_CLOSE)
            chan.close_reply = (
                method.reply_code,
                method.reply_text,
                method.class_id,
                method.method_id,
                True,
            )
        elif index == _CH_CLOSE_OK:
            chan.state = _channel_to(chan, ChannelInput.RECV_CLOSE_OK)
            del self._channels[channel_id]
            code, text, class_id, method_id, by_broker = chan.close_reply
            self._events.append(
                ChannelClosed(
                    channel_id=channel_id,
                    reply_code=code,
                    reply_text=text,
                    class_id=class_id,
                    method_id=method_id,
                    by_broker=by_broker,
                )
            )

    def _recv_channel_close(self, chan: _Channel, method: Method) -> None:
        assert isinstance(method, spec.Channel.Close)
        self._write(encode_method_frame(chan.id, spec.Channel.CloseOk()))
        chan.state = _channel_to(chan, ChannelInput.RECV_CLOSE)
        del self._channels[chan.id]
        self._events.append(
            ChannelClosed(
                channel_id=chan.id,
                reply_code=method.reply_code,
                reply_text=method.reply_text,
                class_id=method.class_id,
                method_id=method.method_id,
                by_broker=True,
            )
        )

    def _recv_reply(self, chan: _Channel, method: Method) -> None:
        index = method.INDEX
        request = chan.rpc
        if request is None or index not in chan.rpc_replies:
            waiting = "nothing" if request is None else request.NAME
            raise _PeerError(
                spec.COMMAND_INVALID,
                f"unexpected {method.NAME} on channel {chan.id}, which waits for {waiting}",
                method,
            )
        chan.rpc = None
        if index == _GET_OK:
            assert isinstance(request, _B.Get)
            chan.get_no_ack = request.no_ack
            chan.content_method = method
        elif index == _GET_EMPTY:
            assert isinstance(method, _B.GetEmpty)
            self._events.append(GetEmpty(channel_id=chan.id, method=method))
        else:
            if index == _CONSUME_OK:
                assert isinstance(request, _B.Consume)
                assert isinstance(method, _B.ConsumeOk)
                chan.consumers[method.consumer_tag] = request.no_ack
            elif index == _CANCEL_OK:
                assert isinstance(method, _B.CancelOk)
                chan.consumers.pop(method.consumer_tag, None)
            self._events.append(MethodReceived(channel_id=chan.id, method=method))
        self._drain(chan)

    def _recv_content_method(self, chan: _Channel, method: Method) -> None:
        chan.content_method = method

    def _recv_confirm(self, chan: _Channel, method: Method) -> None:
        assert isinstance(method, (_B.Ack, _B.Nack))
        tag = method.delivery_tag
        if not chan.confirming:
            raise _PeerError(
                spec.COMMAND_INVALID,
                f"{method.NAME} on channel {chan.id}, which is not in confirm mode",
                method,
            )
        low = chan.confirm_low
        done = chan.confirm_done
        if not low <= tag < chan.next_publish_tag or tag in done:
            raise _PeerError(
                spec.PRECONDITION_FAILED,
                f"{method.NAME} for delivery tag {tag} on channel {chan.id}, which is not an "
                "unconfirmed publish",
                method,
            )
        if method.multiple:
            done.difference_update([t for t in done if t <= tag])
            low = tag + 1
        elif tag == low:
            low += 1
        else:
            done.add(tag)
        while low in done:
            done.remove(low)
            low += 1
        chan.confirm_low = low
        if method.INDEX == _ACK:
            self._events.append(
                PublishAcked(channel_id=chan.id, delivery_tag=tag, multiple=method.multiple)
            )
        else:
            self._events.append(
                PublishNacked(channel_id=chan.id, delivery_tag=tag, multiple=method.multiple)
            )

    def _recv_cancel(self, chan: _Channel, method: Method) -> None:
        assert isinstance(method, _B.Cancel)
        # RabbitMQ's consumer_cancel_notify: the broker cancels a consumer (queue deleted,
        # node down); answer Cancel-Ok unless told not to.
        chan.consumers.pop(method.consumer_tag, None)
        if not method.nowait:
            self._write(encode_method_frame(chan.id, _B.CancelOk(method.consumer_tag)))
        self._events.append(ConsumerCancelled(channel_id=chan.id, consumer_tag=method.consumer_tag))

    def _recv_flow(self, chan: _Channel, method: Method) -> None:
        assert isinstance(method, spec.Channel.Flow)
        chan.flow_active = method.active
        self._write(encode_method_frame(chan.id, spec.Channel.FlowOk(method.active)))
        self._events.append(ChannelFlowChanged(channel_id=chan.id, active=method.active))

    def _content_channel(self, channel_id: int, what: str) -> _Channel | None:
        """Return the channel a content frame belongs to, None to discard it, or raise."""
        state = self._state
        if state is ConnectionState.CLOSING:
            return None
        chan = self._channels.get(channel_id) if state is ConnectionState.OPEN else None
        if chan is None:
            raise _PeerError(
                spec.UNEXPECTED_FRAME,
                f"{what} frame on channel {channel_id}, which has no message under way "
                f"(connection {state.value})",
            )
        if chan.state is ChannelState.CLOSING:
            return None
        return chan

    def _recv_header(self, channel_id: int, src: Buffer, start: int, stop: int) -> None:
        chan = self._content_channel(channel_id, "content header")
        if chan is None:
            return
        if chan.content_method is None or chan.content_props is not None:
            raise _PeerError(
                spec.UNEXPECTED_FRAME,
                f"content header frame on channel {channel_id}, which expects none",
            )
        # Only class Basic carries content, and decode_header_payload refuses a class without
        # content (540), so the header's class always matches the Basic method before it.
        _, body_size, properties = decode_header_payload(src, start, stop)
        if body_size > self._config.max_message_size:
            # Refuse cleanly: close the channel, which discards the coming body frames (spec
            # 2.2.5) and leaves the message with the broker, unacknowledged.
            text = (
                f"CONTENT_TOO_LARGE - a message body of {body_size} bytes is over the "
                f"max_message_size of {self._config.max_message_size}"
            )
            method = chan.content_method
            chan.state = _channel_to(chan, ChannelInput.SEND_CLOSE)
            chan.queue.clear()
            chan.rpc = None
            chan.content_method = None
            chan.close_reply = (
                spec.CONTENT_TOO_LARGE,
                text,
                method.INDEX >> 16,
                method.INDEX & 0xFFFF,
                False,
            )
            self._write(
                encode_method_frame(
                    channel_id,
                    spec.Channel.Close(
                        spec.CONTENT_TOO_LARGE, text, method.INDEX >> 16, method.INDEX & 0xFFFF
                    ),
                )
            )
            return
        assert isinstance(properties, spec.BasicProperties)
        chan.content_props = properties
        chan.content_size = body_size
        if not body_size:
            self._finish_content(chan, b"")

    def _recv_body(self, channel_id: int, src: Buffer, start: int, stop: int) -> None:
        chan = self._content_channel(channel_id, "content body")
        if chan is None:
            return
        if chan.content_props is None:
            raise _PeerError(
                spec.UNEXPECTED_FRAME,
                f"content body frame on channel {channel_id}, which expects "
                + ("a content header" if chan.content_method is not None else "no content"),
            )
        received = chan.content_received + stop - start
        size = chan.content_size
        if received > size:
            raise BodyTooLongError(
                f"content body frames on channel {channel_id} add up to more than the "
                f"{size} bytes the content header announced"
            )
        parts = chan.content_parts
        if received == size and parts is None:
            # The common case: the whole body in one frame, copied once.
            self._finish_content(chan, _copy(src, start, stop))
            return
        if parts is None:
            parts = chan.content_parts = []
        parts.append(_copy(src, start, stop))
        if received == size:
            self._finish_content(chan, b"".join(parts))
        else:
            chan.content_received = received

    def _finish_content(self, chan: _Channel, body: bytes) -> None:
        method = chan.content_method
        properties = chan.content_props
        assert method is not None
        assert properties is not None
        chan.content_method = None
        chan.content_props = None
        chan.content_parts = None
        chan.content_received = 0
        self._deliver(chan, method, properties, body)

    def _deliver(
        self, chan: _Channel, method: Method, properties: spec.BasicProperties, body: bytes
    ) -> None:
        index = method.INDEX
        if index == _DELIVER:
            assert isinstance(method, _B.Deliver)
            if not chan.consumers.get(method.consumer_tag, False):
                chan.unacked.add(method.delivery_tag)
            self._events.append(
                MessageDelivered(
                    channel_id=chan.id, method=method, properties=properties, body=body
                )
            )
        elif index == _GET_OK:
            assert isinstance(method, _B.GetOk)
            if not chan.get_no_ack:
                chan.unacked.add(method.delivery_tag)
            self._events.append(
                GetOk(channel_id=chan.id, method=method, properties=properties, body=body)
            )
        else:
            assert isinstance(method, _B.Return)
            self._events.append(
                MessageReturned(channel_id=chan.id, method=method, properties=properties, body=body)
            )

    # ------------------------------------------------------------------ endings

    def _on_eof(self) -> None:
        state = self._state
        exc: AMQPConnectionError
        if state is ConnectionState.AWAIT_START:
            text = (
                "the peer closed the connection before Connection.Start: not an AMQP 0-9-1 broker?"
            )
            exc = IncompatibleProtocolError(text)
        elif state is ConnectionState.AWAIT_TUNE:
            text = "the broker closed the connection after Start-Ok: probably bad credentials"
            exc = ProbableAuthenticationError(text)
        elif state is ConnectionState.AWAIT_OPEN_OK:
            text = (
                f"the broker closed the connection after Connection.Open: probably the virtual "
                f"host {self._config.virtual_host!r} is missing or not permitted"
            )
            exc = ProbableAccessDeniedError(text)
        elif state is ConnectionState.CLOSING:
            # We asked to close and the broker dropped the transport instead of Close-Ok.
            exc = self._close_exception
            text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        else:
            text = "the connection was lost"
            if self._buf:
                text += f" in the middle of a frame ({len(self._buf)} bytes of it received)"
            elif any(chan.content_method is not None for chan in self._channels.values()):
                text += " in the middle of a message"
            exc = StreamLostError(text)
        code = exc.args[0] if isinstance(exc, ConnectionClosedByClient) else 0
        self._buf.clear()
        self._terminate(ConnectionInput.EOF, code, text, exc)

    def _fail(
        self,
        reply_code: int,
        reply_text: str,
        index: int = 0,
        exception: AMQPConnectionError | None = None,
    ) -> None:
        """The peer broke the protocol: send Connection.Close with the code, and end."""
        class_id, method_id = index >> 16, index & 0xFFFF
        if self._state in (
            ConnectionState.AWAIT_TUNE,
            ConnectionState.AWAIT_OPEN_OK,
            ConnectionState.OPEN,
        ):
            text = reply_text.encode("utf-8")[:255].decode("utf-8", "ignore")
            self._write(encode_method_frame(0, _C.Close(reply_code, text, class_id, method_id)))
        if exception is None:
            exception = RemoteProtocolError(reply_code, reply_text, class_id, method_id)
        self._terminate(
            ConnectionInput.FAIL, reply_code, reply_text, exception, class_id, method_id
        )

    def _terminate(
        self,
        cause: ConnectionInput,
        reply_code: int,
        reply_text: str,
        exception: AMQPConnectionError,
        class_id: int = 0,
        method_id: int = 0,
    ) -> None:
        nxt = connection_next(self._state, cause)
        assert nxt is ConnectionState.CLOSED
        self._state = nxt
        for chan in self._channels.values():
            chan.state = ChannelState.CLOSED
        self._channels.clear()
        self._events.append(
            ConnectionClosed(
                reply_code=reply_code,
                reply_text=reply_text,
                class_id=class_id,
                method_id=method_id,
                exception=exception,
            )
        )
