"""gevent RabbitMQ client on amqp-core, compatible with pika's GeventConnection.

:class:`GeventConnection` is amqp_core's callback-style connection on gevent's hub; the same
name imports from :mod:`amqp_gevent.gevent_connection`, the module path pika uses. The package
moves bytes and keeps time; every AMQP decision is amqp_core's. It does not monkey-patch.
"""

from amqp_gevent._version import __version__
from amqp_gevent.gevent_connection import GeventConnection
from amqp_gevent.io_services import GeventIOServices

__all__ = ("GeventConnection", "GeventIOServices", "__version__")
