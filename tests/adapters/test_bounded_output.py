"""Bounded output on every callback adapter, against a real RabbitMQ that blocks publishers.

The broker's memory alarm (``rabbitmqctl set_vm_memory_high_watermark``) makes it stop reading
from publishing connections. A publisher that keeps publishing fills the OS's socket buffers,
then the connection's; at ``max_unsent_bytes`` ``basic_publish`` raises
``OutputBufferFullError``. Once the alarm is cleared the output drains, the output-drained
callback runs, and every message published before the refusal (and none of the refused ones)
reaches the queue.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import pytest

from amqp_core import exceptions
from amqp_core.channel import Channel
from amqp_core.connection import Connection
from amqp_core.parameters import URLParameters
from amqp_select.ioloop import available_pollers
from tests.adapters.amqp_support import TIMEOUT, close_connection, open_connection, wait
from tests.adapters.loops import LoopDriver, make_driver
from tools.broker import RabbitMQNode

LIMIT = 1024 * 1024
BODY = b"b" * 1024


@pytest.fixture(params=("select", "asyncio", "tornado", "gevent"))
def adapter(request: pytest.FixtureRequest) -> Iterator[LoopDriver]:
    driver = make_driver(
        f"select-{available_pollers()[0]}" if request.param == "select" else request.param
    )
    yield driver
    driver.close()


_OWN_NODE: list[RabbitMQNode] = []


def _controllable(rabbitmq: RabbitMQNode | None) -> RabbitMQNode:
    """The session node; with an external AMQP_URL, a node of our own (rabbitmqctl needs one)."""
    if rabbitmq is not None:
        return rabbitmq
    if not _OWN_NODE:  # pragma: no cover - only with an external AMQP_URL
        _OWN_NODE.append(RabbitMQNode().start())
    return _OWN_NODE[0]


@contextlib.contextmanager
def memory_alarm(node: RabbitMQNode) -> Iterator[None]:
    node.rabbitmqctl("set_vm_memory_high_watermark", "0.0000001")
    try:
        yield
    finally:
        # Whatever happened, or the broker stays blocked for every later test.
        node.rabbitmqctl("set_vm_memory_high_watermark", "0.4")


def message_count(driver: LoopDriver, channel: Channel, queue: str) -> int:
    (frame,) = wait(driver, lambda done: channel.queue_declare(queue, passive=True, callback=done))
    count = frame.method.message_count
    assert isinstance(count, int)
    return count


def test_publishes_are_refused_at_the_limit_and_resume_after_the_drain(
    adapter: LoopDriver, amqp_url: str, rabbitmq: RabbitMQNode | None
) -> None:
    node = _controllable(rabbitmq)
    conn = open_connection(adapter, URLParameters(f"{node.url}?max_unsent_bytes={LIMIT}"))
    try:
        (channel,) = wait(adapter, lambda done: conn.channel(on_open_callback=done))
        assert isinstance(channel, Channel)
        queue = f"bounded-{uuid.uuid4().hex}"
        wait(adapter, lambda done: channel.queue_declare(queue, auto_delete=True, callback=done))
        events: list[str] = []

        def on_blocked(_connection: Connection, _frame: object) -> None:
            events.append("blocked")
            adapter.stop()

        conn.add_on_connection_blocked_callback(on_blocked)
        conn.add_on_connection_unblocked_callback(lambda _c, _f: events.append("unblocked"))

        def on_drained(connection: Connection) -> None:
            events.append("drained")
            adapter.stop()

        conn.add_on_output_drained_callback(on_drained)
        published = 0
        refusal: list[exceptions.OutputBufferFullError] = []

        def publish_some() -> None:
            # The documented pattern: publish from the loop until the connection refuses.
            nonlocal published
            try:
                for _ in range(200):
                    channel.basic_publish("", queue, BODY)
                    published += 1
            except exceptions.OutputBufferFullError as error:
                refusal.append(error)
                adapter.stop()
                return
            adapter.call_soon(publish_some)

        with memory_alarm(node):
            started = time.monotonic()
            # The alarm reaches the connection asynchronously, and RabbitMQ blocks (and says
            # so) only a connection that publishes while it is on: publish until then.
            while not events:
                assert time.monotonic() - started < TIMEOUT
                channel.basic_publish("", queue, BODY)
                published += 1
                with contextlib.suppress(TimeoutError):
                    adapter.run(0.2)
            # Publish until refused, and again after each drain, until the output stays full:
            # the OS's socket buffers may still take what a refusal left (gevent's writer
            # greenlet, say, lags behind the publisher), but not forever.
            while True:
                assert time.monotonic() - started < TIMEOUT
                refusal.clear()
                adapter.call_soon(publish_some)
                adapter.run(TIMEOUT)
                (error,) = refusal
                assert error.limit == LIMIT
                assert LIMIT - 2 * len(BODY) < error.unsent <= LIMIT
                assert conn.outbound_buffer_size <= LIMIT
                try:
                    adapter.run(1.0)
                except TimeoutError:
                    break  # no drain: the broker holds everything back
                assert events[-1] == "drained"
            drains = events.count("drained")
            with pytest.raises(exceptions.OutputBufferFullError):
                channel.basic_publish("", queue, b"refused while full")
            assert "unblocked" not in events
        # The alarm is off: the broker reads again, and the publisher may go on.
        adapter.run(TIMEOUT)
        assert events[-1] == "drained"
        assert events.count("drained") == drains + 1
        channel.basic_publish("", queue, b"after the drain")
        published += 1
        deadline = time.monotonic() + TIMEOUT
        while (count := message_count(adapter, channel, queue)) < published:
            assert time.monotonic() < deadline, (count, published)
            time.sleep(0.05)
        assert count == published, "a refused message was sent"
        assert time.monotonic() - started < 2 * TIMEOUT
    finally:
        close_connection(adapter, conn)


def test_the_default_limit_lets_a_normal_burst_through(adapter: LoopDriver, amqp_url: str) -> None:
    # 8 MiB in one callback: far below the default 64 MiB, and no error, as in pika.
    conn = open_connection(adapter, URLParameters(amqp_url))
    try:
        (channel,) = wait(adapter, lambda done: conn.channel(on_open_callback=done))
        assert isinstance(channel, Channel)
        (frame,) = wait(
            adapter, lambda done: channel.queue_declare("", exclusive=True, callback=done)
        )
        queue = frame.method.queue
        for _ in range(2048):
            channel.basic_publish("", queue, b"c" * 4096)
        deadline = time.monotonic() + TIMEOUT
        while message_count(adapter, channel, queue) < 2048:
            assert time.monotonic() < deadline
    finally:
        close_connection(adapter, conn)
