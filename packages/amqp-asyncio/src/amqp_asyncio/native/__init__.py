"""The native ``async``/``await`` API, on anyio: the same code runs on asyncio and on trio.

``async with connect(url) as connection``, ``await connection.channel()``, awaitable
declarations that return the broker's typed replies, ``await channel.basic_publish(...)`` that
waits for the publisher confirm, and ``async for message in channel.consume(queue)``. See
``docs/adapters/native-async.md``.
"""

from amqp_asyncio.native._channel import Consumer, Message, NativeChannel
from amqp_asyncio.native._connection import ConnectionContext, NativeConnection, connect

__all__ = (
    "ConnectionContext",
    "Consumer",
    "Message",
    "NativeChannel",
    "NativeConnection",
    "connect",
)
