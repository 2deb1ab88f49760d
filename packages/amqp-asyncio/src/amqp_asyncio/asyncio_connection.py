"""``AsyncioConnection``: amqp_core's callback-style connection on an asyncio event loop.

The module path mirrors pika's ``pika.adapters.asyncio_connection``. The connection itself is
amqp_core's; this module only hands it the loop's I/O services (:mod:`amqp_asyncio.io_services`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from amqp_asyncio.io_services import AsyncioIOServices
from amqp_core.connection import Connection, OnError, OnOpen
from amqp_core.parameters import Parameters

__all__ = ("AsyncioConnection",)


class AsyncioConnection(Connection):
    """An AMQP connection on an asyncio event loop, driven by callbacks (pika's API).

    Everything but the loop is amqp_core's :class:`~amqp_core.connection.Connection`; see its
    documentation for the callbacks, channels and closing.

    Args:
        parameters: A :class:`~amqp_core.parameters.ConnectionParameters` or
            :class:`~amqp_core.parameters.URLParameters`, a sequence of them (tried in order),
            or None for the defaults (``localhost:5672``, guest).
        on_open_callback: ``cb(connection)`` once the connection is open.
        on_open_error_callback: ``cb(connection, error)`` if it cannot be opened.
        on_close_callback: ``cb(connection, reason)`` once an open connection has closed.
        custom_ioloop: The asyncio event loop to run on (or amqp_core I/O services); by
            default the running loop, else a new one (run it with
            ``connection.ioloop.run_forever()``).
        internal_connection_workflow: Must be True: the connection always runs amqp_core's
            connection workflow (hosts, attempts, retry delay, timeouts) itself.

    Raises:
        NotImplementedError: If ``internal_connection_workflow`` is False.
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
        loop: Any
        if custom_ioloop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = asyncio.new_event_loop()
            services = AsyncioIOServices(loop)
        elif isinstance(custom_ioloop, asyncio.AbstractEventLoop):
            loop = custom_ioloop
            services = AsyncioIOServices(loop)
        elif hasattr(custom_ioloop, "connect_stream"):
            services = custom_ioloop
            loop = getattr(custom_ioloop, "loop", custom_ioloop)
        else:
            raise TypeError(
                "custom_ioloop must be an asyncio event loop or I/O services, "
                f"not {custom_ioloop!r}"
            )
        self._native_loop: asyncio.AbstractEventLoop = loop
        super().__init__(
            parameters,
            on_open_callback,
            on_open_error_callback,
            on_close_callback,
            io_services=services,
        )

    @property
    def ioloop(self) -> asyncio.AbstractEventLoop:
        """The asyncio event loop this connection runs on."""
        return self._native_loop
