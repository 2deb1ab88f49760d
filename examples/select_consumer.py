"""A consumer in continuation-passing style on SelectConnection.

Each step starts the next from its callback: connect -> open a channel -> declare the queue ->
start consuming -> handle each delivery. This one also publishes a few messages to itself once
the queue exists, acknowledges each delivery, and closes after the last.

Run it against a broker with ``AMQP_URL=amqp://... python -m examples.select_consumer``.
"""

from __future__ import annotations

import os
import sys

from amqp_core import spec
from amqp_core.channel import Channel
from amqp_core.connection import Connection
from amqp_core.parameters import URLParameters
from amqp_select import SelectConnection


def main(url: str, count: int = 5, queue: str = "example-select") -> list[bytes]:
    """Publish ``count`` messages to ``queue``, consume them back, and return their bodies."""
    received: list[bytes] = []
    channel: Channel | None = None

    def on_connected(connection: Connection) -> None:
        # Step 2: connected; open a channel.
        connection.channel(on_open_callback=on_channel_open)

    def on_channel_open(new_channel: Channel) -> None:
        # Step 3: the channel is ready; declare the queue (gone when we disconnect).
        nonlocal channel
        channel = new_channel
        channel.queue_declare(queue, auto_delete=True, callback=on_queue_declared)

    def on_queue_declared(frame: object) -> None:
        # Step 4: the queue exists; consume from it, then give it something to deliver.
        assert channel is not None
        channel.basic_consume(queue, handle_delivery)
        for number in range(count):
            channel.basic_publish("", queue, f"message {number}".encode())

    def handle_delivery(
        ch: Channel, method: spec.Basic.Deliver, properties: spec.BasicProperties, body: bytes
    ) -> None:
        # Step 5: a message arrived.
        print(f"received {body!r}")
        received.append(body)
        ch.basic_ack(method.delivery_tag)
        if len(received) == count:
            connection.close()

    def on_closed(conn: Connection, reason: BaseException) -> None:
        connection.ioloop.stop()

    def on_open_error(conn: Connection, error: BaseException) -> None:
        connection.ioloop.stop()
        raise error

    # Step 1: connect, then run the loop until on_closed stops it.
    connection = SelectConnection(
        URLParameters(url),
        on_open_callback=on_connected,
        on_open_error_callback=on_open_error,
        on_close_callback=on_closed,
    )
    try:
        connection.ioloop.start()
    except KeyboardInterrupt:
        connection.close()
        connection.ioloop.start()  # runs until on_closed stops it
    finally:
        connection.ioloop.close()
    return received


if __name__ == "__main__":
    main(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
    sys.exit(0)
