"""The native async API against a real RabbitMQ, on asyncio and on trio."""

from __future__ import annotations

import socket
import urllib.parse
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio import wait_all_tasks_blocked

from amqp_asyncio import Message, NativeChannel, connect
from amqp_core import BasicProperties
from amqp_core.confirms import PublishOutcome
from amqp_core.exceptions import (
    AMQPHeartbeatTimeout,
    ChannelClosedByBroker,
    ConsumerCancelled,
    NackError,
    ProbableAuthenticationError,
    StreamLostError,
    UnroutableError,
)
from amqp_core.parameters import Parameters, URLParameters
from tests.native_async.proxy import Proxy, proxy_to
from tools.broker import RabbitMQNode, find_free_port, release_port

pytestmark = [pytest.mark.anyio, pytest.mark.broker]


def _with_port(url: str, port: int, query: str = "") -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


async def _queue(channel: NativeChannel) -> str:
    declared = await channel.queue_declare("", exclusive=True)
    return declared.queue


async def test_declare_publish_get_and_delete(amqp_url: str) -> None:
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection, await connection.channel() as channel:
            queue = await _queue(channel)
            await channel.exchange_declare("native.x", "direct", auto_delete=True)
            await channel.queue_bind(queue, "native.x", "key")
            props = BasicProperties(content_type="text/plain", headers={"n": 1})
            await channel.basic_publish("native.x", "key", "hello", props)
            await channel.basic_publish("", queue, b"second")
            message = None
            while message is None:  # a publish without confirms may still be on its way
                message = await channel.basic_get(queue)
            assert message.body == b"hello"
            assert message.properties.content_type == "text/plain"
            assert message.properties.headers == {"n": 1}
            assert message.routing_key == "key"
            await message.ack()
            purged = await channel.queue_purge(queue)
            assert purged.message_count == 1
            assert await channel.basic_get(queue) is None
            await channel.queue_unbind(queue, "native.x", "key")
            await channel.exchange_delete("native.x")
            deleted = await channel.queue_delete(queue)
            assert deleted.message_count == 0
        assert channel.is_closed
        assert connection.is_closed


async def test_several_hosts_first_refused(amqp_url: str) -> None:
    dead = find_free_port()
    try:
        hosts: list[str | Parameters] = [URLParameters(_with_port(amqp_url, dead)), amqp_url]
        with anyio.fail_after(15):
            async with connect(hosts) as connection:
                assert connection.is_open
                assert connection.params.port != dead
    finally:
        release_port(dead)


async def test_bad_password_raises_on_entry(amqp_url: str) -> None:
    parts = urllib.parse.urlsplit(amqp_url)
    bad = parts._replace(netloc=f"guest:wrong@{parts.hostname}:{parts.port}").geturl()
    with anyio.fail_after(15), pytest.raises(ProbableAuthenticationError):
        async with connect(bad):
            pytest.fail("the connection must not open")


async def test_fifty_confirmed_publishers_and_an_acking_consumer(amqp_url: str) -> None:
    tasks, per_task = 50, 20
    expected = {f"{t}-{i}".encode() for t in range(tasks) for i in range(per_task)}
    received: list[bytes] = []
    with anyio.fail_after(60):
        async with connect(amqp_url) as connection:
            publisher = await connection.channel(publisher_confirms=True, max_in_flight=32)
            consumer_channel = await connection.channel()
            queue = await _queue(consumer_channel)
            await consumer_channel.basic_qos(100)
            settled = 0
            returned = 0
            peak = 0
            on_settled = publisher._on_settled

            def spy(outcome: PublishOutcome) -> None:
                nonlocal settled
                settled += 1
                on_settled(outcome)

            publisher._tracker._on_settled = spy  # type: ignore[union-attr]

            async def publish(task: int) -> None:
                nonlocal returned, peak
                for i in range(per_task):
                    await publisher.basic_publish("", queue, f"{task}-{i}", mandatory=True)
                    returned += 1
                    # Every publish that returned was confirmed before it returned.
                    assert settled >= returned
                    peak = max(peak, publisher.publishes_in_flight)

            async def consume() -> None:
                async with consumer_channel.consume(queue) as messages:
                    async for message in messages:
                        received.append(message.body)
                        await message.ack()
                        if len(received) == len(expected):
                            return

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                async with anyio.create_task_group() as publishers:
                    for task in range(tasks):
                        publishers.start_soon(publish, task)
            assert returned == len(expected)
            assert publisher.publishes_in_flight == 0
            assert peak <= 32
            assert not publisher._confirms
    assert len(received) == len(expected)
    assert set(received) == expected


