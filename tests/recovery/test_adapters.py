"""Recovery on every callback adapter's loop, against the suite's real RabbitMQ.

The same scenarios run on SelectConnection, AsyncioConnection, TornadoConnection and
GeventConnection (the loop drivers of tests/adapters): the recovery is the core's, so what
differs is only the loop the reconnection, the timers and the jitter run on. Every wait has a
deadline. Twisted's recovery scenarios are in tests/twisted (a reactor per process).
"""

# ruff: noqa: PT018
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from amqp_core import exceptions as exc
from amqp_core import recovery as rc
from amqp_core import spec
from amqp_core.channel import Channel
from amqp_core.connection import Connection
from amqp_core.parameters import ConnectionParameters, URLParameters
from amqp_select.ioloop import available_pollers
from tests.adapters.amqp_support import (
    TIMEOUT,
    close_connection,
    cuttable_proxy,
    open_connection,
    wait,
)
from tests.adapters.loops import DRIVER_NAMES, LoopDriver, make_driver
from tests.adapters.test_rabbitmq import _controllable
from tools.broker import RabbitMQNode

ADAPTERS = ("select", "asyncio", "tornado", "gevent")
FAST = rc.RecoveryPolicy(initial_delay=0.05, max_delay=0.5, max_duration=30)


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> Iterator[LoopDriver]:
    driver = make_driver(
        f"select-{available_pollers()[0]}" if request.param == "select" else request.param
    )
    yield driver
    driver.close()


def recovering(url: str, port: int | None = None, policy: rc.RecoveryPolicy = FAST) -> Any:
    """The URL's broker (or ``port`` on 127.0.0.1: a proxy) with a recovery policy."""
    params = URLParameters(url)
    return ConnectionParameters(
        host="127.0.0.1",
        port=port or params.port,
        virtual_host=params.virtual_host,
        credentials=params.credentials,
        recovery=policy,
    )


class Events:
    """A connection's recovery events; :meth:`wait_for` runs the loop until one arrives."""

    def __init__(self, driver: LoopDriver, connection: Connection) -> None:
        self.driver = driver
        self.events: list[Any] = []
        self._until: type | None = None
        connection.add_recovery_listener(self._on_event)

    def _on_event(self, _connection: Connection, event: Any) -> None:
        self.events.append(event)
        if self._until is not None and isinstance(event, self._until):
            self._until = None
            self.driver.stop()

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def wait_for(self, kind: type, timeout: float = TIMEOUT) -> Any:
        if not self.of(kind):
            self._until = kind
            try:
                self.driver.run(timeout)
            except TimeoutError as error:
                raise AssertionError(
                    f"no {kind.__name__} within {timeout} s: {self.events}"
                ) from error
        return self.of(kind)[0]


class Consumer:
    """A consumer callback that records deliveries and stops the loop after each."""

    def __init__(self, driver: LoopDriver) -> None:
        self.driver = driver
        self.got: list[tuple[Any, bytes]] = []

    def __call__(self, _channel: Channel, method: Any, _properties: Any, body: bytes) -> None:
        self.got.append((method, body))
        self.driver.stop()

    def next(self) -> tuple[Any, bytes]:
        count = len(self.got)
        while len(self.got) == count:
            self.driver.run(TIMEOUT)
        return self.got[count]


class Confirms:
    """The channel's ack/nack callback: records the frames, stops the loop after each."""

    def __init__(self, driver: LoopDriver) -> None:
        self.driver = driver
        self.methods: list[Any] = []

    def __call__(self, frame: Any) -> None:
        self.methods.append(frame.method)
        self.driver.stop()

    def settled(self) -> int:
        """The highest sequence number settled so far (by an ack or a nack)."""
        return max((method.delivery_tag for method in self.methods), default=0)

    def wait_for(self, sequence: int) -> None:
        while self.settled() < sequence:
            self.driver.run(TIMEOUT)


def open_channel(driver: LoopDriver, connection: Connection) -> Channel:
    (channel,) = wait(driver, lambda done: connection.channel(on_open_callback=done))
    assert isinstance(channel, Channel)
    return channel


