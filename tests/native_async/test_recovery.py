"""Automatic recovery in the native async API (on by default), on asyncio and on trio."""

from __future__ import annotations

import uuid

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from amqp_asyncio import Consumer, NativeConnection, connect
from amqp_core.exceptions import (
    ConnectionClosedByClient,
    ConnectionRecoveryFailed,
    RecoveryInterrupted,
    StreamLostError,
)
from amqp_core.parameters import URLParameters
from amqp_core.recovery import (
    ConnectionLost,
    PublishesUnconfirmed,
    Recovered,
    RecoveryEvent,
    RecoveryFailed,
    RecoveryPolicy,
    StaleDeliveryTag,
    keeps_buffered_deliveries,
)
from tests.native_async.proxy import proxy_to
from tests.native_async.test_native import _with_port
from tools.broker import RabbitMQNode, find_free_port, release_port

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

FAST = RecoveryPolicy(initial_delay=0.1, max_delay=0.5)


class _Events:
    def __init__(self, connection: NativeConnection) -> None:
        self.seen: list[RecoveryEvent] = []
        connection.add_recovery_listener(lambda _conn, event: self.seen.append(event))

    def count(self, kind: type) -> int:
        return sum(isinstance(event, kind) for event in self.seen)

    async def wait_for(self, kind: type, count: int = 1) -> None:
        while self.count(kind) < count:
            await anyio.sleep(0.01)


def _queue_name() -> str:
    return f"native.recovery.{uuid.uuid4().hex}"


async def test_recovery_is_on_by_default(amqp_url: str) -> None:
    params = URLParameters(amqp_url)
    with anyio.fail_after(15):
        async with connect(params) as connection:
            assert isinstance(connection.params.recovery, RecoveryPolicy)
            assert not connection.is_recovering
        assert params.recovery is None  # the application's parameters are left alone
        params.recovery = FAST
        async with connect(params) as connection:
            assert connection.params.recovery is FAST
        async with connect(params, recovery=None) as connection:
            assert connection.params.recovery is None


async def test_consumer_keeps_receiving_after_recovery(
    amqp_url: str, rabbitmq: RabbitMQNode
) -> None:
    async with proxy_to(rabbitmq.amqp_port) as proxy:
        url = _with_port(amqp_url, proxy.port)
        with anyio.fail_after(30):
            async with connect(url, recovery=FAST) as connection:
                events = _Events(connection)
                channel = await connection.channel()
                queue = (await channel.queue_declare(_queue_name(), exclusive=True)).queue
                async with channel.consume(queue) as consumer:
                    await channel.basic_publish("", queue, b"before")
                    message = await anext(consumer)
                    assert message.body == b"before"
                    await message.ack()
                    proxy.cut()
                    await events.wait_for(Recovered)
                    await connection.wait_recovered()
                    assert channel.is_open
                    for body in (b"after 1", b"after 2"):
                        await channel.basic_publish("", queue, body)
                    received = [await anext(consumer), await anext(consumer)]
                    assert [m.body for m in received] == [b"after 1", b"after 2"]
                    for m in received:
                        await m.ack()
                assert events.count(ConnectionLost) == 1
                assert channel.is_open
            assert isinstance(connection.close_reason, ConnectionClosedByClient)


async def test_publish_waiting_for_its_confirm_fails_at_the_cut(
    amqp_url: str, rabbitmq: RabbitMQNode
) -> None:
    async with proxy_to(rabbitmq.amqp_port) as proxy:
        url = _with_port(amqp_url, proxy.port)
        errors: list[BaseException] = []
        with anyio.fail_after(30):
            async with connect(url, recovery=FAST) as connection:
                events = _Events(connection)
                channel = await connection.channel(publisher_confirms=True)
                queue = (await channel.queue_declare(_queue_name(), exclusive=True)).queue

                async def publish() -> None:
                    try:
                        await channel.basic_publish("", queue, b"unconfirmed")
                    except Exception as error:
                        errors.append(error)
                    else:
                        errors.append(AssertionError("the publish succeeded"))

                async def declare() -> None:
                    try:
                        await channel.queue_declare(_queue_name(), exclusive=True)
                    except Exception as error:
                        errors.append(error)

                proxy.frozen = True  # neither the confirm nor Declare-Ok can come back
                async with anyio.create_task_group() as tg:
                    tg.start_soon(publish)
                    tg.start_soon(declare)
                    while channel.publishes_in_flight == 0:
                        await anyio.sleep(0.01)
                    await wait_all_tasks_blocked()
                    proxy.cut()
                    await events.wait_for(ConnectionLost)
                    proxy.frozen = False
                assert len(errors) == 2
                assert all(isinstance(error, RecoveryInterrupted) for error in errors), errors
                assert events.count(PublishesUnconfirmed) == 1
                assert events.count(Recovered) == 1
                # Confirm mode came back with the channel: the next publish is confirmed.
                await channel.basic_publish("", queue, b"after")
                assert channel.publishes_in_flight == 0


