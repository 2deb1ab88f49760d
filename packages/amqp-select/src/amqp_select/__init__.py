"""select/poll/epoll/kqueue RabbitMQ client on amqp-core, compatible with pika's SelectConnection.

:class:`SelectConnection` is amqp_core's callback-style connection running on :class:`IOLoop`,
a small event loop over the standard library's selectors. The same names import from
:mod:`amqp_select.select_connection`, the module path pika uses.
"""

from amqp_select._version import __version__
from amqp_select.ioloop import IOLoop, available_pollers
from amqp_select.select_connection import SelectConnection
from amqp_select.selector_services import SelectorIOServices

__all__ = ("IOLoop", "SelectConnection", "SelectorIOServices", "__version__", "available_pollers")