def test_broker_forced_close_restores_topology_consumer_and_modes(
    adapter: LoopDriver, rabbitmq: RabbitMQNode | None
) -> None:
    node = _controllable(rabbitmq)
    conn = open_connection(adapter, recovering(node.url))
    events = Events(adapter, conn)
    try:
        channel = open_channel(adapter, conn)
        confirms = Confirms(adapter)
        wait(adapter, lambda done: channel.confirm_delivery(confirms, callback=done))
        wait(adapter, lambda done: channel.basic_qos(prefetch_count=10, callback=done))
        exchange = f"x-{uuid.uuid4().hex}"
        wait(adapter, lambda done: channel.exchange_declare(exchange, "direct", callback=done))
        (ok,) = wait(adapter, lambda done: channel.queue_declare("", exclusive=True, callback=done))
        queue = ok.method.queue
        wait(adapter, lambda done: channel.queue_bind(queue, exchange, "k", callback=done))
        consumer = Consumer(adapter)
        (ok,) = wait(adapter, lambda done: channel.basic_consume(queue, consumer, callback=done))
        tag = ok.method.consumer_tag
        channel.basic_publish(exchange, "k", b"before")
        before, body = consumer.next()
        assert body == b"before" and before.delivery_tag == 1
        confirms.wait_for(1)

        node.rabbitmqctl("close_all_connections", "adapter recovery test")
        lost = events.wait_for(rc.ConnectionLost)
        assert isinstance(lost.reason, exc.ConnectionClosedByBroker)
        assert lost.reason.reply_code == 320
        recovered = events.wait_for(rc.Recovered)
        assert recovered.failures == 0 and recovered.attempts == 1
        assert conn.is_open and not conn.is_recovering and channel.is_open

        # The ack of a delivery from before the loss is dropped and reported, never sent
        # (on the new channel, tag 1 is somebody else's message).
        channel.basic_ack(before.delivery_tag)
        (stale,) = events.of(rc.StaleDeliveryTag)
        assert stale == rc.StaleDeliveryTag(channel.channel_number, 1, "basic_ack")
        # The exclusive queue came back under a new name, bound to the exchange again; the
        # consumer (same tag, same callback) follows it; confirm mode and QoS are back.
        (renamed,) = events.of(rc.QueueRenamed)
        assert renamed.old == queue and renamed.new != queue
        assert channel.consumer_tags == [tag]
        channel.basic_publish(exchange, "k", b"after")
        after, body = consumer.next()
        assert body == b"after" and after.consumer_tag == tag and after.delivery_tag == 2
        channel.basic_ack(after.delivery_tag)
        confirms.wait_for(2)  # publish sequence numbers go on across the recovery
        assert all(isinstance(m, spec.Basic.Ack) for m in confirms.methods)
        (ok,) = wait(
            adapter, lambda done: channel.queue_declare(renamed.new, passive=True, callback=done)
        )
        assert ok.method.message_count == 0 and ok.method.consumer_count == 1
        wait(adapter, lambda done: channel.exchange_delete(exchange, callback=done))
        assert len(events.of(rc.StaleDeliveryTag)) == 1
    finally:
        close_connection(adapter, conn)


def test_unconfirmed_publishes_are_reported_and_jitter_applied(
    adapter: LoopDriver, amqp_url: str
) -> None:
    target = URLParameters(amqp_url)
    # Full jitter, and no random source in the policy: the adapter's IOServices.random.
    policy = rc.RecoveryPolicy(initial_delay=0.2, jitter=1.0, max_duration=30)
    with cuttable_proxy((target.host, target.port)) as proxy:
        conn = open_connection(adapter, recovering(amqp_url, proxy.port, policy))
        events = Events(adapter, conn)
        try:
            channel = open_channel(adapter, conn)
            confirms = Confirms(adapter)
            wait(adapter, lambda done: channel.confirm_delivery(confirms, callback=done))
            queue = f"recovery-unconfirmed-{uuid.uuid4().hex}"
            wait(
                adapter, lambda done: channel.queue_declare(queue, auto_delete=True, callback=done)
            )
            for _ in range(300):
                channel.basic_publish("", queue, b"x" * 20_000)
            # Cut before the loop ran again: none of them can have been confirmed.
            proxy.cut()
            report = events.wait_for(rc.PublishesUnconfirmed)
            assert report.channel_number == channel.channel_number
            assert report.last_sequence == 300 and report.count == 300
            # The ack/nack callback hears of them as one nack with multiple: never as acked.
            (nack,) = confirms.methods
            assert isinstance(nack, spec.Basic.Nack) and nack.multiple
            assert nack.delivery_tag == 300
            recovering_event = events.wait_for(rc.Recovering)
            assert 0 <= recovering_event.delay < policy.initial_delay, recovering_event
            events.wait_for(rc.Recovered)
            # Confirm mode is back; the sequence goes on from 300.
            channel.basic_publish("", queue, b"after")
            confirms.wait_for(301)
            assert isinstance(confirms.methods[-1], spec.Basic.Ack)
            assert confirms.methods[-1].delivery_tag == 301
            wait(adapter, lambda done: channel.queue_delete(queue, callback=done))
        finally:
            close_connection(adapter, conn)


