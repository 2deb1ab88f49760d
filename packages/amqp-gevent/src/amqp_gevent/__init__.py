"""gevent RabbitMQ client on amqp-core, compatible with pika's GeventConnection.

The adapter is not written yet; this package fixes its name, its dependencies and its place
in the monorepo.
"""

from amqp_gevent._version import __version__

__all__ = ("__version__",)
