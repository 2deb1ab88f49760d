"""publish_batch in chunks and callbacks dispatched in batches, against a real RabbitMQ."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from amqp_blocking import BlockingChannel, BlockingConnection, _io
from amqp_core import BasicProperties
from amqp_core.exceptions import AMQPHeartbeatTimeout, ChannelClosedByBroker
from amqp_core.parameters import URLParameters
from tests.blocking.conftest import proxied_url
from tests.blocking.proxy import TCPProxy

pytestmark = pytest.mark.timeout(90)


def test_publish_batch_never_exceeds_the_window(channel: BlockingChannel, queue: str) -> None:
    channel.confirm_window = 50
    seen: list[int] = []

    def messages() -> Iterator[tuple[str, str, bytes]]:
        for index in range(3000):
            tracker = channel._tracker
            # Pulled (outside the lock) just before a chunk is published.
            seen.append(tracker.unsettled if tracker is not None else 0)
            yield ("", queue, b"%d" % index)

    outcomes = channel.publish_batch(messages())
    assert len(outcomes) == 3000
    assert all(outcome.ok for outcome in outcomes)
    assert [o.sequence for o in outcomes] == list(range(1, 3001))
    assert max(seen) <= 50
    # The window was really used, not one message at a time.
    assert max(seen) > 0
    assert channel.queue_declare(queue, passive=True).method.message_count == 3000


def test_publish_batch_big_bodies_str_bodies_and_properties(
    connection: BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    big = b"b" * 200_000
    batch: list[tuple[Any, ...]] = [("", queue, big) for _ in range(30)]
    batch.append(("", queue, "text, é", BasicProperties(content_type="text/plain")))
    peak = 0

    def watched() -> Iterator[tuple[Any, ...]]:
        nonlocal peak
        for message in batch:
            peak = max(peak, connection._impl.outbound_buffer_size)
            yield message

    outcomes = channel.publish_batch(watched())
    assert all(outcome.ok for outcome in outcomes)
    # Chunks of big bodies are sent as they go, not buffered whole (6 MB here).
    assert peak < 4 * 1024 * 1024
    for _ in range(30):
        _, _, body = channel.basic_get(queue, auto_ack=True)
        assert body == big
    method, properties, body = channel.basic_get(queue, auto_ack=True)
    assert body == "text, é".encode()
    assert properties.content_type == "text/plain"
    assert method.message_count == 0


def test_a_raising_callback_leaves_the_rest_queued(
    connection: BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    for index in range(6):
        channel.basic_publish("", queue, b"%d" % index)
    channel.queue_declare(queue, passive=True)  # the publishes have arrived
    channel.basic_qos(prefetch_count=10)
    got: list[bytes] = []
    timers: list[str] = []

    def on_message(ch: BlockingChannel, method: Any, _properties: Any, body: bytes) -> None:
        got.append(body)
        ch.basic_ack(method.delivery_tag)
        if body == b"1":
            raise RuntimeError("user code failed")
        if len(got) == 6:
            ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    # Let every delivery arrive first, so that one dispatch takes them all at once.
    while channel.queue_declare(queue, passive=True).method.message_count:
        connection.sleep(0)
    connection.call_later(0, lambda: timers.append("ran"))
    with pytest.raises(RuntimeError, match="user code failed"):
        channel.start_consuming()
    assert got == [b"0", b"1"]
    # The deliveries taken with the failing one are not lost, and come in order.
    channel.start_consuming()
    assert got == [b"%d" % index for index in range(6)]
    assert timers == ["ran"]


def test_publish_async_stays_within_the_window(channel: BlockingChannel, queue: str) -> None:
    channel.confirm_window = 20
    outcomes = []
    most = 0
    for index in range(500):
        outcomes.append(channel.publish_async("", queue, b"%d" % index))
        tracker = channel._tracker
        assert tracker is not None
        most = max(most, tracker.unsettled)
    assert channel.wait_for_confirms(timeout=30)
    assert all(outcome.ok for outcome in outcomes)
    assert 1 < most <= 20


def test_publish_batch_output_leaves_in_few_sends(
    channel: BlockingChannel, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sends = [0]
    send = _io._SocketTransport._send

    def counting(self: _io._SocketTransport) -> None:
        sends[0] += 1
        send(self)

    monkeypatch.setattr(_io._SocketTransport, "_send", counting)
    outcomes = channel.publish_batch([("", queue, b"x" * 64)] * 5000)
    assert all(outcome.ok for outcome in outcomes)
    # About 700 KB: a send per chunk or so, not one per frame the core wrote.
    assert sends[0] < 200, sends[0]


def test_a_channel_closed_during_a_batch_raises_its_reason(channel: BlockingChannel) -> None:
    channel.confirm_window = 100
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.publish_batch([("blocking-no-such-exchange", "", b"x")] * 5000)
    assert info.value.reply_code == 404
    assert channel.is_closed


def test_wait_for_confirms_times_out_then_ends_with_the_connection(
    amqp_url: str, proxy: TCPProxy
) -> None:
    connection = BlockingConnection(URLParameters(proxied_url(amqp_url, proxy, "heartbeat=1")))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    assert channel.publish_batch([("", queue, b"confirms on")])[0].ok
    proxy.freeze()
    outcomes = [channel.publish_async("", queue, b"never confirmed") for _ in range(10)]
    started = time.monotonic()
    assert not channel.wait_for_confirms(timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2
    # The broker goes silent: the heartbeat timeout ends the connection, and the waiter with it.
    assert channel.wait_for_confirms(timeout=20)
    assert time.monotonic() - started < 5
    assert all(isinstance(outcome.error, AMQPHeartbeatTimeout) for outcome in outcomes)
    with pytest.raises(AMQPHeartbeatTimeout):
        channel.publish_async("", queue, b"after")