@pytest.mark.parametrize("name", DRIVER_NAMES)
def test_every_loop_offers_a_random_source(name: str) -> None:
    # The core takes the jitter of RecoveryPolicy from IOServices.random when the policy has
    # no source of its own (amqp_core has no randomness).
    driver = make_driver(name)
    try:
        source = getattr(driver.services(), "random", None)
        assert callable(source)
        draws = {source() for _ in range(100)}
        assert all(0.0 <= draw < 1.0 for draw in draws) and len(draws) > 90
    finally:
        driver.close()


@pytest.mark.parametrize("abrupt", [False, True], ids=["stop", "kill"])
def test_durable_queue_and_consumer_come_back_after_a_broker_restart(
    rabbitmq: RabbitMQNode | None, abrupt: bool
) -> None:
    """Issue 10's single-node case, on asyncio: the node's VM stops, then starts again.

    ``stop``: a clean ``rabbitmqctl stop`` (the client gets ``Connection.Close`` 320);
    ``kill``: SIGKILL, a crash (the client sees the TCP stream end).
    """
    node = _controllable(rabbitmq)
    driver = make_driver("asyncio")
    policy = rc.RecoveryPolicy(initial_delay=0.2, max_delay=1.0, max_duration=120)
    conn = open_connection(driver, recovering(node.url, policy=policy))
    events = Events(driver, conn)
    try:
        channel = open_channel(driver, conn)
        queue = f"recovery-restart-{uuid.uuid4().hex}"
        wait(driver, lambda done: channel.queue_declare(queue, durable=True, callback=done))
        consumer = Consumer(driver)
        (ok,) = wait(driver, lambda done: channel.basic_consume(queue, consumer, callback=done))
        tag = ok.method.consumer_tag
        channel.basic_publish(
            "", queue, b"before the restart", spec.BasicProperties(delivery_mode=2)
        )
        method, body = consumer.next()
        assert body == b"before the restart"
        channel.basic_ack(method.delivery_tag)

        # The restart runs beside the loop, so the client retries while the node is down.
        failure: list[BaseException] = []

        def restart() -> None:
            try:
                node.shutdown(abrupt=abrupt)
                node.restart()
            except BaseException as error:  # reported below
                failure.append(error)

        thread = threading.Thread(target=restart, name="restart")
        thread.start()
        try:
            events.wait_for(rc.Recovered, timeout=120)
        finally:
            thread.join(120)
        assert not failure, failure
        assert len(events.of(rc.Recovering)) > 1  # it was down for a while
        (lost,) = events.of(rc.ConnectionLost)
        if abrupt:
            assert isinstance(lost.reason, exc.StreamLostError), lost
        else:
            assert isinstance(lost.reason, exc.ConnectionClosedByBroker), lost
            assert lost.reason.reply_code == 320
        assert conn.is_open and channel.consumer_tags == [tag]
        channel.basic_publish("", queue, b"after the restart")
        method, body = consumer.next()
        assert body == b"after the restart" and not method.redelivered
        channel.basic_ack(method.delivery_tag)
        wait(driver, lambda done: channel.queue_delete(queue, callback=done))
    finally:
        close_connection(driver, conn)
        driver.close()
