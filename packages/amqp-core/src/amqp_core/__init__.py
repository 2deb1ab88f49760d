"""amqp_core: a sans-I/O AMQP 0-9-1 protocol core for RabbitMQ clients.

The generated spec (:mod:`amqp_core.spec`), the field-table codec (:mod:`amqp_core.data`), the
frame codec (:mod:`amqp_core.frame`) and the exceptions (:mod:`amqp_core.exceptions`) live here;
adapters that move the bytes are published as separate packages (``amqp-blocking``,
``amqp-select``, ``amqp-asyncio``, ``amqp-tornado``, ``amqp-twisted``, ``amqp-gevent``).
"""

from amqp_core._version import __version__

__all__ = ("__version__",)
