"""Helpers that let the broker tests read top to bottom over callback-style connections.

``wait(driver, start)`` runs the loop until the callback given to ``start`` fires and returns
its arguments; every wait has a deadline, so a missing callback fails the test, never hangs it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from amqp_asyncio import AsyncioConnection
from amqp_core.connection import Connection
from amqp_core.parameters import Parameters
from amqp_gevent import GeventConnection
from amqp_select import SelectConnection
from amqp_tornado import TornadoConnection
from tests.adapters.loops import LoopDriver

TIMEOUT = 20.0


def connection_class(driver: LoopDriver) -> Callable[..., Connection]:
    classes: dict[str, Callable[..., Connection]] = {
        "select": SelectConnection,
        "tornado": TornadoConnection,
        "gevent": GeventConnection,
    }
    return classes.get(driver.adapter, AsyncioConnection)


def wait(
    driver: LoopDriver, start: Callable[[Callable[..., None]], object], timeout: float = TIMEOUT
) -> tuple[Any, ...]:
    """Call ``start(callback)`` and run the loop until ``callback`` is called; return its args."""
    results: list[tuple[Any, ...]] = []

    def callback(*args: Any) -> None:
        if not results:
            results.append(args)
            driver.stop()

    start(callback)
    driver.run(timeout)
    return results[0]


class Closes:
    """Records the reasons an open connection's close callback was given."""

    def __init__(self, driver: LoopDriver) -> None:
        self.driver = driver
        self.reasons: list[BaseException] = []

    def __call__(self, connection: Connection, reason: BaseException) -> None:
        self.reasons.append(reason)
        self.driver.stop()


def open_connection(
    driver: LoopDriver,
    parameters: Parameters | list[Parameters],
    on_close: Callable[[Connection, BaseException], None] | None = None,
) -> Connection:
    """Open a connection on the driver's loop, or raise what stopped it."""
    outcome: list[BaseException | None] = []

    def on_open(connection: Connection) -> None:
        outcome.append(None)
        driver.stop()

    def on_open_error(connection: Connection, error: BaseException) -> None:
        outcome.append(error)
        driver.stop()

    connection = connection_class(driver)(
        parameters,
        on_open_callback=on_open,
        on_open_error_callback=on_open_error,
        on_close_callback=on_close,
        custom_ioloop=driver.native_loop,
    )
    driver.run(TIMEOUT)
    if outcome[0] is not None:
        raise outcome[0]
    return connection


def close_connection(driver: LoopDriver, connection: Connection) -> None:
    """Close ``connection`` (if it is still open) and run the loop until it has closed."""
    if connection.is_closed:
        return
    if not connection.is_closing:
        connection.close()
    closed: list[bool] = []

    def on_closed(conn: Connection, reason: BaseException) -> None:
        closed.append(True)
        driver.stop()

    connection.add_on_close_callback(on_closed)
    driver.run(TIMEOUT)
    assert closed


class CuttableProxy:
    """A loopback TCP proxy in front of ``target``, whose connections a test can cut."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self.port: int = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self._target, timeout=5)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._pipe, client, upstream)
            self._spawn(self._pipe, upstream, client)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        """Drop every proxied connection at once, as a network failure would."""
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closing.set()
        self.cut()
        for thread in self._threads:
            thread.join(5)
        with self._lock:
            for sock in self._sockets:
                sock.close()
        self._server.close()


@contextlib.contextmanager
def cuttable_proxy(target: tuple[str, int]) -> Iterator[CuttableProxy]:
    proxy = CuttableProxy(target)
    try:
        yield proxy
    finally:
        proxy.close()