async def test_unroutable_mandatory_and_nack(amqp_url: str) -> None:
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection:
            channel = await connection.channel(publisher_confirms=True)
            with pytest.raises(UnroutableError) as caught:
                await channel.basic_publish("amq.direct", "nowhere", b"lost", mandatory=True)
            assert caught.value.messages[0].body == b"lost"  # type: ignore[attr-defined]
            # Not mandatory: the broker drops it and acks.
            await channel.basic_publish("amq.direct", "nowhere", b"dropped")
            full = await channel.queue_declare(
                "",
                exclusive=True,
                arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
            )
            await channel.basic_publish("", full.queue, b"fits")
            with pytest.raises(NackError):
                await channel.basic_publish("", full.queue, b"refused")
            assert channel.is_open


async def test_channel_closed_by_broker_reaches_every_waiter(amqp_url: str) -> None:
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection:
            channel = await connection.channel()
            queue = await _queue(channel)
            errors: list[BaseException] = []

            async def iterate() -> None:
                try:
                    async for _message in channel.consume(queue):
                        pass
                except ChannelClosedByBroker as error:
                    errors.append(error)

            async with anyio.create_task_group() as tg:
                tg.start_soon(iterate)
                await wait_all_tasks_blocked()
                with pytest.raises(ChannelClosedByBroker) as caught:
                    await channel.queue_declare("native.missing", passive=True)
                assert caught.value.reply_code == 404
            assert len(errors) == 1
            assert errors[0] is caught.value
            assert channel.is_closed
            with pytest.raises(ChannelClosedByBroker):
                await channel.basic_publish("", queue, b"late")
            # The connection is fine: another channel works.
            async with await connection.channel() as other:
                await other.queue_declare(queue, passive=True)


async def test_consumed_messages_carry_their_own_exchange_key_and_tag(amqp_url: str) -> None:
    # The consumer shares equal strings between the messages it holds: a change must show.
    sent = [("amq.direct", "a"), ("amq.direct", "a"), ("", ""), ("amq.direct", "b")]
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection, await connection.channel() as channel:
            queue = await _queue(channel)
            await channel.queue_bind(queue, "amq.direct", "a")
            await channel.queue_bind(queue, "amq.direct", "b")
            expected = [(exchange, key or queue) for exchange, key in sent]
            for exchange, key in expected:
                await channel.basic_publish(exchange, key, b"m")
            seen = []
            async with channel.consume(queue, auto_ack=True) as messages:
                async for message in messages:
                    seen.append((message.exchange, message.routing_key, message.consumer_tag))
                    if len(seen) == len(sent):
                        break
            assert [(exchange, key) for exchange, key, _tag in seen] == expected
            assert {tag for _exchange, _key, tag in seen} == {messages.consumer_tag}


async def test_consumer_cancelled_by_broker(amqp_url: str) -> None:
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection, await connection.channel() as channel:
            queue = await _queue(channel)
            consumer = channel.consume(queue)
            await consumer.start()
            await channel.queue_delete(queue)
            with pytest.raises(ConsumerCancelled):
                async for _message in consumer:
                    pass
            assert channel.is_open


