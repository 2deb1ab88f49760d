"""The native async API in one program: runs on asyncio or trio.

Usage: ``python examples/native_async.py [AMQP_URL] [asyncio|trio]``

It declares a queue, publishes ten messages from ten tasks with publisher confirms (each
publish returns once the broker has confirmed it), consumes them with acknowledgements, and
closes everything on the way out of the ``async with`` blocks.
"""

from __future__ import annotations

import sys

import anyio

from amqp_asyncio import NativeChannel, connect
from amqp_core import BasicProperties, DeliveryMode
from amqp_core.exceptions import UnroutableError


async def publish(channel: NativeChannel, queue: str, number: int) -> None:
    """Publish one persistent message and wait for its confirm."""
    properties = BasicProperties(delivery_mode=DeliveryMode.Persistent)
    await channel.basic_publish("", queue, f"message {number}", properties, mandatory=True)


async def main(url: str) -> list[str]:
    """Publish ten messages concurrently, consume them, and return their bodies."""
    received: list[str] = []
    async with (
        connect(url) as connection,
        await connection.channel(publisher_confirms=True) as channel,
    ):
        declared = await channel.queue_declare("", exclusive=True)
        queue = declared.queue
        async with anyio.create_task_group() as tg:
            for number in range(10):
                tg.start_soon(publish, channel, queue, number)
        try:
            await channel.basic_publish("amq.direct", "no-such-key", b"x", mandatory=True)
        except UnroutableError as error:
            print("unroutable, as expected:", error)
        await channel.basic_qos(prefetch_count=5)
        async with channel.consume(queue) as messages:
            async for message in messages:
                received.append(message.body.decode())
                await message.ack()
                if len(received) == 10:
                    break
    return sorted(received)


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@localhost:5672/%2F"
    backend = sys.argv[2] if len(sys.argv) > 2 else "asyncio"
    for body in anyio.run(main, url, backend=backend):
        print(body)
