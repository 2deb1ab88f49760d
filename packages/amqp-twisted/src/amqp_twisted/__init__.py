"""Twisted RabbitMQ client on amqp-core, compatible with pika's TwistedProtocolConnection.

:class:`TwistedProtocolConnection` is a Twisted protocol whose ``ready`` Deferred fires once
the AMQP connection is open; its channels' methods return Deferreds. The same names import from
:mod:`amqp_twisted.twisted_connection`, the module path pika uses. Twisted moves the bytes;
every AMQP decision is amqp_core's.
"""

from amqp_twisted._version import __version__
from amqp_twisted.twisted_connection import (
    ClosableDeferredQueue,
    ReceivedMessage,
    TwistedChannel,
    TwistedConnection,
    TwistedProtocolConnection,
)

__all__ = (
    "ClosableDeferredQueue",
    "ReceivedMessage",
    "TwistedChannel",
    "TwistedConnection",
    "TwistedProtocolConnection",
    "__version__",
)