async def test_connection_lost_reaches_every_waiter(amqp_url: str, rabbitmq: RabbitMQNode) -> None:
    async with proxy_to(rabbitmq.amqp_port) as proxy:
        url = _with_port(amqp_url, proxy.port)
        errors: list[BaseException] = []
        with anyio.fail_after(20):
            async with connect(url, recovery=None) as connection:
                channel = await connection.channel(publisher_confirms=True)
                queue = await _queue(channel)

                async def iterate() -> None:
                    with pytest.raises(StreamLostError) as caught:
                        async for _message in channel.consume(queue):
                            pass
                    errors.append(caught.value)

                async def get_blocked() -> None:
                    with pytest.raises(StreamLostError) as caught:
                        await connection.wait_blocked()
                    errors.append(caught.value)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(iterate)
                    tg.start_soon(get_blocked)
                    await wait_all_tasks_blocked()
                    proxy.cut()
                assert connection.is_closed
                assert isinstance(connection.close_reason, StreamLostError)
                with pytest.raises(StreamLostError):
                    await connection.channel()
        assert len(errors) == 2


async def test_missed_heartbeats_end_the_connection(amqp_url: str, rabbitmq: RabbitMQNode) -> None:
    async with proxy_to(rabbitmq.amqp_port) as proxy:
        url = _with_port(amqp_url, proxy.port, "heartbeat=1")
        with anyio.fail_after(20):
            async with connect(url, recovery=None) as connection:
                channel = await connection.channel(publisher_confirms=True)
                queue = await _queue(channel)
                proxy.frozen = True
                with pytest.raises(AMQPHeartbeatTimeout):
                    await channel.basic_publish("", queue, b"never confirmed")
                assert connection.is_closed
                assert isinstance(channel.close_reason, AMQPHeartbeatTimeout)


async def test_unseen_connection_error_is_raised_on_exit(
    amqp_url: str, rabbitmq: RabbitMQNode
) -> None:
    async with proxy_to(rabbitmq.amqp_port) as proxy:
        url = _with_port(amqp_url, proxy.port)

        async def cut_and_leave() -> None:
            async with connect(url, recovery=None) as connection:
                proxy.cut()
                await connection.wait_closed()

        with anyio.fail_after(20), pytest.raises(StreamLostError):
            await cut_and_leave()


async def test_cancelled_publish_leaves_the_channel_consistent(
    amqp_url: str, rabbitmq: RabbitMQNode
) -> None:
    async with proxy_to(rabbitmq.amqp_port) as proxy:
        url = _with_port(amqp_url, proxy.port)
        with anyio.fail_after(15):
            async with connect(url) as connection:
                channel = await connection.channel(publisher_confirms=True, max_in_flight=1)
                queue = await _queue(channel)
                proxy.frozen = True  # no confirm can come back until the proxy thaws
                async with anyio.create_task_group() as tg:
                    tg.start_soon(channel.basic_publish, "", queue, b"one")
                    tg.start_soon(channel.basic_publish, "", queue, b"two")
                    while channel.publishes_in_flight == 0:
                        await anyio.sleep(0.01)
                    # One publish waits for its confirm, the other for the slot: cancel both.
                    tg.cancel_scope.cancel()
                assert channel.publishes_in_flight == 1
                assert not channel._confirms
                proxy.frozen = False
                await channel.basic_publish("", queue, b"after")
                assert channel.publishes_in_flight == 0
                bodies = []
                while (message := await channel.basic_get(queue, auto_ack=True)) is not None:
                    bodies.append(message.body)
                # Whichever task got the slot first (trio randomises the order) published;
                # the one cancelled while it waited for the slot published nothing.
                assert len(bodies) == 2
                assert bodies[0] in (b"one", b"two")
                assert bodies[1] == b"after"
                assert channel.is_open


