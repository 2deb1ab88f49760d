"""Blocking (synchronous) RabbitMQ client on amqp-core, compatible with pika's BlockingConnection.

``BlockingConnection`` keeps its connection alive on a private I/O thread while your code is
busy, may be shared by threads, and publishes with confirms without a round trip per message
(:meth:`BlockingChannel.publish_batch`). See ``docs/adapters/blocking.md``.
"""

from amqp_blocking._version import __version__
from amqp_blocking.blocking_connection import (
    BlockingChannel,
    BlockingConnection,
    PublishOutcome,
    ReturnedMessage,
)

__all__ = (
    "BlockingChannel",
    "BlockingConnection",
    "PublishOutcome",
    "ReturnedMessage",
    "__version__",
)