async def test_recovery_none_keeps_the_connection_error(
    amqp_url: str, rabbitmq: RabbitMQNode
) -> None:
    async with proxy_to(rabbitmq.amqp_port) as proxy:
        url = _with_port(amqp_url, proxy.port)
        with anyio.fail_after(20):
            async with connect(url, recovery=None) as connection:
                events = _Events(connection)
                channel = await connection.channel()
                queue = (await channel.queue_declare(_queue_name(), exclusive=True)).queue
                consumer = channel.consume(queue)
                await consumer.start()
                proxy.cut()
                with pytest.raises(StreamLostError):
                    await anext(consumer)
                assert connection.is_closed
                assert not connection.is_recovering
                assert events.seen == []


async def test_waiters_get_recovery_failed_when_recovery_gives_up(
    amqp_url: str, rabbitmq: RabbitMQNode
) -> None:
    async with proxy_to(rabbitmq.amqp_port) as proxy:
        url = _with_port(amqp_url, proxy.port)
        policy = RecoveryPolicy(initial_delay=0.05, max_attempts=2)
        with anyio.fail_after(20):
            async with connect(url, recovery=policy) as connection:
                events = _Events(connection)
                channel = await connection.channel()
                queue = (await channel.queue_declare(_queue_name(), exclusive=True)).queue
                consumer = channel.consume(queue)
                await consumer.start()
                dead = find_free_port()
                try:
                    proxy.target_port = dead  # nothing listens there: every attempt fails
                    proxy.cut()
                    with pytest.raises(ConnectionRecoveryFailed):
                        await anext(consumer)
                    with pytest.raises(ConnectionRecoveryFailed):
                        await channel.basic_publish("", queue, b"too late")
                finally:
                    release_port(dead)
                assert connection.is_closed
                assert events.count(RecoveryFailed) == 1


async def _buffer_filled(consumer: Consumer, count: int) -> None:
    # Deliveries received but not yet handed out (what this rule is about).
    while len(consumer._buffer) < count:
        await anyio.sleep(0.01)


async def test_manual_ack_consumer_drops_its_buffer_at_the_loss(
    amqp_url: str, rabbitmq: RabbitMQNode
) -> None:
    bodies = [f"m{i}".encode() for i in range(5)]
    async with proxy_to(rabbitmq.amqp_port) as proxy:
        url = _with_port(amqp_url, proxy.port)
        with anyio.fail_after(30):
            async with connect(url, recovery=FAST) as connection:
                events = _Events(connection)
                channel = await connection.channel()
                # Not exclusive: the queue and its messages outlive the lost connection.
                queue = (await channel.queue_declare(_queue_name())).queue
                try:
                    async with channel.consume(queue) as consumer:
                        for body in bodies:
                            await channel.basic_publish("", queue, body)
                        first = await anext(consumer)
                        assert first.body == b"m0"
                        await _buffer_filled(consumer, 4)
                        proxy.cut()
                        await events.wait_for(Recovered)
                        # The buffered copies (tags of the dead channel) are gone; the broker
                        # redelivers all five, the one handed out before the loss included.
                        again = [await anext(consumer) for _ in bodies]
                        assert [m.body for m in again] == bodies
                        assert all(m.redelivered for m in again)
                        assert min(m.delivery_tag for m in again) > first.delivery_tag
                        await again[-1].ack(multiple=True)
                        await first.ack()  # stale: dropped, not sent
                        assert events.count(StaleDeliveryTag) == 1
                    declared = await channel.queue_declare(queue, passive=True)
                    assert declared.message_count == 0
                    assert channel.is_open
                finally:
                    await channel.queue_delete(queue)


async def test_auto_ack_consumer_keeps_its_buffer_across_the_loss(
    amqp_url: str, rabbitmq: RabbitMQNode
) -> None:
    bodies = [f"m{i}".encode() for i in range(5)]
    async with proxy_to(rabbitmq.amqp_port) as proxy:
        url = _with_port(amqp_url, proxy.port)
        with anyio.fail_after(30):
            async with connect(url, recovery=FAST) as connection:
                events = _Events(connection)
                channel = await connection.channel()
                queue = (await channel.queue_declare(_queue_name())).queue
                try:
                    async with channel.consume(queue, auto_ack=True) as consumer:
                        for body in bodies:
                            await channel.basic_publish("", queue, body)
                        assert (await anext(consumer)).body == b"m0"
                        await _buffer_filled(consumer, 4)
                        proxy.cut()
                        await events.wait_for(Recovered)
                        # The broker counts them as delivered: they are still handed out,
                        # once, and nothing is redelivered.
                        kept = [await anext(consumer) for _ in bodies[1:]]
                        assert [m.body for m in kept] == bodies[1:]
                        assert not any(m.redelivered for m in kept)
                        await channel.basic_publish("", queue, b"after")
                        after = await anext(consumer)
                        assert after.body == b"after"
                        assert not after.redelivered
                finally:
                    await channel.queue_delete(queue)


def test_the_buffered_delivery_rule() -> None:
    assert keeps_buffered_deliveries(auto_ack=True)
    assert not keeps_buffered_deliveries(auto_ack=False)