async def test_cancelled_consume_leaves_the_channel_consistent(amqp_url: str) -> None:
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection:
            channel = await connection.channel()
            queue = await _queue(channel)
            got: list[Message] = []

            async def consume() -> None:
                async with channel.consume(queue) as messages:
                    async for message in messages:
                        got.append(message)

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await channel.basic_publish("", queue, b"one")
                while not got:
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
            # The consumer is gone at the broker; the unacked message can still be acked.
            declared = await channel.queue_declare(queue, passive=True)
            assert declared.consumer_count == 0
            await got[0].ack()
            await channel.basic_publish("", queue, b"two")
            message = None
            while message is None:
                message = await channel.basic_get(queue, auto_ack=True)
            assert message.body == b"two"


async def test_transactions(amqp_url: str) -> None:
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection, await connection.channel() as channel:
            queue = await _queue(channel)
            await channel.tx_select()
            await channel.basic_publish("", queue, b"rolled back")
            await channel.tx_rollback()
            await channel.basic_publish("", queue, b"committed")
            await channel.tx_commit()
            declared = await channel.queue_declare(queue, passive=True)
            assert declared.message_count == 1


async def test_blocked_and_unblocked(amqp_url: str, rabbitmq: RabbitMQNode) -> None:
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection:
            channel = await connection.channel()
            try:
                await anyio.to_thread.run_sync(
                    rabbitmq.rabbitmqctl, "set_vm_memory_high_watermark", "absolute", "1"
                )
                # RabbitMQ blocks (and tells) a connection once it publishes during an alarm.
                await channel.basic_publish("amq.direct", "nowhere", b"x")
                reason = await connection.wait_blocked()
                assert "memory" in reason
                assert connection.is_blocked
            finally:
                await anyio.to_thread.run_sync(
                    rabbitmq.rabbitmqctl, "set_vm_memory_high_watermark", "0.4"
                )
            await connection.wait_unblocked()
            assert not connection.is_blocked


def test_runs_under_plain_asyncio_run(amqp_url: str) -> None:
    # asyncio.run, unlike anyio.run, does not tell anyio (through sniffio) which library
    # runs: callbacks of the loop's transport must work all the same.
    import asyncio

    async def main() -> bytes:
        async with connect(amqp_url) as connection, await connection.channel() as channel:
            queue = await _queue(channel)
            async with channel.consume(queue) as messages:
                await channel.basic_publish("", queue, b"plain asyncio")
                message = await anext(messages)
                await message.ack()
                return message.body

    assert asyncio.run(asyncio.wait_for(main(), 15)) == b"plain asyncio"


async def test_an_error_raised_by_a_callback_ends_the_connection_block(
    amqp_url: str, rabbitmq: RabbitMQNode
) -> None:
    def listener(_connection: object, _event: object) -> None:
        raise RuntimeError("a listener failed")

    async def run(url: str, proxy: Proxy) -> None:
        async with connect(url) as connection:
            connection.add_recovery_listener(listener)
            proxy.cut()  # ConnectionLost reaches the listener, which raises
            await anyio.sleep(10)

    async with proxy_to(rabbitmq.amqp_port) as proxy:
        url = _with_port(amqp_url, proxy.port)
        with anyio.fail_after(15), pytest.raises(Exception) as info:  # noqa: PT011
            await run(url, proxy)
        # The task group's exception group carries it.
        assert info.group_contains(RuntimeError, match="a listener failed")


async def test_tcp_options_reach_the_socket(amqp_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from amqp_asyncio.native import _asyncio_stream, _services
    from amqp_core.transport import apply_tcp_options

    seen: list[tuple[int, int]] = []

    def spy(sock: socket.socket, options: Any, socket_module: Any) -> None:
        apply_tcp_options(sock, options, socket_module)
        seen.append(
            (
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            )
        )

    # anyio's streams (trio) and asyncio's own transport (_asyncio_stream) each apply them.
    monkeypatch.setattr(_services, "apply_tcp_options", spy)
    monkeypatch.setattr(_asyncio_stream, "apply_tcp_options", spy)
    params = URLParameters(amqp_url)
    params.tcp_options = {"TCP_KEEPIDLE": 33}
    async with connect(params) as connection:
        await connection.channel()
    assert seen == [(1, 33)]
