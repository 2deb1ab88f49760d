"""The engine against a real RabbitMQ, over a plain blocking socket written here (no adapter)."""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections import deque
from collections.abc import Callable

import pytest

from amqp_core import (
    NEED_DATA,
    ChannelClosed,
    ChannelOpened,
    ConnectionClosed,
    ConnectionOpened,
    Engine,
    EngineConfig,
    Event,
    GetEmpty,
    GetOk,
    MessageDelivered,
    MethodReceived,
    PlainCredentials,
    PublishAcked,
    spec,
)
from amqp_core.amqp_object import Method
from amqp_core.exceptions import ConnectionClosedByBroker, ConnectionClosedByClient

pytestmark = pytest.mark.broker


class Driver:
    """The smallest possible adapter: a blocking socket pumping bytes through the engine."""

    def __init__(self, url: str, **config: object) -> None:
        parts = urllib.parse.urlsplit(url)
        config.setdefault(
            "credentials", PlainCredentials(parts.username or "guest", parts.password or "guest")
        )
        self.engine = Engine(EngineConfig(**config))  # type: ignore[arg-type]
        self.sock = socket.create_connection(
            (parts.hostname or "localhost", parts.port or 5672), 10
        )
        self.events: deque[Event] = deque()

    def flush(self) -> None:
        data = self.engine.data_to_send()
        if data:
            self.sock.sendall(data)

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            self.flush()
            while self.events:
                event = self.events.popleft()
                if predicate(event):
                    return event
            assert time.monotonic() < deadline, "timed out"
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            if self.sock.fileno() < 0:
                raise AssertionError(f"connection closed while waiting; events {self.events}")
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            self.engine.receive_data(chunk, time.monotonic())
            while (item := self.engine.next_event()) is not NEED_DATA:
                assert isinstance(item, Event)
                event = item
                self.events.append(event)
                if isinstance(event, ConnectionClosed):
                    # What an adapter does: write what is pending, then close the transport.
                    self.flush()
                    self.sock.close()

    def wait_type(self, kind: type[Event], timeout: float = 10.0) -> Event:
        return self.wait_for(lambda event: isinstance(event, kind), timeout)

    def rpc(self, channel_id: int, method: Method) -> MethodReceived:
        self.engine.send_method(channel_id, method)
        event = self.wait_type(MethodReceived)
        assert isinstance(event, MethodReceived)
        return event

    def close(self) -> None:
        self.sock.close()


def test_engine_against_rabbitmq(amqp_url: str, rabbitmq: object) -> None:
    d = Driver(amqp_url, connection_name="engine-test", heartbeat=30)
    d.wait_type(ConnectionOpened)
    assert d.engine.server_properties["product"] in (b"RabbitMQ", "RabbitMQ")
    ch = d.engine.open_channel()
    d.wait_type(ChannelOpened)

    declared = d.rpc(ch, spec.Queue.Declare(queue="engine-test-q", exclusive=True)).method
    assert isinstance(declared, spec.Queue.DeclareOk)
    queue = declared.queue

    # Publish with confirms, including a body split over several frames.
    d.rpc(ch, spec.Confirm.Select())
    bodies = [b"small", b"x" * 300_000, b""]
    tags = [
        d.engine.publish(ch, "", queue, body, spec.BasicProperties(message_id=str(i)))
        for i, body in enumerate(bodies)
    ]
    assert tags == [1, 2, 3]
    confirmed: set[int] = set()
    while confirmed != {1, 2, 3}:
        ack = d.wait_type(PublishAcked)
        assert isinstance(ack, PublishAcked)
        confirmed |= set(range(1, ack.delivery_tag + 1)) if ack.multiple else {ack.delivery_tag}

    # Get, reject with requeue, get again (redelivered), ack.
    d.engine.get(ch, queue)
    got = d.wait_type(GetOk)
    assert isinstance(got, GetOk)
    assert got.body == b"small"
    d.engine.reject(ch, got.delivery_tag, requeue=True)
    d.engine.get(ch, queue)
    again = d.wait_type(GetOk)
    assert isinstance(again, GetOk)
    assert again.method.redelivered
    assert again.body == b"small"
    d.engine.ack(ch, again.delivery_tag)

    # Consume the rest with acks.
    d.engine.qos(ch, prefetch_count=10)
    d.wait_type(MethodReceived)
    d.engine.consume(ch, queue)
    received: list[bytes] = []
    while len(received) < 2:
        delivered = d.wait_type(MessageDelivered)
        assert isinstance(delivered, MessageDelivered)
        received.append(delivered.body)
        d.engine.ack(ch, delivered.delivery_tag)
    assert received == bodies[1:]
    d.engine.get(ch, queue)
    assert isinstance(d.wait_for(lambda e: isinstance(e, (GetEmpty, GetOk))), GetEmpty)

    # A channel error: declare the same queue with other arguments -> 406.
    d.engine.send_method(
        ch, spec.Queue.Declare(queue=queue, exclusive=True, arguments={"x-max-length": 1})
    )
    closed = d.wait_type(ChannelClosed)
    assert isinstance(closed, ChannelClosed)
    assert (closed.reply_code, closed.class_id, closed.method_id, closed.by_broker) == (
        406,
        50,
        10,
        True,
    )
    assert d.engine.is_open

    # A clean close.
    d.engine.close()
    end = d.wait_type(ConnectionClosed)
    assert isinstance(end, ConnectionClosed)
    assert isinstance(end.exception, ConnectionClosedByClient)
    d.close()


def test_broker_forced_close(amqp_url: str, rabbitmq: object) -> None:
    if rabbitmq is None:
        pytest.skip("needs the throwaway node to run rabbitmqctl")
    d = Driver(amqp_url, connection_name="to-be-closed")
    d.wait_type(ConnectionOpened)
    name = None
    deadline = time.monotonic() + 20
    while name is None and time.monotonic() < deadline:
        listing = rabbitmq.rabbitmqctl(  # type: ignore[attr-defined]
            "list_connections", "pid", "client_properties", "--quiet", "--no-table-headers"
        )
        for line in listing.splitlines():
            if "to-be-closed" in line:
                name = line.split("\t")[0]
        if name is None:
            time.sleep(0.2)
    assert name is not None
    rabbitmq.rabbitmqctl("close_connection", name, "test says bye")  # type: ignore[attr-defined]
    end = d.wait_type(ConnectionClosed)
    assert isinstance(end, ConnectionClosed)
    assert end.reply_code == 320
    assert isinstance(end.exception, ConnectionClosedByBroker)
    assert "test says bye" in end.reply_text
    d.close()


def test_wrong_password(amqp_url: str) -> None:
    d = Driver(amqp_url, credentials=PlainCredentials("guest", "wrong"))
    end = d.wait_type(ConnectionClosed)
    assert isinstance(end, ConnectionClosed)
    assert end.reply_code == 403
    d.close()


def test_missing_vhost(amqp_url: str) -> None:
    d = Driver(amqp_url, virtual_host="no-such-vhost")
    end = d.wait_type(ConnectionClosed)
    assert isinstance(end, ConnectionClosed)
    assert end.reply_code == 530
    d.close()
