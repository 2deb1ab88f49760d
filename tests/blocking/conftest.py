"""Fixtures for the BlockingConnection tests against a real RabbitMQ."""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator

import pytest

from amqp_blocking import BlockingChannel, BlockingConnection, _io
from amqp_core.parameters import URLParameters
from tests.blocking.proxy import TCPProxy


@pytest.fixture
def params(amqp_url: str) -> URLParameters:
    """Connection parameters of the test broker."""
    return URLParameters(amqp_url)


@pytest.fixture
def connection(params: URLParameters) -> Iterator[BlockingConnection]:
    """An open connection, closed after the test."""
    conn = BlockingConnection(params)
    yield conn
    if conn.is_open:
        conn.close()


@pytest.fixture
def channel(connection: BlockingConnection) -> BlockingChannel:
    """An open channel of :func:`connection`."""
    return connection.channel()


@pytest.fixture
def queue(channel: BlockingChannel) -> str:
    """A fresh exclusive, server-named queue."""
    name: str = channel.queue_declare("", exclusive=True).method.queue
    return name


@pytest.fixture
def proxy(amqp_url: str) -> Iterator[TCPProxy]:
    """A loopback proxy in front of the broker."""
    parts = urllib.parse.urlsplit(amqp_url)
    the_proxy = TCPProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    yield the_proxy
    the_proxy.close()


def proxied_url(amqp_url: str, proxy: TCPProxy, query: str = "") -> str:
    """The broker URL with the proxy's port in place of the broker's."""
    parts = urllib.parse.urlsplit(amqp_url)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{proxy.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


@pytest.fixture
def resolver_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that resolve a host name, in order, from now on."""
    threads: list[str] = []
    resolve = _io._resolve

    def recording(host: str, port: int) -> object:
        threads.append(threading.current_thread().name)
        return resolve(host, port)

    monkeypatch.setattr(_io, "_resolve", recording)
    return threads
