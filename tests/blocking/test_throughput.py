"""Threads sharing one connection, fast confirms, and backpressure, against a real RabbitMQ."""

from __future__ import annotations

import threading
import time
from typing import cast

import pytest

from amqp_blocking import BlockingConnection, ReturnedMessage
from amqp_core.exceptions import (
    ChannelClosedByBroker,
    ConnectionBlockedTimeout,
    NackError,
    UnroutableError,
)
from amqp_core.parameters import URLParameters
from tools.broker import RabbitMQNode

pytestmark = pytest.mark.timeout(90)


def test_eight_threads_share_one_connection(connection: BlockingConnection) -> None:
    setup = connection.channel()
    queue = setup.queue_declare("", exclusive=True).method.queue
    errors: list[BaseException] = []

    def publisher(index: int) -> None:
        try:
            channel = connection.channel()
            for i in range(10_000):
                channel.basic_publish("", queue, f"{index}:{i}".encode())
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=publisher, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    seen: dict[int, int] = {}
    count = 0
    for method, _props, body in setup.consume(queue, auto_ack=True, inactivity_timeout=2):
        if method is None:
            break
        index, number = map(int, body.split(b":"))
        # Each thread's messages arrive whole and in its order.
        assert number == seen.get(index, -1) + 1
        seen[index] = number
        count += 1
        if count == 80_000:
            break
    assert count == 80_000
    assert seen == dict.fromkeys(range(8), 9_999)
    setup.cancel()


def test_two_threads_on_one_channel(connection: BlockingConnection) -> None:
    # Documented as safe: every call is atomic, and requests get their own replies.
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    names: list[str] = []

    def worker(index: int) -> None:
        for i in range(200):
            channel.basic_publish("", queue, b"x")
            if i % 20 == 0:
                declared = channel.queue_declare(f"blocking-shared-{index}", auto_delete=True)
                names.append(declared.method.queue)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(set(names)) == ["blocking-shared-0", "blocking-shared-1"]
    assert len(names) == 20
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        count = channel.queue_declare(queue, passive=True).method.message_count
        if count == 400:
            break
        time.sleep(0.05)
    assert count == 400


def test_confirm_delivery_unroutable_and_nack(connection: BlockingConnection) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    channel.confirm_delivery()  # a second call is logged and ignored, as in pika
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"ok")
    with pytest.raises(UnroutableError) as unroutable:
        channel.basic_publish("", "blocking-nowhere", b"lost", mandatory=True)
    assert cast(ReturnedMessage, unroutable.value.messages[0]).body == b"lost"
    # Not mandatory: silently dropped by the broker, and acked.
    channel.basic_publish("", "blocking-nowhere", b"dropped")
    # A full queue that rejects publishes: the broker nacks.
    full = channel.queue_declare(
        "", exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    ).method.queue
    channel.basic_publish("", full, b"first")
    with pytest.raises(NackError) as nacked:
        channel.basic_publish("", full, b"second")
    assert cast(ReturnedMessage, nacked.value.messages[0]).body == b"second"


def test_publish_batch_reports_per_message(connection: BlockingConnection) -> None:
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    full = channel.queue_declare(
        "", exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    ).method.queue
    outcomes = channel.publish_batch(
        [
            ("", queue, b"a"),
            ("", "blocking-nowhere", b"b"),
            ("", full, b"c"),
            ("", full, b"d"),
            ("", queue, b"e"),
        ],
        mandatory=True,
    )
    assert [o.ok for o in outcomes] == [True, False, True, False, True]
    assert isinstance(outcomes[1].error, UnroutableError)
    assert isinstance(outcomes[3].error, NackError)
    assert outcomes[0].error is None
    # Many messages: one round trip per window, not per message.
    channel.confirm_window = 500
    started = time.monotonic()
    results = channel.publish_batch(("", queue, b"m") for _ in range(20_000))
    elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    assert [r.sequence for r in results[:2]] == [6, 7]
    assert elapsed < 20
    assert channel.queue_declare(queue, passive=True).method.message_count == 20_002
    # publish_async + wait_for_confirms.
    pending = [channel.publish_async("", queue, b"async") for _ in range(10)]
    assert channel.wait_for_confirms(timeout=10)
    assert all(o.settled and o.ok for o in pending)


def test_confirms_fail_when_the_channel_dies(connection: BlockingConnection) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.basic_publish("blocking-no-such-exchange", "x", b"x")
    assert info.value.reply_code == 404


def _set_watermark(rabbitmq: RabbitMQNode | None, value: str) -> None:
    assert rabbitmq is not None, "this test needs the throwaway node (rabbitmqctl)"
    rabbitmq.rabbitmqctl("set_vm_memory_high_watermark", value)


def test_blocked_publish_waits_then_times_out(amqp_url: str, rabbitmq: RabbitMQNode | None) -> None:
    params = URLParameters(amqp_url + "?blocked_connection_timeout=2")
    connection = BlockingConnection(params)
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    blocked: list[object] = []
    unblocked: list[object] = []
    connection.add_on_connection_blocked_callback(lambda conn, frame: blocked.append(conn))
    connection.add_on_connection_unblocked_callback(lambda conn, frame: unblocked.append(conn))
    try:
        _set_watermark(rabbitmq, "0.0000001")
        # The broker blocks the connection once it publishes; publish then waits.
        started = time.monotonic()

        def publish_while_blocked() -> None:
            for _ in range(100):
                channel.basic_publish("", queue, b"x" * 1000)
                connection.process_data_events(0.05)

        with pytest.raises(ConnectionBlockedTimeout):
            publish_while_blocked()
        assert time.monotonic() - started < 10
        assert blocked == [connection]
    finally:
        _set_watermark(rabbitmq, "0.4")
    assert connection.is_closed

    # Without a timeout, publish waits until the broker unblocks.
    connection = BlockingConnection(URLParameters(amqp_url))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    connection.add_on_connection_unblocked_callback(lambda conn, frame: unblocked.append(conn))
    restore = threading.Timer(2.0, _set_watermark, (rabbitmq, "0.4"))
    try:
        _set_watermark(rabbitmq, "0.0000001")
        restore.start()
        started = time.monotonic()
        for _ in range(50):
            channel.basic_publish("", queue, b"y" * 1000)
            time.sleep(0.02)
        waited = time.monotonic() - started
    finally:
        if restore.is_alive():
            restore.join()
        _set_watermark(rabbitmq, "0.4")
    assert waited > 1.0
    connection.process_data_events(0.5)
    assert unblocked == [connection]
    assert channel.queue_declare(queue, passive=True).method.message_count == 50
    connection.close()


def test_publisher_memory_stays_bounded(connection: BlockingConnection) -> None:
    # A slow reader (here: the socket) makes publish wait instead of buffering without end.
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    body = b"z" * 65536
    peak = 0
    for _ in range(400):
        channel.basic_publish("", queue, body)
        peak = max(peak, connection._impl.outbound_buffer_size)
    assert peak < 8 * 1024 * 1024
    channel.queue_purge(queue)
