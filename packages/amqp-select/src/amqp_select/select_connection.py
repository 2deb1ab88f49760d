"""``SelectConnection``: amqp_core's callback-style connection on this package's IOLoop.

The module path mirrors pika's ``pika.adapters.select_connection``: ``SelectConnection``,
``IOLoop``, the poller names, ``READ``/``WRITE``/``ERROR`` and ``SELECT_TYPE`` import from here.
The connection itself is amqp_core's; this module only hands it the loop's I/O services.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from amqp_core.connection import Connection, OnError, OnOpen
from amqp_core.parameters import Parameters
from amqp_core.transport import IOServices
from amqp_select.ioloop import (
    ERROR,
    POLLER_TYPES,
    READ,
    SELECT_TYPE,
    WRITE,
    IOLoop,
    Timeout,
    available_pollers,
)
from amqp_select.selector_services import SelectorIOServices, SelectorLoop

__all__ = (
    "ERROR",
    "POLLER_TYPES",
    "READ",
    "SELECT_TYPE",
    "WRITE",
    "IOLoop",
    "SelectConnection",
    "Timeout",
    "available_pollers",
)


def _services_for(custom_ioloop: Any) -> tuple[IOServices, Any]:
    """Return the I/O services to run on and the native loop behind them."""
    if custom_ioloop is None:
        own_loop = IOLoop()
        return SelectorIOServices(own_loop), own_loop
    if hasattr(custom_ioloop, "connect_stream"):
        # Already I/O services (pika also accepts those as ``custom_ioloop``).
        return custom_ioloop, getattr(custom_ioloop, "loop", custom_ioloop)
    if hasattr(custom_ioloop, "add_handler") and hasattr(custom_ioloop, "call_later"):
        loop: SelectorLoop = custom_ioloop
        return SelectorIOServices(loop), loop
    raise TypeError(
        "custom_ioloop must be an amqp_select.IOLoop (or a loop with the same add_handler/"
        f"call_later interface) or amqp_core I/O services, not {custom_ioloop!r}"
    )


class SelectConnection(Connection):
    """An AMQP connection on an :class:`IOLoop` (select, poll, epoll or kqueue).

    Everything but the loop is amqp_core's :class:`~amqp_core.connection.Connection`; see its
    documentation for the callbacks, channels and closing. Run the loop with
    ``connection.ioloop.start()``.

    Args:
        parameters: A :class:`~amqp_core.parameters.ConnectionParameters` or
            :class:`~amqp_core.parameters.URLParameters`, a sequence of them (tried in order),
            or None for the defaults (``localhost:5672``, guest).
        on_open_callback: ``cb(connection)`` once the connection is open.
        on_open_error_callback: ``cb(connection, error)`` if it cannot be opened.
        on_close_callback: ``cb(connection, reason)`` once an open connection has closed.
        custom_ioloop: The :class:`IOLoop` to run on (or any loop with its
            ``add_handler``/``call_later`` interface, or amqp_core I/O services); by default
            a new :class:`IOLoop`.
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
        services, self._native_loop = _services_for(custom_ioloop)
        super().__init__(
            parameters,
            on_open_callback,
            on_open_error_callback,
            on_close_callback,
            io_services=services,
        )

    @property
    def ioloop(self) -> Any:
        """The loop this connection runs on (an :class:`IOLoop` unless you passed another)."""
        return self._native_loop
