"""The adapters against a real RabbitMQ: one scenario set, run on every adapter.

Each scenario runs on SelectConnection (with the platform's best poller), AsyncioConnection,
TornadoConnection and GeventConnection; the first one also runs on every other poller. Every
wait has a deadline.

TwistedProtocolConnection is not among them: its API is Deferreds rather than callbacks, and
Twisted, not amqp_core's workflow, connects the stream (so the multi-host scenarios do not apply
to it). The same scenarios, written for Deferreds, run in tests/twisted/.
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from amqp_core import exceptions, spec
from amqp_core.channel import Channel
from amqp_core.connection import _FEED_SIZE, Connection
from amqp_core.engine import Engine
from amqp_core.parameters import ConnectionParameters, URLParameters
from amqp_core.transport import READ_SIZE
from amqp_select.ioloop import available_pollers
from tests.adapters.amqp_support import (
    TIMEOUT,
    Closes,
    close_connection,
    cuttable_proxy,
    open_connection,
    wait,
)
from tests.adapters.loops import LoopDriver, make_driver
from tests.read_sizes import record_reads
from tools.broker import RabbitMQNode

ADAPTERS = ("select", "asyncio", "tornado", "gevent")


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> Iterator[LoopDriver]:
    driver = make_driver(
        f"select-{available_pollers()[0]}" if request.param == "select" else request.param
    )
    yield driver
    driver.close()


@pytest.fixture
def connection(adapter: LoopDriver, amqp_url: str) -> Iterator[Connection]:
    conn = open_connection(adapter, URLParameters(amqp_url))
    yield conn
    close_connection(adapter, conn)


def open_channel(driver: LoopDriver, connection: Connection) -> Channel:
    (channel,) = wait(driver, lambda done: connection.channel(on_open_callback=done))
    assert isinstance(channel, Channel)
    return channel


def declare_queue(driver: LoopDriver, channel: Channel, name: str = "") -> str:
    (frame,) = wait(driver, lambda done: channel.queue_declare(name, exclusive=True, callback=done))
    queue = frame.method.queue
    assert isinstance(queue, str)
    return queue


def consume(
    driver: LoopDriver, channel: Channel, queue: str, count: int, *, ack: bool = True
) -> list[tuple[Any, Any, bytes]]:
    """Consume ``count`` messages from ``queue``, acking each; return them."""
    got: list[tuple[Any, Any, bytes]] = []

    def on_message(ch: Channel, method: Any, properties: Any, body: bytes) -> None:
        got.append((method, properties, body))
        if ack:
            ch.basic_ack(method.delivery_tag)
        if len(got) == count:
            driver.stop()

    channel.basic_consume(queue, on_message)
    driver.run(TIMEOUT)
    return got


@pytest.mark.parametrize("poller", available_pollers())
def test_open_and_close_on_every_poller(amqp_url: str, poller: str) -> None:
    driver = make_driver(f"select-{poller}")
    try:
        conn = open_connection(driver, URLParameters(amqp_url))
        assert conn.is_open
        assert conn.ioloop is driver.native_loop  # type: ignore[attr-defined]
        close_connection(driver, conn)
        assert conn.is_closed
    finally:
        driver.close()


def test_publish_and_consume_with_acks(adapter: LoopDriver, connection: Connection) -> None:
    channel = open_channel(adapter, connection)
    queue = declare_queue(adapter, channel)
    wait(adapter, lambda done: channel.basic_qos(prefetch_count=10, callback=done))
    for number in range(200):
        channel.basic_publish(
            "", queue, f"message {number}".encode(), spec.BasicProperties(message_id=str(number))
        )
    got = consume(adapter, channel, queue, 200)
    assert [body for _, _, body in got] == [f"message {n}".encode() for n in range(200)]
    assert [props.message_id for _, props, _ in got] == [str(n) for n in range(200)]
    assert [method.delivery_tag for method, _, _ in got] == list(range(1, 201))
    # Everything acked: nothing waits in the queue, nothing is unacknowledged.
    (frame,) = wait(adapter, lambda done: channel.queue_declare(queue, passive=True, callback=done))
    assert frame.method.message_count == 0


def test_confirms_with_multiple(adapter: LoopDriver, connection: Connection) -> None:
    channel = open_channel(adapter, connection)
    queue = declare_queue(adapter, channel)
    confirmed: set[int] = set()
    frames: list[Any] = []
    burst = 3000
    expected = 0

    def on_confirm(frame: Any) -> None:
        method = frame.method
        assert isinstance(method, spec.Basic.Ack)
        frames.append(method)
        tag = method.delivery_tag
        if method.multiple:
            confirmed.update(range(1, tag + 1))
        else:
            confirmed.add(tag)
        if len(confirmed) == expected:
            adapter.stop()

    wait(adapter, lambda done: channel.confirm_delivery(on_confirm, callback=done))
    # The broker confirms a burst in batches (acks with multiple=True) when it is busy, but
    # whether one burst is enough depends on its timing: publish bursts until it has done so.
    for _ in range(10):
        expected += burst
        for number in range(burst):
            channel.basic_publish("", queue, b"x" * (number % 100))
        adapter.run(TIMEOUT)
        assert confirmed == set(range(1, expected + 1))
        if any(method.multiple for method in frames):
            break
    assert any(method.multiple for method in frames)
    assert len(frames) < expected


def test_mandatory_publish_to_nowhere_is_returned(
    adapter: LoopDriver, connection: Connection
) -> None:
    channel = open_channel(adapter, connection)

    def start(done: Callable[..., None]) -> None:
        channel.add_on_return_callback(done)
        channel.basic_publish("", f"nowhere-{uuid.uuid4().hex}", b"lost", mandatory=True)

    ch, method, _properties, body = wait(adapter, start)
    assert ch is channel
    assert isinstance(method, spec.Basic.Return)
    assert method.reply_code == 312
    assert method.reply_text == "NO_ROUTE"
    assert body == b"lost"


def test_consumer_cancelled_by_broker(adapter: LoopDriver, connection: Connection) -> None:
    channel = open_channel(adapter, connection)
    queue = declare_queue(adapter, channel)
    (ok,) = wait(adapter, lambda done: channel.basic_consume(queue, lambda *a: None, callback=done))
    tag = ok.method.consumer_tag
    assert channel.consumer_tags == [tag]
    other = open_channel(adapter, connection)

    def start(done: Callable[..., None]) -> None:
        channel.add_on_cancel_callback(done)
        other.queue_delete(queue)

    (cancel,) = wait(adapter, start)
    assert isinstance(cancel.method, spec.Basic.Cancel)
    assert cancel.method.consumer_tag == tag
    assert channel.is_open
    assert channel.consumer_tags == []


def test_channel_error_then_a_new_channel(adapter: LoopDriver, connection: Connection) -> None:
    channel = open_channel(adapter, connection)
    missing = f"missing-{uuid.uuid4().hex}"

    def start(done: Callable[..., None]) -> None:
        channel.add_on_close_callback(done)
        channel.queue_declare(missing, passive=True)

    ch, reason = wait(adapter, start)
    assert ch is channel
    assert isinstance(reason, exceptions.ChannelClosedByBroker)
    assert reason.reply_code == 404
    assert missing in reason.reply_text
    assert channel.is_closed
    assert connection.is_open
    fresh = open_channel(adapter, connection)
    queue = declare_queue(adapter, fresh)
    fresh.basic_publish("", queue, b"after the error")
    assert [body for _, _, body in consume(adapter, fresh, queue, 1)] == [b"after the error"]


def test_ten_mebibyte_message(
    adapter: LoopDriver, connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = open_channel(adapter, connection)
    queue = declare_queue(adapter, channel)
    body = bytes(range(256)) * (10 * 4096)  # 10 MiB, about 80 body frames at 128 KiB
    channel.basic_publish("", queue, body)
    reads = record_reads(monkeypatch)
    ((_, _, received),) = consume(adapter, channel, queue, 1)
    assert len(received) == len(body)
    assert received == body
    # Read in many pieces, none larger than an adapter should ask for.
    assert sum(reads) > len(body)
    assert max(reads) <= READ_SIZE


def test_a_big_read_reaches_the_engine_in_slices(
    adapter: LoopDriver, connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine decodes every message it is handed before the first is dispatched, so the
    # connection hands it a read in slices: a few dozen small deliveries alive at once, not the
    # hundreds of a 64 KiB read. Nothing is lost or reordered at the seams.
    channel = open_channel(adapter, connection)
    queue = declare_queue(adapter, channel)
    bodies = [b"big " * 100_000] + [f"small {number}".encode() for number in range(1000)]
    for body in bodies:
        channel.basic_publish("", queue, body)
    reads = record_reads(monkeypatch)
    feeds: list[int] = []
    receive_data = Engine.receive_data

    def recording(engine: Engine, data: bytes, now: float) -> None:
        feeds.append(len(data))
        receive_data(engine, data, now)

    monkeypatch.setattr(Engine, "receive_data", recording)
    got = consume(adapter, channel, queue, len(bodies))
    assert [body for _, _, body in got] == bodies
    assert max(reads) > _FEED_SIZE  # reads the connection had to slice
    assert max(feeds) <= _FEED_SIZE
    assert sum(feeds) == sum(reads)


def test_broker_forced_close(
    adapter: LoopDriver, amqp_url: str, rabbitmq: RabbitMQNode | None
) -> None:
    node = _controllable(rabbitmq)
    closes = Closes(adapter)
    conn = open_connection(adapter, URLParameters(node.url), on_close=closes)
    try:
        node.rabbitmqctl("close_all_connections", "test says goodbye")
        adapter.run(TIMEOUT)
    finally:
        close_connection(adapter, conn)
    (reason,) = closes.reasons
    assert isinstance(reason, exceptions.ConnectionClosedByBroker)
    assert reason.reply_code == 320
    assert "test says goodbye" in reason.reply_text
    assert conn.is_closed


def test_tcp_drop_is_a_lost_stream(adapter: LoopDriver, amqp_url: str) -> None:
    params = URLParameters(amqp_url)
    with cuttable_proxy((params.host, params.port)) as proxy:
        params.port = proxy.port
        closes = Closes(adapter)
        conn = open_connection(adapter, params, on_close=closes)
        open_channel(adapter, conn)
        proxy.cut()
        adapter.run(TIMEOUT)
    (reason,) = closes.reasons
    assert isinstance(reason, exceptions.StreamLostError)
    assert conn.is_closed


def test_first_host_unreachable_second_used(adapter: LoopDriver, amqp_url: str) -> None:
    good = URLParameters(amqp_url)
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        dead_port = placeholder.getsockname()[1]
    dead = ConnectionParameters(host="127.0.0.1", port=dead_port, credentials=good.credentials)
    conn = open_connection(adapter, [dead, good])
    try:
        assert conn.is_open
        assert conn.params.port == good.port
        channel = open_channel(adapter, conn)
        assert channel.is_open
    finally:
        close_connection(adapter, conn)


def test_unreachable_only_host_reports_tcp_phase(adapter: LoopDriver) -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        dead_port = placeholder.getsockname()[1]
    with pytest.raises(exceptions.AMQPConnectionError) as caught:
        open_connection(adapter, ConnectionParameters(host="127.0.0.1", port=dead_port))
    message = str(caught.value)
    assert f"127.0.0.1:{dead_port}" in message
    assert "TCP" in message


def test_blocked_and_unblocked(
    adapter: LoopDriver, amqp_url: str, rabbitmq: RabbitMQNode | None
) -> None:
    node = _controllable(rabbitmq)
    conn = open_connection(adapter, URLParameters(node.url))
    events: list[str] = []
    try:
        channel = open_channel(adapter, conn)

        def record(connection: Connection, frame: Any) -> None:
            events.append(type(frame.method).__name__)
            adapter.stop()

        conn.add_on_connection_blocked_callback(record)
        conn.add_on_connection_unblocked_callback(record)
        try:
            node.rabbitmqctl("set_vm_memory_high_watermark", "0.0000001")
            # The alarm reaches the connection asynchronously, and RabbitMQ blocks (and says
            # so) only a connection that publishes while the alarm is on: publish until then.
            deadline = time.monotonic() + TIMEOUT
            while not events and time.monotonic() < deadline:
                channel.basic_publish("", "amq.nothing-here", b"trigger the block")
                with contextlib.suppress(TimeoutError):
                    adapter.run(0.5)
            assert events == ["Blocked"]
        finally:
            node.rabbitmqctl("set_vm_memory_high_watermark", "0.4")
        adapter.run(TIMEOUT)
        assert events == ["Blocked", "Unblocked"]
    finally:
        with contextlib.suppress(Exception):
            node.rabbitmqctl("set_vm_memory_high_watermark", "0.4")
        close_connection(adapter, conn)


_OWN_NODE: list[RabbitMQNode] = []


def _controllable(rabbitmq: RabbitMQNode | None) -> RabbitMQNode:
    """The session node; with an external AMQP_URL, a node of our own (rabbitmqctl needs one)."""
    if rabbitmq is not None:
        return rabbitmq
    if not _OWN_NODE:
        _OWN_NODE.append(RabbitMQNode().start())
    return _OWN_NODE[0]
