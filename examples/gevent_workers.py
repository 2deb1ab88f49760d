"""GeventConnection with greenlets: one publishes with confirms while another consumes.

Callbacks run in greenlets, never in the hub, so they may hand work to other greenlets through
gevent's queues. The program does not monkey-patch anything.

Run it against a broker with ``AMQP_URL=amqp://... python -m examples.gevent_workers``.
"""

from __future__ import annotations

import os
from typing import Any

import gevent
import gevent.event
import gevent.queue

from amqp_core.channel import Channel
from amqp_core.connection import Connection
from amqp_core.parameters import URLParameters
from amqp_gevent import GeventConnection


def main(url: str, count: int = 5, timeout: float = 30.0) -> list[bytes]:
    """Publish ``count`` messages from one greenlet, consume them in another; return bodies."""
    ready: gevent.event.AsyncResult[Any] = gevent.event.AsyncResult()
    closed = gevent.event.Event()
    deliveries: gevent.queue.Queue[bytes] = gevent.queue.Queue()

    def on_open(connection: Connection) -> None:
        connection.channel(on_open_callback=on_channel_open)

    def on_channel_open(channel: Channel) -> None:
        def on_declared(frame: Any) -> None:
            ready.set((channel, frame.method.queue))

        channel.queue_declare("", exclusive=True, callback=on_declared)

    def on_message(channel: Channel, method: Any, properties: Any, body: bytes) -> None:
        channel.basic_ack(method.delivery_tag)
        deliveries.put(body)

    connection = GeventConnection(
        URLParameters(url),
        on_open_callback=on_open,
        on_open_error_callback=lambda conn, error: ready.set_exception(error),
        on_close_callback=lambda conn, reason: closed.set(),
    )
    channel, queue = ready.get(timeout=timeout)
    confirms = gevent.queue.Queue()
    channel.confirm_delivery(lambda frame: confirms.put(frame.method))
    channel.basic_consume(queue, on_message)

    def publisher() -> None:
        for number in range(count):
            channel.basic_publish("", queue, f"message {number}".encode())
            gevent.sleep(0)

    def consumer() -> list[bytes]:
        bodies = []
        for _ in range(count):
            body = deliveries.get(timeout=timeout)
            print(f"received {body!r}")
            bodies.append(body)
        return bodies

    workers = [gevent.spawn(publisher), gevent.spawn(consumer)]
    gevent.joinall(workers, timeout=timeout, raise_error=True)
    connection.close()
    closed.wait(timeout)
    print(f"connection closed: {connection.is_closed}")
    result: list[bytes] = workers[1].get()
    return result


if __name__ == "__main__":
    main(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
