"""asyncio and trio (anyio) RabbitMQ client on amqp-core.

The adapter is not written yet; this package fixes its name, its dependencies and its place
in the monorepo.
"""

from amqp_asyncio._version import __version__

__all__ = ("__version__",)
