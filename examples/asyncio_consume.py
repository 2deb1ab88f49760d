"""Consume with acknowledgements on AsyncioConnection.

Declare a queue, put ``count`` messages in it, then consume them with a prefetch window,
acknowledging each one after handling it; cancel the consumer and close after the last.

Usage: ``python examples/asyncio_consume.py [AMQP_URL] [COUNT]``
"""

from __future__ import annotations

import asyncio
import sys

from amqp_asyncio import AsyncioConnection
from amqp_core import spec
from amqp_core.channel import Channel
from amqp_core.connection import Connection
from amqp_core.parameters import URLParameters


async def main(url: str, count: int = 5, queue: str = "example-asyncio-consume") -> list[bytes]:
    """Publish ``count`` messages to ``queue``, consume and ack them, return their bodies."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[list[bytes]] = loop.create_future()
    closed: asyncio.Future[BaseException] = loop.create_future()
    received: list[bytes] = []

    def on_open(connection: Connection) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel: Channel) -> None:
        channel.queue_declare(queue, auto_delete=True, callback=lambda _: on_declared(channel))

    def on_declared(channel: Channel) -> None:
        for number in range(count):
            channel.basic_publish("", queue, f"message {number}")
        channel.basic_qos(prefetch_count=2)  # at most two unacknowledged messages at a time
        channel.basic_consume(queue, on_message, consumer_tag="example")

    def on_message(
        channel: Channel, method: spec.Basic.Deliver, properties: spec.BasicProperties, body: bytes
    ) -> None:
        print(f"received {body!r}, acking tag {method.delivery_tag}")
        received.append(body)
        channel.basic_ack(method.delivery_tag)
        if len(received) == count:
            channel.basic_cancel("example", callback=lambda _: done.set_result(received))

    connection = AsyncioConnection(
        URLParameters(url),
        on_open_callback=on_open,
        on_open_error_callback=lambda _, error: done.set_exception(error),
        on_close_callback=lambda _, reason: closed.set_result(reason),
    )
    try:
        bodies = await asyncio.wait_for(done, 30)
    finally:
        if connection.is_open:
            connection.close()
            print(f"closed: {await asyncio.wait_for(closed, 30)!r}")
    return bodies


if __name__ == "__main__":
    asyncio.run(
        main(
            sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@localhost:5672/%2F",
            int(sys.argv[2]) if len(sys.argv) > 2 else 5,
        )
    )
