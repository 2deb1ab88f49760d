"""Twisted RabbitMQ client on amqp-core, compatible with pika's TwistedProtocolConnection.

The adapter is not written yet; this package fixes its name, its dependencies and its place
in the monorepo.
"""

from amqp_twisted._version import __version__

__all__ = ("__version__",)
