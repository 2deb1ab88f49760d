"""BlockingConnection with recovery, against the suite's real RabbitMQ (one node, via a proxy)."""

# ruff: noqa: PT012, PT018
from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from amqp_blocking import BlockingConnection
from amqp_core import exceptions as exc
from amqp_core import recovery as rc
from amqp_core.parameters import ConnectionParameters, URLParameters
from tests.blocking.proxy import TCPProxy
from tools.broker import RabbitMQNode

FAST = rc.RecoveryPolicy(initial_delay=0.05, max_delay=0.5, max_duration=30)


@pytest.fixture
def proxy(amqp_url: str) -> Iterator[TCPProxy]:
    parts = urllib.parse.urlsplit(amqp_url)
    the_proxy = TCPProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    yield the_proxy
    the_proxy.close()


def params_via(amqp_url: str, port: int, policy: rc.RecoveryPolicy | None = FAST) -> Any:
    url = URLParameters(amqp_url)
    return ConnectionParameters(
        host="127.0.0.1",
        port=port,
        virtual_host=url.virtual_host,
        credentials=url.credentials,
        recovery=policy,
    )


def test_consumer_and_confirms_survive_a_dropped_connection(amqp_url: str, proxy: TCPProxy) -> None:
    connection = BlockingConnection(params_via(amqp_url, proxy.port))
    events: list[Any] = []
    connection.add_recovery_listener(lambda _c, event: events.append(event))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_qos(prefetch_count=10)
        channel.basic_publish("", queue, b"one")
        messages = channel.consume(queue, inactivity_timeout=5)
        method, _props, body = next(messages)
        assert body == b"one" and method.delivery_tag == 1 and not method.redelivered
        proxy.cut()
        while not any(isinstance(e, rc.Recovered) for e in events):
            connection.process_data_events(0.1)
        # The ack of a delivery from before the loss is dropped, never sent on the new channel.
        channel.basic_ack(method.delivery_tag)
        # The exclusive server-named queue died with the connection: it comes back under a
        # new name, and the consumer follows it. Publishing to the old name would go nowhere.
        channel.basic_publish("", _current(events, queue), b"two")
        method2, _props, body2 = next(messages)
        assert body2 == b"two" and method2.delivery_tag > method.delivery_tag
        channel.basic_ack(method2.delivery_tag)
        assert connection.is_open
        connection.process_data_events(0)
        names = [type(e).__name__ for e in events]
        assert names[0] == "ConnectionLost" and "Recovered" in names
        assert any(isinstance(e, rc.StaleDeliveryTag) and e.delivery_tag == 1 for e in events)
        assert any(isinstance(e, rc.QueueRenamed) and e.old == queue for e in events)
        channel.cancel()
    finally:
        connection.close()


def _current(events: list[Any], queue: str) -> str:
    for event in events:
        if isinstance(event, rc.QueueRenamed) and event.old == queue:
            return event.new
    return queue


def test_publishes_in_flight_are_confirmed_or_interrupted_never_lost(
    amqp_url: str, proxy: TCPProxy
) -> None:
    connection = BlockingConnection(params_via(amqp_url, proxy.port))
    try:
        channel = connection.channel()
        queue = channel.queue_declare("recovery-unconfirmed", auto_delete=True).method.queue
        body = b"x" * 20_000
        outcomes = [channel.publish_async("", queue, body) for _ in range(300)]
        proxy.cut()  # most of them cannot have been confirmed yet
        assert channel.wait_for_confirms(timeout=30)
        interrupted = [o for o in outcomes if not o.ok]
        assert all(isinstance(o.error, exc.RecoveryInterrupted) for o in interrupted)
        assert all(o.settled for o in outcomes)
        # After the recovery, confirm mode is back and sequence numbers go on.
        after = channel.publish_async("", queue, b"after")
        assert channel.wait_for_confirms(timeout=10) and after.ok
        assert after.sequence == 301
        channel.queue_delete(queue)
    finally:
        connection.close()


