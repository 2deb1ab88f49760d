"""Publishing in the native async API: bursts, backpressure and ``publish_batch``."""

from __future__ import annotations

import uuid

import anyio
import anyio.lowlevel
import pytest
from anyio import wait_all_tasks_blocked

from amqp_asyncio import NativeChannel, NativeConnection, connect
from amqp_asyncio.native._connection import PUBLISH_CREDIT
from amqp_asyncio.native._services import AnyioServices
from amqp_core.exceptions import (
    ConnectionBlockedTimeout,
    RecoveryInterrupted,
    UnroutableError,
)
from amqp_core.recovery import ConnectionLost, RecoveryEvent, RecoveryPolicy
from tests.native_async.proxy import proxy_to
from tests.native_async.test_native import _queue, _with_port
from tools.broker import RabbitMQNode

pytestmark = [pytest.mark.anyio, pytest.mark.broker]


async def _depth(channel: NativeChannel, queue: str, count: int) -> None:
    while (await channel.queue_declare(queue, passive=True)).message_count < count:
        await anyio.sleep(0.01)


async def _set_alarm(rabbitmq: RabbitMQNode, on: bool) -> None:
    args = ("absolute", "1") if on else ("0.4",)
    await anyio.to_thread.run_sync(rabbitmq.rabbitmqctl, "set_vm_memory_high_watermark", *args)


async def test_a_burst_of_publishes_lets_other_tasks_run_only_now_and_then(
    amqp_url: str,
) -> None:
    count = 20 * PUBLISH_CREDIT
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(15):
        async with connect(amqp_url) as connection, await connection.channel() as channel:
            queue = await _queue(channel)
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                await anyio.sleep(0.01)
                ticks = 0
                for _ in range(count):
                    await channel.basic_publish("", queue, b"x")
                during = ticks
                tg.cancel_scope.cancel()
            # Once per spent credit, not once per publish; but it does let others run.
            assert 10 <= during <= count // 10
            await _depth(channel, queue, count)


async def test_a_lone_publish_leaves_before_it_returns_and_a_burst_is_joined(
    amqp_url: str, anyio_backend: str
) -> None:
    # On trio a lone publish (nothing written since the last input) is written by the
    # publishing task itself, not by the callback runner on its next step; the publishes
    # after it are joined into one write by the runner, as on asyncio.
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection, await connection.channel() as channel:
            queue = await _queue(channel)
            core = connection._core
            await channel.queue_declare(queue, passive=True)  # a reply came in: a lone publish
            await channel.basic_publish("", queue, b"lone")
            alone_left_at_once = core._flush_pending is None
            await channel.basic_publish("", queue, b"burst 1")
            await channel.basic_publish("", queue, b"burst 2")
            burst_waits_for_the_runner = core._flush_pending is not None
            await _depth(channel, queue, 3)
            got = await channel.basic_get(queue, auto_ack=True)
            assert got is not None
            assert got.body == b"lone"
    assert alone_left_at_once == (anyio_backend == "trio")
    assert burst_waits_for_the_runner


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_an_error_in_what_a_lone_publish_runs_inline_keeps_the_rest() -> None:
    ran: list[str] = []

    def fail() -> None:
        ran.append("fail")
        raise RuntimeError("a callback failed")

    def work() -> None:
        services.call_later(0, fail)
        services.call_later(0, lambda: ran.append("after"))

    async with anyio.create_task_group() as tg:
        services = AnyioServices(tg)
        tg.start_soon(services.run)
        with pytest.raises(RuntimeError, match="a callback failed"):
            services.run_inline(work)
        assert ran == ["fail"]
        await wait_all_tasks_blocked()
        assert ran == ["fail", "after"]  # run by the callback runner instead
        tg.cancel_scope.cancel()


async def test_a_cancelled_task_publishes_nothing(amqp_url: str) -> None:
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection, await connection.channel() as channel:
            queue = await _queue(channel)
            with anyio.CancelScope() as scope:
                scope.cancel()
                await channel.basic_publish("", queue, b"never")
            assert scope.cancelled_caught
            await channel.basic_publish("", queue, b"sent")
            message = None
            while message is None:
                message = await channel.basic_get(queue, auto_ack=True)
            assert message.body == b"sent"
            assert (await channel.queue_declare(queue, passive=True)).message_count == 0


async def test_publish_waits_while_the_broker_blocks_the_connection(
    amqp_url: str, rabbitmq: RabbitMQNode
) -> None:
    with anyio.fail_after(20):
        async with connect(amqp_url) as connection, await connection.channel() as channel:
            queue = await _queue(channel)
            returned = anyio.Event()

            async def publish() -> None:
                await channel.basic_publish("", queue, b"held back")
                returned.set()

            try:
                await _set_alarm(rabbitmq, True)
                # RabbitMQ blocks (and tells) a connection once it publishes during an alarm.
                await channel.basic_publish("", queue, b"first")
                await connection.wait_blocked()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(publish)
                    await wait_all_tasks_blocked()
                    await anyio.sleep(0.3)
                    assert not returned.is_set()
                    await _set_alarm(rabbitmq, False)
                    await connection.wait_unblocked()
                    await returned.wait()
            finally:
                await _set_alarm(rabbitmq, False)
            await _depth(channel, queue, 2)


