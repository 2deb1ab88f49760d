"""Blocking (synchronous) RabbitMQ client on amqp-core, compatible with pika's BlockingConnection.

The adapter is not written yet; this package fixes its name, its dependencies and its place
in the monorepo.
"""

from amqp_blocking._version import __version__

__all__ = ("__version__",)
