"""The example programs added for the documentation run against RabbitMQ and say what they did.

Each runs as its own process, the way a reader runs it: ``python examples/<name>.py URL ...``.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def run(name: str, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_select_confirmed_publish(amqp_url: str) -> None:
    lines = run("select_confirmed_publish.py", amqp_url, "4")
    assert lines[0] == "published 5 messages"
    assert "returned b'lost': 312 NO_ROUTE" in lines
    assert lines[-2] == "closed: ConnectionClosedByClient: (200) 'Normal shutdown'"
    assert lines[-1] == "acked 5, nacked 0, returned 1"


def test_asyncio_confirmed_publish(amqp_url: str) -> None:
    lines = run("asyncio_confirmed_publish.py", amqp_url, "6")
    assert lines == [
        "published 6, broker acked 6, nacked 0",
        "closed: ConnectionClosedByClient: (200) 'Normal shutdown'",
    ]


def test_asyncio_consume(amqp_url: str) -> None:
    lines = run("asyncio_consume.py", amqp_url, "3")
    assert lines == [
        "received b'message 0', acking tag 1",
        "received b'message 1', acking tag 2",
        "received b'message 2', acking tag 3",
        "closed: ConnectionClosedByClient: (200) 'Normal shutdown'",
    ]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_native_async_consume(amqp_url: str, backend: str) -> None:
    lines = run("native_async_consume.py", amqp_url, backend, "3")
    assert lines == [
        "received message 0, acking it",
        "received message 1, acking it",
        "received message 2, acking it",
        "queue idle for 1 s: stopping",
        "consumed 3 messages",
    ]