async def test_a_publish_held_back_too_long_raises_blocked_timeout(
    amqp_url: str, rabbitmq: RabbitMQNode
) -> None:
    with anyio.fail_after(20):
        async with connect(amqp_url + "?blocked_connection_timeout=1") as connection:
            channel = await connection.channel()
            try:
                await _set_alarm(rabbitmq, True)
                await channel.basic_publish("amq.direct", "nowhere", b"first")
                await connection.wait_blocked()
                with pytest.raises(ConnectionBlockedTimeout):
                    await channel.basic_publish("amq.direct", "nowhere", b"held back")
            finally:
                await _set_alarm(rabbitmq, False)
            assert connection.is_closed  # not recovered: the alarm would only block it again


async def test_unsent_output_stays_below_the_high_water_mark(
    amqp_url: str, rabbitmq: RabbitMQNode
) -> None:
    high_water = 256 * 1024
    body = b"x" * (64 * 1024)
    # At most one burst above the mark: the publishes that spend the credit (33 units each),
    # with their frame headers, and a few small frames (a heartbeat) besides.
    bound = high_water + -(-PUBLISH_CREDIT // (1 + len(body) // 2048)) * len(body) + 4096
    async with proxy_to(rabbitmq.amqp_port) as proxy:
        url = _with_port(amqp_url, proxy.port)
        with anyio.fail_after(30):
            async with connect(url, write_high_water=high_water) as connection:
                channel = await connection.channel()
                queue = await _queue(channel)
                published = 0
                peak = 0

                def unsent(connection: NativeConnection) -> int:
                    size: int = connection._core.outbound_buffer_size
                    return size

                async def publish(count: int) -> None:
                    nonlocal published, peak
                    for _ in range(count):
                        await channel.basic_publish("", queue, body)
                        published += 1
                        peak = max(peak, unsent(connection))

                proxy.frozen = True  # the broker stops reading, as a blocked one does
                async with anyio.create_task_group() as tg:
                    tg.start_soon(publish, 2000)  # 125 MiB if nothing held it back
                    stalled_at = -1
                    while stalled_at != published:  # until publishing stops making progress
                        stalled_at = published
                        await anyio.sleep(0.5)
                    assert published < 2000
                    assert unsent(connection) <= bound
                    proxy.frozen = False
                await _depth(channel, queue, 2000)
                assert peak <= bound


def test_write_high_water_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="write_high_water"):
        connect("amqp://localhost", write_high_water=-1)


async def test_publish_batch(amqp_url: str) -> None:
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection:
            channel = await connection.channel(max_in_flight=10)
            confirms_before = channel.publisher_confirms
            queue = await _queue(channel)
            messages = [("", queue, f"m{i}") for i in range(200)]
            outcomes = await channel.publish_batch(messages)
            assert (confirms_before, channel.publisher_confirms) == (False, True)
            assert [o.sequence for o in outcomes] == list(range(1, 201))
            assert all(o.ok for o in outcomes)
            assert channel.publishes_in_flight == 0
            await _depth(channel, queue, 200)

            mixed = [("", queue, b"routed"), ("amq.direct", "nowhere", b"unroutable")]
            routed, unroutable = await channel.publish_batch(mixed, mandatory=True)
            assert routed.ok
            assert isinstance(unroutable.error, UnroutableError)
            assert await channel.publish_batch([]) == []


async def test_publish_batch_cut_by_a_connection_loss(
    amqp_url: str, rabbitmq: RabbitMQNode
) -> None:
    policy = RecoveryPolicy(initial_delay=0.1, max_delay=0.5)
    async with proxy_to(rabbitmq.amqp_port) as proxy:
        url = _with_port(amqp_url, proxy.port)
        with anyio.fail_after(30):
            async with connect(url, recovery=policy) as connection:
                lost = anyio.Event()

                def on_event(_connection: NativeConnection, event: RecoveryEvent) -> None:
                    if isinstance(event, ConnectionLost):
                        lost.set()

                connection.add_recovery_listener(on_event)
                channel = await connection.channel(publisher_confirms=True)
                queue = (await channel.queue_declare(f"native.batch.{uuid.uuid4().hex}")).queue
                try:
                    outcomes = []

                    async def publish() -> None:
                        outcomes.extend(await channel.publish_batch([("", queue, b"m")] * 50))

                    proxy.frozen = True  # no confirm can come back
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(publish)
                        while channel.publishes_in_flight < 50:
                            await anyio.sleep(0.01)
                        proxy.cut()
                        await lost.wait()
                        proxy.frozen = False
                    assert len(outcomes) == 50
                    assert all(isinstance(o.error, RecoveryInterrupted) for o in outcomes)
                    await connection.wait_recovered()
                    (again,) = await channel.publish_batch([("", queue, b"again")])
                    assert again.ok
                finally:
                    await channel.queue_delete(queue)