def test_start_consuming_continues_after_recovery(amqp_url: str, proxy: TCPProxy) -> None:
    connection = BlockingConnection(params_via(amqp_url, proxy.port))
    publisher = BlockingConnection(URLParameters(amqp_url))
    try:
        channel = connection.channel()
        queue = channel.queue_declare("recovery-start-consuming", durable=True).method.queue
        channel.queue_purge(queue)
        seen: list[tuple[bytes, bool]] = []

        def on_message(ch: Any, method: Any, _props: Any, body: bytes) -> None:
            seen.append((body, method.redelivered))
            ch.basic_ack(method.delivery_tag)
            if body == b"first":
                proxy.cut()
            if body == b"last":
                ch.stop_consuming()

        channel.basic_consume(queue, on_message)
        pub = publisher.channel()
        pub.basic_publish("", queue, b"first")
        connection.call_later(1.5, lambda: pub.basic_publish("", queue, b"last"))
        channel.start_consuming()
        assert [body for body, _ in seen][-1] == b"last"
        assert seen[0] == (b"first", False)
        channel.queue_delete(queue)
    finally:
        connection.close()
        publisher.close()


def test_broker_forced_close_is_recovered(amqp_url: str, rabbitmq: RabbitMQNode | None) -> None:
    if rabbitmq is None:
        pytest.skip("needs the suite's own node to run rabbitmqctl")
    parts = urllib.parse.urlsplit(amqp_url)
    connection = BlockingConnection(params_via(amqp_url, parts.port or 5672))
    events: list[Any] = []
    connection.add_recovery_listener(lambda _c, event: events.append(event))
    try:
        channel = connection.channel()
        rabbitmq.rabbitmqctl("close_all_connections", "recovery test")
        # A call made meanwhile waits for the recovery, then completes.
        queue = channel.queue_declare("", exclusive=True).method.queue
        assert queue
        connection.process_data_events(0.2)
        lost = [e for e in events if isinstance(e, rc.ConnectionLost)]
        assert lost and isinstance(lost[0].reason, exc.ConnectionClosedByBroker)
        assert lost[0].reason.reply_code == 320
        assert connection.is_open
    finally:
        connection.close()


def test_without_a_policy_nothing_changes(amqp_url: str, proxy: TCPProxy) -> None:
    connection = BlockingConnection(params_via(amqp_url, proxy.port, policy=None))
    channel = connection.channel()
    proxy.cut()
    with pytest.raises(exc.AMQPConnectionError):
        channel.queue_declare("", exclusive=True)
        connection.process_data_events(1)


def test_a_durable_queue_and_its_consumer_come_back_after_a_broker_restart(
    amqp_url: str, rabbitmq: RabbitMQNode | None
) -> None:
    if rabbitmq is None:
        pytest.skip("needs the suite's own node to restart it")
    parts = urllib.parse.urlsplit(amqp_url)
    connection = BlockingConnection(params_via(amqp_url, parts.port or 5672))
    try:
        channel = connection.channel()
        queue = channel.queue_declare("recovery-durable", durable=True).method.queue
        channel.queue_purge(queue)
        messages = channel.consume(queue, inactivity_timeout=0.2)
        rabbitmq.rabbitmqctl("stop_app")
        rabbitmq.rabbitmqctl("start_app")
        rabbitmq.wait_until_ready()
        publisher = BlockingConnection(URLParameters(amqp_url))
        try:
            publisher.channel().basic_publish("", queue, b"after the restart")
        finally:
            publisher.close()
        body = None
        deadline = 30
        while body is None and deadline > 0:
            _method, _props, body = next(messages)
            deadline -= 1
        assert body == b"after the restart"
        assert connection.is_open
        channel.cancel()
        channel.queue_delete(queue)
    finally:
        connection.close()
