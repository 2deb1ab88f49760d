"""asyncio and trio (anyio) RabbitMQ client on amqp-core.

Today it holds :class:`AsyncioConnection`, amqp_core's callback-style connection (pika's API) on
an asyncio event loop, also importable from :mod:`amqp_asyncio.asyncio_connection`, pika's
module path. The native ``async``/``await`` API (asyncio and trio, on anyio) is
:func:`connect` and :mod:`amqp_asyncio.native`.

Every name is imported on first use (PEP 562): a program that only uses the callback
connection does not load anyio, and one that runs the native API on trio does not load asyncio
(about 1.5 MiB of a small program's memory).
"""

from typing import TYPE_CHECKING, Any

from amqp_asyncio._version import __version__

if TYPE_CHECKING:
    from amqp_asyncio.asyncio_connection import AsyncioConnection
    from amqp_asyncio.io_services import AsyncioIOServices
    from amqp_asyncio.native import (
        Consumer,
        Message,
        NativeChannel,
        NativeConnection,
        connect,
    )

#: Each lazily imported name -> the module that defines it.
_LAZY_NAMES = {
    "AsyncioConnection": "amqp_asyncio.asyncio_connection",
    "AsyncioIOServices": "amqp_asyncio.io_services",
    "Consumer": "amqp_asyncio.native",
    "Message": "amqp_asyncio.native",
    "NativeChannel": "amqp_asyncio.native",
    "NativeConnection": "amqp_asyncio.native",
    "connect": "amqp_asyncio.native",
}

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
    module_name = _LAZY_NAMES.get(name)
    if module_name is not None:
        import importlib

        value = getattr(importlib.import_module(module_name), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES))
