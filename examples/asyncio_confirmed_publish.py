"""Publish with publisher confirms on AsyncioConnection, awaiting the confirms in a coroutine.

The connection is callback-driven (pika's API) on the running asyncio loop; each published
message gets a future that the ack/nack callback completes, so the coroutine can
``await asyncio.gather(...)`` them.

Usage: ``python examples/asyncio_confirmed_publish.py [AMQP_URL] [COUNT]``
"""

from __future__ import annotations

import asyncio
import sys

from amqp_asyncio import AsyncioConnection
from amqp_core import frame, spec
from amqp_core.channel import Channel
from amqp_core.connection import Connection
from amqp_core.parameters import URLParameters


async def main(url: str, count: int = 5, queue: str = "example-asyncio-confirms") -> int:
    """Publish ``count`` messages, wait until the broker confirmed each, return the ack count."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[Channel] = loop.create_future()
    closed: asyncio.Future[BaseException] = loop.create_future()
    pending: dict[int, asyncio.Future[bool]] = {}  # delivery tag -> acked?

    def on_open(connection: Connection) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel: Channel) -> None:
        channel.confirm_delivery(
            on_confirm,
            callback=lambda _: channel.queue_declare(
                queue, auto_delete=True, callback=lambda _: ready.set_result(channel)
            ),
        )

    def on_confirm(confirm: frame.Method) -> None:
        method = confirm.method
        assert isinstance(method, (spec.Basic.Ack, spec.Basic.Nack))
        acked = isinstance(method, spec.Basic.Ack)
        tags = [tag for tag in pending if tag <= method.delivery_tag] if method.multiple else []
        for tag in tags or [method.delivery_tag]:
            pending.pop(tag).set_result(acked)

    connection = AsyncioConnection(
        URLParameters(url),
        on_open_callback=on_open,
        on_open_error_callback=lambda _, error: ready.set_exception(error),
        on_close_callback=lambda _, reason: closed.set_result(reason),
    )
    channel = await asyncio.wait_for(ready, 30)
    confirms = []
    for number in range(count):
        # In confirm mode the broker numbers the messages 1, 2, 3 ... on this channel.
        confirms.append(pending.setdefault(number + 1, loop.create_future()))
        channel.basic_publish("", queue, f"message {number}")
    results = await asyncio.wait_for(asyncio.gather(*confirms), 30)
    acked = sum(results)
    print(f"published {count}, broker acked {acked}, nacked {count - acked}")
    connection.close()
    print(f"closed: {await asyncio.wait_for(closed, 30)!r}")
    return acked


if __name__ == "__main__":
    asyncio.run(
        main(
            sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@localhost:5672/%2F",
            int(sys.argv[2]) if len(sys.argv) > 2 else 5,
        )
    )
