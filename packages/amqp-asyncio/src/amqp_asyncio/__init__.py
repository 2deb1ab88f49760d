"""asyncio and trio (anyio) RabbitMQ client on amqp-core.

Today it holds :class:`AsyncioConnection`, amqp_core's callback-style connection (pika's API) on
an asyncio event loop, also importable from :mod:`amqp_asyncio.asyncio_connection`, pika's
module path. The native ``async``/``await`` API (asyncio and trio, on anyio) is
:func:`connect` and :mod:`amqp_asyncio.native`.

The native API's names are imported on first use (PEP 562), so that a program that only uses
the callback connection does not load anyio.
"""

from typing import TYPE_CHECKING, Any

from amqp_asyncio._version import __version__
from amqp_asyncio.asyncio_connection import AsyncioConnection
from amqp_asyncio.io_services import AsyncioIOServices

if TYPE_CHECKING:
    from amqp_asyncio.native import (
        Consumer,
        Message,
        NativeChannel,
        NativeConnection,
        connect,
    )

_NATIVE_NAMES = frozenset({"Consumer", "Message", "NativeChannel", "NativeConnection", "connect"})

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


def __getattr__(name: str) -> Any:
    if name in _NATIVE_NAMES:
        from amqp_asyncio import native

        value = getattr(native, name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _NATIVE_NAMES)
