"""``GeventConnection``: amqp_core's callback-style connection on gevent's hub.

The module path mirrors pika's ``pika.adapters.gevent_connection``. The connection itself is
amqp_core's; this module only hands it the hub's services (:mod:`amqp_gevent.io_services`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gevent.hub import Hub

from amqp_core.connection import Connection, OnError, OnOpen
from amqp_core.parameters import Parameters
from amqp_gevent.io_services import GeventIOServices

__all__ = ("GeventConnection",)


class GeventConnection(Connection):
    """An AMQP connection on gevent's hub, driven by callbacks (pika's API).

    Callbacks run in greenlets of the hub's thread, so they may use gevent's cooperative
    blocking calls; other greenlets may publish on its channels at any time. Everything but the
    loop is amqp_core's :class:`~amqp_core.connection.Connection`.

    Args:
        parameters: A :class:`~amqp_core.parameters.ConnectionParameters` or
            :class:`~amqp_core.parameters.URLParameters`, a sequence of them (tried in order),
            or None for the defaults (``localhost:5672``, guest).
        on_open_callback: ``cb(connection)`` once the connection is open.
        on_open_error_callback: ``cb(connection, error)`` if it cannot be opened.
        on_close_callback: ``cb(connection, reason)`` once an open connection has closed.
        custom_ioloop: A gevent ``Hub`` or amqp_core I/O services; by default the current
            thread's hub.
        internal_connection_workflow: Must be True: the connection always runs amqp_core's
            connection workflow (hosts, attempts, retry delay, timeouts) itself.

    Raises:
        NotImplementedError: If ``internal_connection_workflow`` is False.
        TypeError: If ``custom_ioloop`` is neither a hub nor I/O services.
    """

    def __init__(
        self,
        parameters: Parameters | Sequence[Parameters] | None = None,
        on_open_callback: OnOpen | None = None,
        on_open_error_callback: OnError | None = None,
        on_close_callback: OnError | None = None,
        custom_ioloop: Any = None,
        internal_connection_workflow: bool = True,
    ) -> None:
        self.check_workflow_option(internal_connection_workflow)
        services: Any
        if custom_ioloop is None or isinstance(custom_ioloop, Hub):
            services = GeventIOServices(custom_ioloop)
        elif hasattr(custom_ioloop, "connect_stream"):
            services = custom_ioloop
        else:
            raise TypeError(
                f"custom_ioloop must be a gevent Hub or I/O services, not {custom_ioloop!r}"
            )
        self._services: Any = services
        super().__init__(
            parameters,
            on_open_callback,
            on_open_error_callback,
            on_close_callback,
            io_services=services,
        )

    @property
    def ioloop(self) -> Any:
        """The connection's loop services: ``ioloop.start()`` waits until ``ioloop.stop()``."""
        return self._services
