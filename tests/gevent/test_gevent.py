"""GeventConnection's own tests: pika's names, and several greenlets at once on one connection."""

from __future__ import annotations

from typing import Any

import gevent
import gevent.queue
import pytest

from amqp_core.channel import Channel
from amqp_core.parameters import URLParameters
from amqp_gevent import GeventConnection
from amqp_gevent.gevent_connection import GeventConnection as ByPikaPath
from examples import gevent_workers
from tests.adapters.amqp_support import TIMEOUT, close_connection, open_connection, wait
from tests.adapters.loops import GeventDriver


def test_pika_module_path() -> None:
    assert ByPikaPath is GeventConnection


def test_greenlets_publish_and_consume_at_once(amqp_url: str) -> None:
    driver = GeventDriver()
    conn = open_connection(driver, URLParameters(amqp_url))
    assert isinstance(conn, GeventConnection)
    publishers, per_publisher = 4, 250
    try:
        (channel,) = wait(driver, lambda done: conn.channel(on_open_callback=done))
        (ok,) = wait(driver, lambda done: channel.queue_declare("", exclusive=True, callback=done))
        queue = ok.method.queue
        (other,) = wait(driver, lambda done: conn.channel(on_open_callback=done))
        wait(driver, lambda done: other.confirm_delivery(lambda frame: None, callback=done))
        received: gevent.queue.Queue[bytes] = gevent.queue.Queue()

        def on_message(ch: Channel, method: Any, properties: Any, body: bytes) -> None:
            ch.basic_ack(method.delivery_tag)
            received.put(body)

        channel.basic_consume(queue, on_message)

        def publisher(number: int) -> None:
            for index in range(per_publisher):
                other.basic_publish("", queue, f"{number}:{index}".encode())
                if index % 25 == 0:
                    gevent.sleep(0)  # let the other greenlets in between

        def consumer() -> list[bytes]:
            return [received.get(timeout=TIMEOUT) for _ in range(publishers * per_publisher)]

        greenlets = [gevent.spawn(publisher, n) for n in range(publishers)]
        collector = gevent.spawn(consumer)
        gevent.joinall([*greenlets, collector], timeout=TIMEOUT, raise_error=True)
        bodies = collector.get(block=False)
        for number in range(publishers):
            mine = [body for body in bodies if body.startswith(f"{number}:".encode())]
            # Each publisher's messages arrive complete and in its own order.
            assert mine == [f"{number}:{index}".encode() for index in range(per_publisher)]
    finally:
        close_connection(driver, conn)
        driver.close()


def test_ioloop_start_and_stop(amqp_url: str) -> None:
    opened: list[GeventConnection] = []

    def on_open(connection: Any) -> None:
        opened.append(connection)
        connection.ioloop.stop()

    conn = GeventConnection(URLParameters(amqp_url), on_open_callback=on_open)
    with gevent.Timeout(TIMEOUT):
        conn.ioloop.start()
    assert opened == [conn]
    conn.add_on_close_callback(lambda connection, reason: conn.ioloop.stop())
    conn.close()
    with gevent.Timeout(TIMEOUT):
        conn.ioloop.start()
    assert conn.is_closed


def test_example_program(amqp_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert gevent_workers.main(amqp_url, count=6) == [f"message {n}".encode() for n in range(6)]
    assert "connection closed: True" in capsys.readouterr().out


def test_constructor_checks_its_loop_argument() -> None:
    with pytest.raises(TypeError):
        GeventConnection(custom_ioloop=object())
    with pytest.raises(NotImplementedError):
        GeventConnection(internal_connection_workflow=False)


def test_a_raising_callback_does_not_stop_the_connection(
    amqp_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    driver = GeventDriver()
    conn = open_connection(driver, URLParameters(amqp_url))
    try:
        (channel,) = wait(driver, lambda done: conn.channel(on_open_callback=done))

        def broken(frame: Any) -> None:
            raise RuntimeError("a callback failed")

        channel.queue_declare("", exclusive=True, callback=broken)
        # The failure is reported, and the connection keeps working.
        (ok,) = wait(driver, lambda done: channel.queue_declare("", exclusive=True, callback=done))
        assert ok.method.queue
    finally:
        close_connection(driver, conn)
        driver.close()
    assert "a callback failed" in capsys.readouterr().err
