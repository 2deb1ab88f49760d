"""Failures, heartbeats while busy, and the seed docs' recovery loop, against a real RabbitMQ."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from amqp_blocking import BlockingChannel, BlockingConnection
from amqp_core.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    AMQPHeartbeatTimeout,
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    StreamLostError,
)
from amqp_core.parameters import URLParameters
from tests.blocking.conftest import proxied_url
from tests.blocking.proxy import TCPProxy
from tools.broker import RabbitMQNode

pytestmark = pytest.mark.timeout(60)


def _close_all(rabbitmq: RabbitMQNode | None) -> None:
    assert rabbitmq is not None, "these tests need the throwaway node (rabbitmqctl)"
    rabbitmq.rabbitmqctl("close_all_connections", "test")


def test_broker_forced_close_while_consuming(
    params: URLParameters, rabbitmq: RabbitMQNode | None
) -> None:
    connection = BlockingConnection(params)
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_consume(queue, lambda *args: None)
    closer = threading.Timer(0.5, _close_all, (rabbitmq,))
    closer.start()
    with pytest.raises(ConnectionClosedByBroker) as info:
        channel.start_consuming()
    closer.join()
    assert info.value.reply_code == 320
    assert connection.is_closed
    with pytest.raises(ConnectionClosedByBroker):
        channel.basic_publish("", queue, b"x")


def test_channel_closed_by_broker_while_consuming(connection: BlockingConnection) -> None:
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_consume(queue, lambda *args: None)
    # Another thread publishes to a missing exchange on the same channel: the broker closes
    # the channel (404), and the consuming thread hears of it.
    publisher = threading.Timer(0.3, channel.basic_publish, ("blocking-no-such-exchange", "", b"x"))
    publisher.start()
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.start_consuming()
    publisher.join()
    assert info.value.reply_code == 404
    assert connection.is_open
    connection.process_data_events()
    assert connection.channel().is_open


def test_tcp_drop_while_consuming(amqp_url: str, proxy: TCPProxy) -> None:
    connection = BlockingConnection(URLParameters(proxied_url(amqp_url, proxy)))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    cutter = threading.Timer(0.3, proxy.cut)
    cutter.start()
    started = time.monotonic()
    with pytest.raises(StreamLostError):
        for _message in channel.consume(queue):
            pass
    cutter.join()
    assert time.monotonic() - started < 5
    assert connection.is_closed


def test_alive_while_callback_is_busy(params: URLParameters) -> None:
    params.heartbeat = 1
    connection = BlockingConnection(params)
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"slow")
    channel.basic_publish("", queue, b"after")
    bodies: list[bytes] = []

    def on_message(ch: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        bodies.append(body)
        if body == b"slow":
            time.sleep(3.5)  # more than three heartbeat intervals, without touching the connection
        ch.basic_ack(method.delivery_tag)
        if len(bodies) == 2:
            ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    assert bodies == [b"slow", b"after"]
    assert connection.is_open
    # Busy outside of any callback too.
    time.sleep(3.5)
    assert channel.queue_declare(queue, passive=True).method.message_count == 0
    connection.close()


def test_dead_broker_noticed_within_two_intervals(amqp_url: str, proxy: TCPProxy) -> None:
    connection = BlockingConnection(URLParameters(proxied_url(amqp_url, proxy, "heartbeat=1")))
    channel = connection.channel()
    proxy.freeze()
    started = time.monotonic()
    with pytest.raises(AMQPHeartbeatTimeout):
        connection.process_data_events(time_limit=10)
    # Two intervals of 1 s, plus the timer's granularity.
    assert time.monotonic() - started < 3.5
    assert channel.is_closed


def test_recovery_loop_tells_the_cases_apart(
    amqp_url: str, proxy: TCPProxy, rabbitmq: RabbitMQNode | None
) -> None:
    # The seed docs' recovery loop: recover on connection errors, stop on a broker close or
    # a channel error. Each round forces one case.
    url = proxied_url(amqp_url, proxy)
    setup = BlockingConnection(URLParameters(amqp_url))
    setup.channel().queue_declare("blocking-recover", auto_delete=False)
    setup.close()
    rounds: list[str] = []

    def on_message(ch: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        ch.basic_ack(method.delivery_tag)

    def consume_until(failure: str) -> str:
        while True:
            try:
                connection = BlockingConnection(URLParameters(url))
                channel = connection.channel()
                timer = threading.Timer(0, lambda: None)
                queue = "blocking-missing" if failure == "channel" else "blocking-recover"
                channel.basic_consume(queue, on_message)
                if failure == "connection" and not rounds:
                    timer = threading.Timer(0.3, proxy.cut)
                elif failure in ("connection", "broker"):
                    timer = threading.Timer(0.3, _close_all, (rabbitmq,))
                timer.start()
                try:
                    channel.start_consuming()
                finally:
                    timer.join()
            except ConnectionClosedByBroker:
                return "broker"
            except AMQPChannelError:
                connection.close()
                return "channel"
            except AMQPConnectionError:
                rounds.append("recovered")
                continue

    assert consume_until("broker") == "broker"
    assert consume_until("channel") == "channel"
    assert consume_until("connection") == "broker"
    assert rounds == ["recovered"]
    cleanup = BlockingConnection(URLParameters(amqp_url))
    cleanup.channel().queue_delete("blocking-recover")
    cleanup.close()
