"""The runnable examples that the adapter docs include, run against RabbitMQ."""

from __future__ import annotations

import asyncio

import pytest

from examples import asyncio_publisher, select_consumer


def test_select_continuation_passing_consumer(
    amqp_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    received = select_consumer.main(amqp_url, count=7)
    assert received == [f"message {n}".encode() for n in range(7)]
    assert "received b'message 6'" in capsys.readouterr().out


def test_asyncio_example(amqp_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    body = asyncio.run(asyncio.wait_for(asyncio_publisher.main(amqp_url), 30))
    assert body == b"Hello from asyncio!"
    out = capsys.readouterr().out
    assert "queue declared" in out
    assert "ConnectionClosedByClient" in out
