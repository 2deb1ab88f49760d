"""TornadoConnection against a real RabbitMQ: the conformance scenarios, plus Tornado's own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tornado.ioloop import IOLoop

from amqp_core.parameters import URLParameters
from amqp_core.transport import Transport
from amqp_tornado import TornadoConnection
from amqp_tornado.tornado_connection import TornadoConnection as ByPikaPath
from examples import tornado_consumer
from tests.adapters.amqp_support import close_connection, open_connection
from tests.adapters.loops import LoopDriver, TornadoDriver
from tests.fresh_interpreter import run_python


@pytest.fixture
def tornado_driver() -> Iterator[LoopDriver]:
    driver = TornadoDriver()
    yield driver
    driver.close()


def test_pika_module_path() -> None:
    assert ByPikaPath is TornadoConnection


def test_open_and_close(tornado_driver: TornadoDriver, amqp_url: str) -> None:
    conn = open_connection(tornado_driver, URLParameters(amqp_url))
    assert isinstance(conn, TornadoConnection)
    assert conn.ioloop is tornado_driver.native_loop
    close_connection(tornado_driver, conn)
    assert conn.is_closed


def test_example_program(amqp_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert tornado_consumer.main(amqp_url, count=6) == [f"message {n}".encode() for n in range(6)]
    out = capsys.readouterr().out
    assert "all 6 confirmed" in out
    assert "ConnectionClosedByClient" in out


def test_constructor_checks_its_loop_argument() -> None:
    with pytest.raises(TypeError):
        TornadoConnection(custom_ioloop=object())
    with pytest.raises(NotImplementedError):
        TornadoConnection(internal_connection_workflow=False)


def test_default_ioloop_inside_a_running_asyncio_loop(amqp_url: str) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[TornadoConnection] = loop.create_future()
        closed: asyncio.Future[BaseException] = loop.create_future()
        conn = TornadoConnection(
            URLParameters(amqp_url),
            on_open_callback=lambda c: opened.set_result(conn),
            on_open_error_callback=lambda c, e: opened.set_exception(e),
            on_close_callback=lambda c, reason: closed.set_result(reason),
        )
        assert conn.ioloop is IOLoop.current()
        await asyncio.wait_for(opened, 20)
        conn.close()
        return type(await asyncio.wait_for(closed, 20)).__name__

    assert asyncio.run(main()) == "ConnectionClosedByClient"


def _echo_connect(driver: TornadoDriver, echo_server: Any, listener: Any) -> Transport:
    from tests.adapters.test_io_services import connect, settings

    transport = connect(driver, settings(echo_server.port), listener)
    assert not isinstance(transport, BaseException)
    return transport


def test_plain_stream_answers_in_the_iteration_that_reads(tornado_driver: TornadoDriver) -> None:
    """A plain TCP read reaches the listener in the loop iteration that found it readable.

    A ping-pong over an echo server then costs one wait of the selector per round trip; an
    IOStream future per read (and per write) would cost a second iteration each time.
    """
    from tests.adapters.test_io_services import EchoServer, Listener

    assert isinstance(tornado_driver, TornadoDriver)
    server = EchoServer()
    rounds = 200
    listener = Listener(tornado_driver)
    try:
        transport = _echo_connect(tornado_driver, server, listener)
        selector: Any = tornado_driver.loop.asyncio_loop._selector  # type: ignore[attr-defined]
        waits = [0]
        select = selector.select

        def counting_select(timeout: float | None = None) -> Any:
            waits[0] += 1
            return select(timeout)

        answered = [0]

        def data_received(data: bytes) -> None:
            listener.data += data
            while len(listener.data) >= 4 * (answered[0] + 1):
                answered[0] += 1
                if answered[0] == rounds:
                    tornado_driver.stop()
                    return
                transport.write(b"ping")

        listener.data_received = data_received  # type: ignore[method-assign]
        selector.select = counting_select
        try:
            tornado_driver.call_soon(lambda: transport.write(b"ping"))
            tornado_driver.run(10.0)
        finally:
            selector.select = select
        assert answered[0] == rounds
        # One wait per round trip, plus a little for the start and the stop.
        assert waits[0] <= rounds * 1.25 + 10, waits[0]
        transport.close()
        tornado_driver.run(10.0)
        assert listener.lost == [None]
    finally:
        server.close()


def test_writes_from_another_thread_keep_their_order(tornado_driver: TornadoDriver) -> None:
    """Writes made outside the loop thread go out in order, and close() sends them first."""
    from tests.adapters.test_io_services import EchoServer, Listener

    server = EchoServer()
    pieces = [f"{n:05d}".encode() for n in range(2000)]
    expected = b"".join(pieces)
    listener = Listener(tornado_driver, stop_after=len(expected))
    try:
        transport = _echo_connect(tornado_driver, server, listener)

        def writer() -> None:
            for piece in pieces:
                transport.write(bytearray(piece))

        thread = threading.Thread(target=writer)
        tornado_driver.call_soon(thread.start)
        tornado_driver.run(10.0)
        thread.join(10.0)
        assert bytes(listener.data) == expected
        assert transport.write_buffer_size() == 0
        transport.close()
        tornado_driver.run(10.0)
        assert listener.lost == [None]
    finally:
        server.close()


def test_a_plain_connection_by_number_loads_no_iostream_or_resolver(amqp_url: str) -> None:
    # tornado.iostream and tornado.netutil weigh about 0.6 MiB: only TLS needs the one and a
    # host name the other.
    program = (
        "import sys\n"
        "from examples import tornado_consumer\n"
        "tornado_consumer.main(sys.argv[1], count=1)\n"
        "print(sorted(m for m in sys.modules if m in ('tornado.iostream', 'tornado.netutil')))\n"
    )
    assert "127.0.0.1" in amqp_url
    assert run_python(program, amqp_url).splitlines()[-1] == "[]"
