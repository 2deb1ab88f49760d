"""asyncio and trio (anyio) RabbitMQ client on amqp-core.

Today it holds :class:`AsyncioConnection`, amqp_core's callback-style connection (pika's API) on
an asyncio event loop, also importable from :mod:`amqp_asyncio.asyncio_connection`, pika's
module path. The native ``async``/``await`` API (asyncio and trio, on anyio) is
:func:`connect` and :mod:`amqp_asyncio.native`.
"""

from amqp_asyncio._version import __version__
from amqp_asyncio.asyncio_connection import AsyncioConnection
from amqp_asyncio.io_services import AsyncioIOServices
from amqp_asyncio.native import Consumer, Message, NativeChannel, NativeConnection, connect

__all__ = (
    "AsyncioConnection",
    "AsyncioIOServices",
    "Consumer",
    "Message",
    "NativeChannel",
    "NativeConnection",
    "__version__",
    "connect",
)
