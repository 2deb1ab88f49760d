"""How much each read handed amqp_core's connection: a check of the adapters' read size.

An adapter asks for at most ``amqp_core.transport.READ_SIZE`` per read (a larger request costs
an ``mmap`` per read, see its docstring). Every adapter hands what it read, as it read it, to
the connection's stream listener, so recording what that listener gets shows the size asked for
whenever the broker sends more than that at once (a message of a few MiB does).
"""

from __future__ import annotations

import pytest

from amqp_core.connection import _Stream


def record_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now until the test ends: the length of every piece of data a connection receives."""
    sizes: list[int] = []
    original = _Stream.data_received

    def data_received(stream: _Stream, data: bytes) -> None:
        # amqp-blocking reads in its I/O thread or a waiting one: list.append is atomic.
        sizes.append(len(data))
        original(stream, data)

    monkeypatch.setattr(_Stream, "data_received", data_received)
    return sizes
