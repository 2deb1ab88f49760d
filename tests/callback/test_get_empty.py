# ruff: noqa: PT018
"""``Channel.basic_get(..., on_empty=...)``: hearing about an empty queue without spec classes."""

from __future__ import annotations

import pytest

from .helpers import Recorder, open_connection


def test_on_empty_called_once_and_not_for_a_message() -> None:
    io, conn, rec = open_connection()
    ch = conn.channel()
    io.run()
    ch.queue_declare("q")
    ch.basic_get("q", rec("get"), on_empty=rec("empty"))
    io.run()
    assert rec.named("empty") == [(ch,)] and rec.named("get") == []
    ch.basic_publish("", "q", b"x")
    ch.basic_get("q", rec("get"), auto_ack=True, on_empty=rec("empty"))
    io.run()
    assert len(rec.named("get")) == 1 and len(rec.named("empty")) == 1
    with pytest.raises(TypeError):
        ch.basic_get("q", rec("get"), on_empty="not callable")  # type: ignore[arg-type]


def test_on_empty_forgotten_when_the_channel_closes() -> None:
    io, conn, rec = open_connection()
    ch = conn.channel()
    io.run()
    ch.basic_get("q", Recorder()("get"), on_empty=rec("empty"))
    ch.close()
    io.run()
    assert ch.is_closed and rec.named("empty") == []
