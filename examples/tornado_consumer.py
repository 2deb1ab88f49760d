"""TornadoConnection on a Tornado IOLoop: declare, publish with confirms, consume with acks.

Continuation-passing style, as in pika: each step starts the next from its callback. The
IOLoop is stopped once the connection has closed.

Run it against a broker with ``AMQP_URL=amqp://... python -m examples.tornado_consumer``.
"""

from __future__ import annotations

import os
from typing import Any

from tornado.ioloop import IOLoop

from amqp_core.channel import Channel
from amqp_core.connection import Connection
from amqp_core.parameters import URLParameters
from amqp_tornado import TornadoConnection


def main(url: str, count: int = 5, ioloop: IOLoop | None = None) -> list[bytes]:
    """Publish ``count`` messages with confirms, consume and ack them; return the bodies."""
    loop = ioloop or IOLoop(make_current=False)
    received: list[bytes] = []
    confirmed: list[int] = []  # the delivery tags of the broker's acks
    errors: list[BaseException] = []

    def on_open(connection: Connection) -> None:
        connection.channel(on_open_callback=on_channel_open)

    def on_open_error(connection: Connection, error: BaseException) -> None:
        errors.append(error)
        loop.stop()

    def on_closed(connection: Connection, reason: BaseException) -> None:
        print(f"connection closed: {reason!r}")
        loop.stop()

    def on_channel_open(channel: Channel) -> None:
        def on_declared(frame: Any) -> None:
            queue: str = frame.method.queue
            channel.confirm_delivery(
                lambda frame: on_confirm(channel, queue, frame),
                callback=lambda _frame: publish(channel, queue),
            )

        channel.queue_declare("", exclusive=True, callback=on_declared)

    def publish(channel: Channel, queue: str) -> None:
        for number in range(count):
            channel.basic_publish("", queue, f"message {number}".encode())

    def on_confirm(channel: Channel, queue: str, frame: Any) -> None:
        # One ack may confirm several messages (``multiple``): its tag is the highest.
        confirmed.append(frame.method.delivery_tag)
        if confirmed[-1] == count:
            print(f"all {count} confirmed")
            channel.basic_consume(queue, on_message)

    def on_message(channel: Channel, method: Any, properties: Any, body: bytes) -> None:
        print(f"received {body!r}")
        received.append(body)
        channel.basic_ack(method.delivery_tag)
        if len(received) == count:
            channel.connection.close()

    TornadoConnection(
        URLParameters(url),
        on_open_callback=on_open,
        on_open_error_callback=on_open_error,
        on_close_callback=on_closed,
        custom_ioloop=loop,
    )
    loop.start()
    if ioloop is None:
        loop.close(all_fds=True)
    if errors:
        raise errors[0]
    return received


if __name__ == "__main__":
    main(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
