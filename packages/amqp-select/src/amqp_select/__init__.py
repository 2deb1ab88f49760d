"""select/poll/epoll RabbitMQ client on amqp-core, compatible with pika's SelectConnection.

The adapter is not written yet; this package fixes its name, its dependencies and its place
in the monorepo.
"""

from amqp_select._version import __version__

__all__ = ("__version__",)
