"""A small in-memory AMQP 0-9-1 broker, for testing clients without a socket.

:class:`FakeBroker` is a sans-I/O peer: feed it the client's bytes with :meth:`receive_data`,
hand :meth:`data_to_send` back to the client. It implements enough of RabbitMQ to exercise a
client end to end: the handshake (PLAIN, AMQPLAIN, EXTERNAL; wrong credentials and unknown
virtual hosts refused the way RabbitMQ refuses them), channels, exchanges (direct and fanout,
exchange-to-exchange bindings), queues, publishing with ``mandatory`` returns and publisher
confirms, consumers with prefetch, ``Basic.Get``, acks, nacks and rejects with requeueing,
``Basic.Recover``, transactions (accepted, not transactional), and the broker-initiated
events (connection and channel close, ``Connection.Blocked``, ``Basic.Cancel``,
``Channel.Flow``).

It is deliberately simple: one virtual host's worth of state, no persistence, topic exchanges
route like direct ones, and it trusts the client's framing (it uses the pika-compatible
:func:`amqp_core.frame.parse_frame`). It raises :class:`AssertionError` on input a real broker
would reject as a protocol error, so a test notices at once.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from amqp_core import spec
from amqp_core.amqp_object import Method
from amqp_core.data import FieldValue, unpack_table
from amqp_core.frame import (
    PROTOCOL_HEADER,
    Body,
    Header,
    Heartbeat,
    encode_heartbeat,
    encode_message,
    encode_method_frame,
    parse_frame,
)
from amqp_core.frame import Method as MethodFrame

__all__ = ("FakeBroker", "Message")


@dataclass
class Message:
    """A message held in a fake queue."""

    exchange: str
    routing_key: str
    properties: spec.BasicProperties
    body: bytes
    redelivered: bool = False


@dataclass
class _Queue:
    name: str
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: dict[str, FieldValue]
    messages: deque[Message] = field(default_factory=deque)
    consumers: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class _Channel:
    id: int
    prefetch: int = 0
    confirming: bool = False
    publish_seq: int = 0
    pending_confirms: list[int] = field(default_factory=list)
    delivery_seq: int = 0
    # delivery tag -> (queue name, message)
    unacked: dict[int, tuple[str, Message]] = field(default_factory=dict)
    # consumer tag -> (queue name, no_ack)
    consumers: dict[str, tuple[str, bool]] = field(default_factory=dict)
    closing: bool = False
    flow: bool = True
    publish: spec.Basic.Publish | None = None
    publish_props: spec.BasicProperties | None = None
    publish_size: int = 0
    publish_parts: list[bytes] = field(default_factory=list)


class FakeBroker:
    """The broker side of one connection, in memory.

    Args:
        users: user name -> password accepted by PLAIN and AMQPLAIN.
        vhosts: the virtual hosts that exist.
        mechanisms: the SASL mechanisms offered, space-separated.
        external_user: the identity EXTERNAL logs in as (None: EXTERNAL is refused).
        channel_max: proposed in ``Connection.Tune``.
        frame_max: proposed in ``Connection.Tune``.
        heartbeat: proposed in ``Connection.Tune``.
        authentication_failure_close: refuse bad credentials with ``Connection.Close`` 403
            (RabbitMQ with the client capability); False drops the connection instead.
        confirm_batch: send publisher confirms with ``multiple`` once this many are pending
            (1: one ack per publish).
        nack_publishes: answer publisher confirms with ``Basic.Nack``.

    Attributes:
        closed: True once the broker has ended the connection (the test should then feed
            ``b""`` to the client).
        queues: the queues by name.
        heartbeats_received: how many heartbeat frames arrived.
        tune_ok: the client's ``Tune-Ok``.
        start_ok: the client's ``Start-Ok``.
        user: the user that logged in.
    """

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        vhosts: tuple[str, ...] = ("/",),
        mechanisms: str = "PLAIN AMQPLAIN",
        external_user: str | None = None,
        channel_max: int = 2047,
        frame_max: int = 131072,
        heartbeat: int = 60,
        authentication_failure_close: bool = True,
        confirm_batch: int = 1,
        nack_publishes: bool = False,
    ) -> None:
        self.users = dict(users) if users is not None else {"guest": "guest"}
        self.vhosts = vhosts
        self.mechanisms = mechanisms
        self.external_user = external_user
        self.channel_max = channel_max
        self.frame_max = frame_max
        self.heartbeat = heartbeat
        self.authentication_failure_close = authentication_failure_close
        self.confirm_batch = confirm_batch
        self.nack_publishes = nack_publishes
        self.closed = False
        self.queues: dict[str, _Queue] = {}
        # exchange name -> type
        self.exchanges: dict[str, str] = {
            "": "direct",
            "amq.direct": "direct",
            "amq.fanout": "fanout",
            "amq.topic": "topic",
        }
        # (source exchange, routing key, destination, destination is a queue)
        self.bindings: list[tuple[str, str, str, bool]] = []
        self.heartbeats_received = 0
        self.tune_ok: spec.Connection.TuneOk | None = None
        self.start_ok: spec.Connection.StartOk | None = None
        self.user: str | None = None
        self.received: list[Method] = []
        self._buf = bytearray()
        self._header_seen = False
        self._frame_max_in = 0
        self._out: list[bytes] = []
        self._channels: dict[int, _Channel] = {}
        self._closing = False
        self._names = itertools.count(1)

    # ------------------------------------------------------------------ I/O

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client (``b""``: the client closed the transport)."""
        if not data:
            self.closed = True
            return
        if self.closed:
            return
        self._buf += data
        offset = 0
        if not self._header_seen:
            if len(self._buf) < len(PROTOCOL_HEADER):
                return
            assert bytes(self._buf[:8]) == PROTOCOL_HEADER, bytes(self._buf[:8])
            self._header_seen = True
            offset = 8
            self._send(
                0,
                spec.Connection.Start(
                    server_properties={
                        "product": "FakeBroker",
                        "version": "0.1",
                        "capabilities": {
                            "publisher_confirms": True,
                            "exchange_exchange_bindings": True,
                            "basic.nack": True,
                            "consumer_cancel_notify": True,
                            "connection.blocked": True,
                            "authentication_failure_close": True,
                            "per_consumer_qos": True,
                        },
                    },
                    mechanisms=self.mechanisms,
                    locales="en_US",
                ),
            )
        while not self.closed:
            parsed = parse_frame(self._buf, offset, len(self._buf), self._frame_max_in)
            if parsed is None:
                break
            frame, offset = parsed
            self._handle_frame(frame)
        del self._buf[:offset]

    def data_to_send(self) -> bytes:
        """Return (and forget) the bytes for the client."""
        out = b"".join(self._out)
        self._out.clear()
        return out

    # ------------------------------------------------------------------ broker actions

    def close_connection(
        self, reply_code: int = 320, reply_text: str = "CONNECTION_FORCED"
    ) -> None:
        """Close the connection from the broker side, like ``rabbitmqctl close_connection``."""
        self._closing = True
        self._send(0, spec.Connection.Close(reply_code, reply_text, 0, 0))

    def close_channel(
        self, channel_id: int, reply_code: int = 406, reply_text: str = "PRECONDITION_FAILED"
    ) -> None:
        """Close a channel from the broker side."""
        self._channel_error(channel_id, reply_code, reply_text, 0)

    def block(self, reason: str = "low on memory") -> None:
        """Send ``Connection.Blocked``."""
        self._send(0, spec.Connection.Blocked(reason))

    def unblock(self) -> None:
        """Send ``Connection.Unblocked``."""
        self._send(0, spec.Connection.Unblocked())

    def send_heartbeat(self) -> None:
        """Send a heartbeat frame."""
        self._out.append(encode_heartbeat())

    def send_raw(self, data: bytes) -> None:
        """Send arbitrary bytes (to test the client's handling of broken input)."""
        self._out.append(data)

    def send_method(self, channel_id: int, method: Method) -> None:
        """Send an arbitrary method frame."""
        self._send(channel_id, method)

    def set_flow(self, channel_id: int, active: bool) -> None:
        """Send ``Channel.Flow``."""
        self._send(channel_id, spec.Channel.Flow(active))

    def cancel_consumer(self, channel_id: int, consumer_tag: str) -> None:
        """Cancel a consumer from the broker side (consumer_cancel_notify)."""
        chan = self._channels[channel_id]
        queue_name, _ = chan.consumers.pop(consumer_tag)
        self.queues[queue_name].consumers.remove((channel_id, consumer_tag))
        self._send(channel_id, spec.Basic.Cancel(consumer_tag, nowait=False))

    def flush_confirms(self, channel_id: int) -> None:
        """Send the publisher confirms held back by ``confirm_batch``."""
        self._confirm(self._channels[channel_id], force=True)

    def enqueue(
        self, queue: str, body: bytes, properties: spec.BasicProperties | None = None
    ) -> None:
        """Put a message straight into a queue (and deliver it if a consumer waits)."""
        self.queues[queue].messages.append(
            Message("", queue, properties or spec.BasicProperties(), body)
        )
        self._dispatch()

    # ------------------------------------------------------------------ frame handling

    def _send(self, channel_id: int, method: Method) -> None:
        self._out.append(encode_method_frame(channel_id, method))

    def _send_content(
        self, channel_id: int, method: Method, properties: spec.BasicProperties, body: bytes
    ) -> None:
        frame_max = self.tune_ok.frame_max if self.tune_ok is not None else 0
        pieces = encode_message(
            channel_id, encode_method_frame(channel_id, method), properties, body, frame_max
        )
        self._out.append(b"".join(bytes(piece) for piece in pieces))

    def _handle_frame(self, frame: object) -> None:
        if isinstance(frame, Heartbeat):
            self.heartbeats_received += 1
            return
        if isinstance(frame, MethodFrame):
            self.received.append(frame.method)
            if frame.channel_number == 0:
                self._connection_method(frame.method)
            else:
                self._channel_method(frame.channel_number, frame.method)
            return
        assert isinstance(frame, (Header, Body))
        chan = self._channels[frame.channel_number]
        if chan.closing:
            return
        if isinstance(frame, Header):
            assert chan.publish is not None
            assert chan.publish_props is None
            assert isinstance(frame.properties, spec.BasicProperties)
            chan.publish_props = frame.properties
            chan.publish_size = frame.body_size
            chan.publish_parts = []
            if frame.body_size:
                return
        else:
            assert chan.publish_props is not None
            chan.publish_parts.append(frame.fragment)
        if sum(map(len, chan.publish_parts)) >= chan.publish_size:
            body = b"".join(chan.publish_parts)
            assert len(body) == chan.publish_size
            method, properties = chan.publish, chan.publish_props
            chan.publish = chan.publish_props = None
            assert method is not None
            self._route(chan, method, properties, body)
            self._dispatch()

    def _connection_method(self, method: Method) -> None:
        if self._closing and not isinstance(
            method, (spec.Connection.CloseOk, spec.Connection.Close)
        ):
            return
        if isinstance(method, spec.Connection.StartOk):
            self.start_ok = method
            user = self._authenticate(method)
            if user is None:
                if self.authentication_failure_close:
                    self._closing = True
                    self._send(
                        0,
                        spec.Connection.Close(
                            spec.ACCESS_REFUSED,
                            f"ACCESS_REFUSED - Login was refused using authentication mechanism "
                            f"{method.mechanism}",
                            0,
                            0,
                        ),
                    )
                else:
                    self.closed = True
                return
            self.user = user
            self._send(0, spec.Connection.Tune(self.channel_max, self.frame_max, self.heartbeat))
        elif isinstance(method, spec.Connection.TuneOk):
            self.tune_ok = method
            self._frame_max_in = method.frame_max
        elif isinstance(method, spec.Connection.Open):
            if method.virtual_host not in self.vhosts:
                self._closing = True
                self._send(
                    0,
                    spec.Connection.Close(
                        spec.NOT_ALLOWED,
                        f"NOT_ALLOWED - vhost {method.virtual_host} not found",
                        10,
                        40,
                    ),
                )
                return
            self._send(0, spec.Connection.OpenOk())
        elif isinstance(method, spec.Connection.Close):
            self._send(0, spec.Connection.CloseOk())
            self.closed = True
        elif isinstance(method, spec.Connection.CloseOk):
            self.closed = True
        elif isinstance(method, spec.Connection.UpdateSecret):
            self._send(0, spec.Connection.UpdateSecretOk())
        else:
            raise AssertionError(f"unexpected {method.NAME} on channel 0")

    def _authenticate(self, start_ok: spec.Connection.StartOk) -> str | None:
        mechanism = start_ok.mechanism
        response = (
            bytes(start_ok.response)
            if not isinstance(start_ok.response, str)
            else start_ok.response.encode()
        )
        if mechanism not in self.mechanisms.split():
            return None
        if mechanism == "EXTERNAL":
            return self.external_user
        if mechanism == "PLAIN":
            _, user_raw, password_raw = response.split(b"\x00")
            user, password = user_raw.decode(), password_raw.decode()
        else:
            # AMQPLAIN: table entries without the length prefix.
            table, _ = unpack_table(
                len(response).to_bytes(4, "big") + response, 0, len(response) + 4
            )
            login, secret = table["LOGIN"], table["PASSWORD"]
            assert isinstance(login, (str, bytes))
            assert isinstance(secret, (str, bytes))
            user = login.decode() if isinstance(login, bytes) else login
            password = secret.decode() if isinstance(secret, bytes) else secret
        return user if self.users.get(user) == password else None

    def _channel_error(self, channel_id: int, code: int, text: str, index: int) -> None:
        self._channels[channel_id].closing = True
        self._requeue_channel(channel_id)
        self._send(channel_id, spec.Channel.Close(code, text, index >> 16, index & 0xFFFF))

    def _requeue_channel(self, channel_id: int) -> None:
        chan = self._channels[channel_id]
        for delivery_tag in sorted(chan.unacked, reverse=True):
            queue_name, message = chan.unacked[delivery_tag]
            queue = self.queues.get(queue_name)
            if queue is not None:
                message.redelivered = True
                queue.messages.appendleft(message)
        chan.unacked.clear()
        for tag, (queue_name, _) in chan.consumers.items():
            queue = self.queues.get(queue_name)
            if queue is not None:
                queue.consumers.remove((channel_id, tag))
        chan.consumers.clear()

    def _channel_method(self, channel_id: int, method: Method) -> None:
        if self._closing:
            return
        if isinstance(method, spec.Channel.Open):
            assert channel_id not in self._channels, f"second Channel.Open on {channel_id}"
            self._channels[channel_id] = _Channel(channel_id)
            self._send(channel_id, spec.Channel.OpenOk())
            return
        chan = self._channels[channel_id]
        if isinstance(method, spec.Channel.CloseOk):
            assert chan.closing
            del self._channels[channel_id]
            self._dispatch()
            return
        if isinstance(method, spec.Channel.Close):
            if not chan.closing:
                self._requeue_channel(channel_id)
            self._send(channel_id, spec.Channel.CloseOk())
            if not chan.closing:
                del self._channels[channel_id]
            self._dispatch()
            return
        if chan.closing:
            return
        handler = getattr(self, "_on_" + method.NAME.replace(".", "_"), None)
        if handler is None:
            raise AssertionError(f"FakeBroker does not implement {method.NAME}")
        handler(chan, method)
        self._dispatch()

    # ------------------------------------------------------------------ methods

    def _reply(self, chan: _Channel, method: Method, reply: Method) -> None:
        if not getattr(method, "nowait", False):
            self._send(chan.id, reply)

    def _on_Channel_Flow(self, chan: _Channel, method: spec.Channel.Flow) -> None:
        chan.flow = method.active
        self._send(chan.id, spec.Channel.FlowOk(method.active))

    def _on_Access_Request(self, chan: _Channel, method: spec.Access.Request) -> None:
        self._send(chan.id, spec.Access.RequestOk())

    def _on_Basic_CancelOk(self, chan: _Channel, method: spec.Basic.CancelOk) -> None:
        pass

    def _on_Channel_FlowOk(self, chan: _Channel, method: spec.Channel.FlowOk) -> None:
        pass

    def _on_Exchange_Declare(self, chan: _Channel, method: spec.Exchange.Declare) -> None:
        kind = str(getattr(method.type, "value", method.type))
        existing = self.exchanges.get(method.exchange)
        if method.passive:
            if existing is None:
                self._channel_error(
                    chan.id, 404, f"NOT_FOUND - no exchange '{method.exchange}'", method.INDEX
                )
                return
        elif existing is not None and existing != kind:
            self._channel_error(
                chan.id,
                406,
                f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{method.exchange}'",
                method.INDEX,
            )
            return
        else:
            self.exchanges[method.exchange] = kind
        self._reply(chan, method, spec.Exchange.DeclareOk())

    def _on_Exchange_Delete(self, chan: _Channel, method: spec.Exchange.Delete) -> None:
        self.exchanges.pop(method.exchange, None)
        self._reply(chan, method, spec.Exchange.DeleteOk())

    def _on_Exchange_Bind(self, chan: _Channel, method: spec.Exchange.Bind) -> None:
        self.bindings.append((method.source, method.routing_key, method.destination, False))
        self._reply(chan, method, spec.Exchange.BindOk())

    def _on_Exchange_Unbind(self, chan: _Channel, method: spec.Exchange.Unbind) -> None:
        binding = (method.source, method.routing_key, method.destination, False)
        if binding in self.bindings:
            self.bindings.remove(binding)
        self._reply(chan, method, spec.Exchange.UnbindOk())

    def _on_Queue_Declare(self, chan: _Channel, method: spec.Queue.Declare) -> None:
        name = method.queue or f"amq.gen-{next(self._names)}"
        arguments = dict(method.arguments or {})
        queue = self.queues.get(name)
        if queue is None:
            if method.passive:
                self._channel_error(chan.id, 404, f"NOT_FOUND - no queue '{name}'", method.INDEX)
                return
            queue = self.queues[name] = _Queue(
                name, method.durable, method.exclusive, method.auto_delete, arguments
            )
        elif not method.passive and (
            queue.arguments != arguments or queue.durable != method.durable
        ):
            self._channel_error(
                chan.id,
                406,
                f"PRECONDITION_FAILED - inequivalent arg for queue '{name}' in vhost '/'",
                method.INDEX,
            )
            return
        self._reply(
            chan, method, spec.Queue.DeclareOk(name, len(queue.messages), len(queue.consumers))
        )

    def _on_Queue_Bind(self, chan: _Channel, method: spec.Queue.Bind) -> None:
        self.bindings.append((method.exchange, method.routing_key, method.queue, True))
        self._reply(chan, method, spec.Queue.BindOk())

    def _on_Queue_Unbind(self, chan: _Channel, method: spec.Queue.Unbind) -> None:
        binding = (method.exchange, method.routing_key, method.queue, True)
        if binding in self.bindings:
            self.bindings.remove(binding)
        self._send(chan.id, spec.Queue.UnbindOk())

    def _on_Queue_Purge(self, chan: _Channel, method: spec.Queue.Purge) -> None:
        queue = self.queues[method.queue]
        count = len(queue.messages)
        queue.messages.clear()
        self._reply(chan, method, spec.Queue.PurgeOk(count))

    def _on_Queue_Delete(self, chan: _Channel, method: spec.Queue.Delete) -> None:
        queue = self.queues.pop(method.queue, None)
        count = 0
        if queue is not None:
            count = len(queue.messages)
            for channel_id, tag in queue.consumers:
                # consumer_cancel_notify: tell the consumers their queue is gone.
                self._channels[channel_id].consumers.pop(tag, None)
                self._send(channel_id, spec.Basic.Cancel(tag, nowait=True))
        self._reply(chan, method, spec.Queue.DeleteOk(count))

    def _on_Basic_Qos(self, chan: _Channel, method: spec.Basic.Qos) -> None:
        chan.prefetch = method.prefetch_count
        self._send(chan.id, spec.Basic.QosOk())

    def _on_Basic_Consume(self, chan: _Channel, method: spec.Basic.Consume) -> None:
        tag = method.consumer_tag or f"amq.ctag-{next(self._names)}"
        queue = self.queues.get(method.queue)
        if queue is None:
            self._channel_error(
                chan.id, 404, f"NOT_FOUND - no queue '{method.queue}'", method.INDEX
            )
            return
        if tag in chan.consumers:
            self._closing = True
            self._send(
                0,
                spec.Connection.Close(
                    530, f"NOT_ALLOWED - attempt to reuse consumer tag '{tag}'", 60, 20
                ),
            )
            return
        chan.consumers[tag] = (method.queue, method.no_ack)
        queue.consumers.append((chan.id, tag))
        self._reply(chan, method, spec.Basic.ConsumeOk(tag))

    def _on_Basic_Cancel(self, chan: _Channel, method: spec.Basic.Cancel) -> None:
        entry = chan.consumers.pop(method.consumer_tag, None)
        if entry is not None and entry[0] in self.queues:
            self.queues[entry[0]].consumers.remove((chan.id, method.consumer_tag))
        self._reply(chan, method, spec.Basic.CancelOk(method.consumer_tag))

    def _on_Basic_Publish(self, chan: _Channel, method: spec.Basic.Publish) -> None:
        chan.publish = method
        chan.publish_props = None

    def _on_Basic_Get(self, chan: _Channel, method: spec.Basic.Get) -> None:
        queue = self.queues.get(method.queue)
        if queue is None:
            self._channel_error(
                chan.id, 404, f"NOT_FOUND - no queue '{method.queue}'", method.INDEX
            )
            return
        if not queue.messages:
            self._send(chan.id, spec.Basic.GetEmpty())
            return
        message = queue.messages.popleft()
        chan.delivery_seq += 1
        tag = chan.delivery_seq
        if not method.no_ack:
            chan.unacked[tag] = (queue.name, message)
        self._send_content(
            chan.id,
            spec.Basic.GetOk(
                tag, message.redelivered, message.exchange, message.routing_key, len(queue.messages)
            ),
            message.properties,
            message.body,
        )

    def _settle(
        self, chan: _Channel, method: Method, tag: int, multiple: bool, requeue: bool
    ) -> None:
        if multiple:
            tags = [t for t in chan.unacked if t <= tag] if tag else list(chan.unacked)
        else:
            tags = [tag]
        for t in tags:
            if t not in chan.unacked:
                self._channel_error(
                    chan.id, 406, f"PRECONDITION_FAILED - unknown delivery tag {t}", method.INDEX
                )
                return
        for t in sorted(tags, reverse=True):
            queue_name, message = chan.unacked.pop(t)
            if requeue and queue_name in self.queues:
                message.redelivered = True
                self.queues[queue_name].messages.appendleft(message)

    def _on_Basic_Ack(self, chan: _Channel, method: spec.Basic.Ack) -> None:
        self._settle(chan, method, method.delivery_tag, method.multiple, False)

    def _on_Basic_Nack(self, chan: _Channel, method: spec.Basic.Nack) -> None:
        self._settle(chan, method, method.delivery_tag, method.multiple, method.requeue)

    def _on_Basic_Reject(self, chan: _Channel, method: spec.Basic.Reject) -> None:
        self._settle(chan, method, method.delivery_tag, False, method.requeue)

    def _on_Basic_Recover(self, chan: _Channel, method: spec.Basic.Recover) -> None:
        self._settle(chan, method, 0, True, True)
        self._send(chan.id, spec.Basic.RecoverOk())

    def _on_Basic_RecoverAsync(self, chan: _Channel, method: spec.Basic.RecoverAsync) -> None:
        self._settle(chan, method, 0, True, True)

    def _on_Tx_Select(self, chan: _Channel, method: spec.Tx.Select) -> None:
        self._send(chan.id, spec.Tx.SelectOk())

    def _on_Tx_Commit(self, chan: _Channel, method: spec.Tx.Commit) -> None:
        self._send(chan.id, spec.Tx.CommitOk())

    def _on_Tx_Rollback(self, chan: _Channel, method: spec.Tx.Rollback) -> None:
        self._send(chan.id, spec.Tx.RollbackOk())

    def _on_Confirm_Select(self, chan: _Channel, method: spec.Confirm.Select) -> None:
        chan.confirming = True
        self._reply(chan, method, spec.Confirm.SelectOk())

    # ------------------------------------------------------------------ routing and delivery

    def _destinations(self, exchange: str, routing_key: str, seen: set[str]) -> set[str]:
        if exchange == "":
            return {routing_key} if routing_key in self.queues else set()
        seen.add(exchange)
        kind = self.exchanges[exchange]
        queues: set[str] = set()
        for source, key, destination, is_queue in self.bindings:
            if source != exchange or (kind != "fanout" and key != routing_key):
                continue
            if is_queue:
                if destination in self.queues:
                    queues.add(destination)
            elif destination not in seen and destination in self.exchanges:
                queues |= self._destinations(destination, routing_key, seen)
        return queues

    def _route(
        self,
        chan: _Channel,
        method: spec.Basic.Publish,
        properties: spec.BasicProperties,
        body: bytes,
    ) -> None:
        if method.exchange not in self.exchanges:
            self._channel_error(
                chan.id, 404, f"NOT_FOUND - no exchange '{method.exchange}'", method.INDEX
            )
            return
        queues = self._destinations(method.exchange, method.routing_key, set())
        for name in sorted(queues):
            self.queues[name].messages.append(
                Message(method.exchange, method.routing_key, properties, body)
            )
        if not queues and method.mandatory:
            self._send_content(
                chan.id,
                spec.Basic.Return(spec.NO_ROUTE, "NO_ROUTE", method.exchange, method.routing_key),
                properties,
                body,
            )
        if chan.confirming:
            chan.publish_seq += 1
            chan.pending_confirms.append(chan.publish_seq)
            self._confirm(chan)

    def _confirm(self, chan: _Channel, force: bool = False) -> None:
        pending = chan.pending_confirms
        if not pending or (len(pending) < self.confirm_batch and not force):
            return
        cls = spec.Basic.Nack if self.nack_publishes else spec.Basic.Ack
        if len(pending) == 1:
            self._send(chan.id, cls(pending[0], False))
        else:
            self._send(chan.id, cls(pending[-1], True))
        pending.clear()

    def _dispatch(self) -> None:
        """Deliver waiting messages to consumers, round robin, within each channel's prefetch."""
        progress = True
        while progress:
            progress = False
            for queue in list(self.queues.values()):
                if not queue.messages or not queue.consumers:
                    continue
                for _ in range(len(queue.consumers)):
                    channel_id, tag = queue.consumers[0]
                    queue.consumers.append(queue.consumers.pop(0))
                    chan = self._channels.get(channel_id)
                    if chan is None or chan.closing:
                        continue
                    _, no_ack = chan.consumers[tag]
                    if not no_ack and chan.prefetch and len(chan.unacked) >= chan.prefetch:
                        continue
                    message = queue.messages.popleft()
                    chan.delivery_seq += 1
                    delivery_tag = chan.delivery_seq
                    if not no_ack:
                        chan.unacked[delivery_tag] = (queue.name, message)
                    self._send_content(
                        channel_id,
                        spec.Basic.Deliver(
                            tag,
                            delivery_tag,
                            message.redelivered,
                            message.exchange,
                            message.routing_key,
                        ),
                        message.properties,
                        message.body,
                    )
                    progress = True
                    break
