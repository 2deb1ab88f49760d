"""AsyncioConnection inside a coroutine: connect, declare, publish, read the message back.

The connection is callback-driven (pika's API) but runs on the asyncio loop of ``main``;
the coroutine waits on a future that the callbacks complete.

Run it against a broker with ``AMQP_URL=amqp://... python -m examples.asyncio_publisher``.
"""

from __future__ import annotations

import asyncio
import os

from amqp_asyncio import AsyncioConnection
from amqp_core import spec
from amqp_core.channel import Channel
from amqp_core.connection import Connection
from amqp_core.parameters import URLParameters


async def main(url: str, queue: str = "example-asyncio") -> bytes:
    """Publish one message to ``queue``, get it back, close, and return its body."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    closed: asyncio.Future[None] = loop.create_future()

    def on_connection_open(connection: Connection) -> None:
        print("connection open")
        connection.channel(on_open_callback=on_channel_open)

    def on_connection_open_error(connection: Connection, error: BaseException) -> None:
        done.set_exception(error)

    def on_connection_closed(connection: Connection, reason: BaseException) -> None:
        print(f"connection closed: {reason!r}")
        closed.set_result(None)

    def on_channel_open(channel: Channel) -> None:
        print("channel open")
        channel.queue_declare(
            queue, auto_delete=True, callback=lambda frame: on_queue_declared(channel)
        )

    def on_queue_declared(channel: Channel) -> None:
        print("queue declared")
        channel.basic_publish("", queue, b"Hello from asyncio!")
        channel.basic_get(queue, on_message, auto_ack=True)

    def on_message(
        channel: Channel, method: spec.Basic.GetOk, properties: spec.BasicProperties, body: bytes
    ) -> None:
        print(f"got {body!r}")
        done.set_result(body)

    connection = AsyncioConnection(
        URLParameters(url),
        on_open_callback=on_connection_open,
        on_open_error_callback=on_connection_open_error,
        on_close_callback=on_connection_closed,
    )
    try:
        return await asyncio.wait_for(done, 30)
    finally:
        if connection.is_open:
            connection.close()
            await asyncio.wait_for(closed, 30)


if __name__ == "__main__":
    asyncio.run(main(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")))
