"""TornadoConnection against a real RabbitMQ: the conformance scenarios, plus Tornado's own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from tornado.ioloop import IOLoop

from amqp_core.parameters import URLParameters
from amqp_tornado import TornadoConnection
from amqp_tornado.tornado_connection import TornadoConnection as ByPikaPath
from examples import tornado_consumer
from tests.adapters.amqp_support import close_connection, open_connection
from tests.adapters.loops import LoopDriver, TornadoDriver


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
