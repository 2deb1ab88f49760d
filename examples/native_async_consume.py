"""A consumer with the native async API: runs on asyncio or trio.

It fills a queue with ``count`` messages, then consumes them with a prefetch window,
acknowledging each after handling it. A real consumer would loop forever; this one stops when
the queue has been quiet for a second, and the ``async with`` blocks cancel the consumer and
close the channel and the connection on the way out.

Usage: ``python examples/native_async_consume.py [AMQP_URL] [asyncio|trio] [COUNT]``
"""

from __future__ import annotations

import sys

import anyio

from amqp_asyncio import connect


async def main(url: str, count: int = 5) -> list[str]:
    """Put ``count`` messages in a queue, consume and ack them, return their bodies."""
    received: list[str] = []
    async with connect(url) as connection, await connection.channel() as channel:
        queue = (await channel.queue_declare("", exclusive=True)).queue
        for number in range(count):
            await channel.basic_publish("", queue, f"message {number}")
        await channel.basic_qos(prefetch_count=2)
        async with channel.consume(queue) as messages:
            while True:
                with anyio.move_on_after(1.0) as idle:
                    message = await messages.__anext__()
                if idle.cancelled_caught:
                    print("queue idle for 1 s: stopping")
                    break
                print(f"received {message.body.decode()}, acking it")
                received.append(message.body.decode())
                await message.ack()
    print(f"consumed {len(received)} messages")
    return received


if __name__ == "__main__":
    anyio.run(
        main,
        sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@localhost:5672/%2F",
        int(sys.argv[3]) if len(sys.argv) > 3 else 5,
        backend=sys.argv[2] if len(sys.argv) > 2 else "asyncio",
    )
