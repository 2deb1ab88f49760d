"""``TornadoConnection``: amqp_core's callback-style connection on a Tornado IOLoop.

The module path mirrors pika's ``pika.adapters.tornado_connection``. The connection itself is
amqp_core's; this module only hands it the IOLoop's services (:mod:`amqp_tornado.io_services`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tornado.ioloop import IOLoop

from amqp_core.connection import Connection, OnError, OnOpen
from amqp_core.parameters import Parameters
from amqp_tornado.io_services import TornadoIOServices

__all__ = ("TornadoConnection",)


class TornadoConnection(Connection):
    """An AMQP connection on a Tornado IOLoop, driven by callbacks (pika's API).

    Everything but the loop is amqp_core's :class:`~amqp_core.connection.Connection`; see its
    documentation for the callbacks, channels and closing.

    Args:
        parameters: A :class:`~amqp_core.parameters.ConnectionParameters` or
            :class:`~amqp_core.parameters.URLParameters`, a sequence of them (tried in order),
            or None for the defaults (``localhost:5672``, guest).
        on_open_callback: ``cb(connection)`` once the connection is open.
        on_open_error_callback: ``cb(connection, error)`` if it cannot be opened.
        on_close_callback: ``cb(connection, reason)`` once an open connection has closed.
        custom_ioloop: The Tornado IOLoop to run on (or amqp_core I/O services); by default
            ``IOLoop.current()``.
        internal_connection_workflow: Must be True: the connection always runs amqp_core's
            connection workflow (hosts, attempts, retry delay, timeouts) itself.

    Raises:
        NotImplementedError: If ``internal_connection_workflow`` is False.
        TypeError: If ``custom_ioloop`` is neither an IOLoop nor I/O services.
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
        if custom_ioloop is None:
            custom_ioloop = IOLoop.current()
        if isinstance(custom_ioloop, IOLoop):
            services = TornadoIOServices(custom_ioloop)
            loop: Any = custom_ioloop
        elif hasattr(custom_ioloop, "connect_stream"):
            services = custom_ioloop
            loop = getattr(custom_ioloop, "ioloop", custom_ioloop)
        else:
            raise TypeError(
                f"custom_ioloop must be a Tornado IOLoop or I/O services, not {custom_ioloop!r}"
            )
        self._native_loop: IOLoop = loop
        super().__init__(
            parameters,
            on_open_callback,
            on_open_error_callback,
            on_close_callback,
            io_services=services,
        )

    @property
    def ioloop(self) -> IOLoop:
        """The Tornado IOLoop this connection runs on."""
        return self._native_loop
