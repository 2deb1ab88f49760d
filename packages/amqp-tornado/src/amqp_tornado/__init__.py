"""Tornado RabbitMQ client on amqp-core, compatible with pika's TornadoConnection.

:class:`TornadoConnection` is amqp_core's callback-style connection running on a Tornado
IOLoop; the same name imports from :mod:`amqp_tornado.tornado_connection`, the module path pika
uses. The package moves bytes and keeps time; every AMQP decision is amqp_core's.
"""

from amqp_tornado._version import __version__
from amqp_tornado.io_services import TornadoIOServices
from amqp_tornado.tornado_connection import TornadoConnection

__all__ = ("TornadoConnection", "TornadoIOServices", "__version__")
