"""Bounded output of the callback API: max_unsent_bytes, OutputBufferFullError, drained callbacks.

The transport here stalls on request (as a socket does when the broker stops reading) and
reports ``write_drained`` when released, as the adapters' transports do.
"""

# ruff: noqa: PT018, RUF059
from __future__ import annotations

from typing import Any

import pytest

from amqp_core import exceptions as exc
from amqp_core import spec
from amqp_core.channel import Channel
from amqp_core.connection import WRITE_HIGH_WATER
from amqp_core.parameters import (
    MIN_MAX_UNSENT_BYTES,
    ConnectionParameters,
    Parameters,
    URLParameters,
)
from amqp_core.recovery import Recovered, RecoveryPolicy
from amqp_core.testing.peer import FakeBroker

from .helpers import FakeIO, FakeTransport, Recorder, TestConnection, open_connection

MiB = 1024 * 1024


class StallingTransport(FakeTransport):
    """Holds what is written while ``stalled``; ``release`` sends it and reports the drain."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.stalled = False
        self.held: list[bytes] = []

    def write(self, data: Any) -> None:
        if self.stalled:
            self.held.append(bytes(data))
            self.buffered += len(data)
        else:
            super().write(data)

    def release(self) -> None:
        self.stalled = False
        held, self.held = self.held, []
        self.buffered = 0
        for chunk in held:
            super().write(chunk)
        self.listener.write_drained()


class StallingIO(FakeIO):
    def connect_stream(self, settings: Any, listener: Any, on_done: Any) -> Any:
        broker = FakeBroker()
        self.brokers.append(broker)
        transport = StallingTransport(self, broker, listener)
        self.transports.append(transport)
        return self.call_later(0, lambda: on_done(transport))

    @property
    def stalling(self) -> StallingTransport:
        transport = self.transports[-1]
        assert isinstance(transport, StallingTransport)
        return transport


def publishes(io: FakeIO) -> int:
    return sum(isinstance(m, spec.Basic.Publish) for b in io.brokers for m in b.received)


def setup(limit: int | None = MiB, **kwargs: Any) -> tuple[StallingIO, TestConnection, Channel]:
    io = StallingIO()
    _, conn, _ = open_connection(
        io, parameters=ConnectionParameters(max_unsent_bytes=limit, **kwargs)
    )
    channel = conn.channel()
    io.run()
    assert channel.is_open
    return io, conn, channel


def fill(
    channel: Channel, body: bytes, most: int = 100_000
) -> tuple[int, exc.OutputBufferFullError]:
    """Publish ``body`` until the connection refuses; return how many went and the error."""
    for count in range(most):
        try:
            channel.basic_publish("", "q", body)
        except exc.OutputBufferFullError as error:
            return count, error
    raise AssertionError(f"{most} publishes and no refusal")


# ------------------------------------------------------------------------------ parameters


def test_default_is_64_mib_and_url_and_keyword_set_it() -> None:
    assert Parameters().max_unsent_bytes == 64 * MiB
    assert ConnectionParameters().max_unsent_bytes == 64 * MiB
    assert ConnectionParameters(max_unsent_bytes=2 * MiB).max_unsent_bytes == 2 * MiB
    assert ConnectionParameters(max_unsent_bytes=None).max_unsent_bytes is None
    assert URLParameters("amqp://h/?max_unsent_bytes=3145728").max_unsent_bytes == 3 * MiB
    assert URLParameters("amqp://h/?max_unsent_bytes=0").max_unsent_bytes == 0
    assert URLParameters("amqp://h/?max_unsent_bytes=None").max_unsent_bytes is None


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        ("1.5", ValueError, "Invalid max_unsent_bytes value '1.5'"),
        ("lots", ValueError, "Invalid max_unsent_bytes value 'lots'"),
        ("1000", ValueError, "max_unsent_bytes must be 0, None or >= 1048576"),
        ("-1", ValueError, "max_unsent_bytes must be 0, None or >= 1048576"),
    ],
)
def test_bad_url_values_are_refused_clearly(value: str, error: type, text: str) -> None:
    with pytest.raises(error, match=text.replace(".", r"\.")):
        URLParameters(f"amqp://h/?max_unsent_bytes={value}")


def test_bad_values_are_refused_clearly() -> None:
    with pytest.raises(TypeError, match="max_unsent_bytes must be an int"):
        ConnectionParameters(max_unsent_bytes=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_unsent_bytes must be 0, None or >= 1048576"):
        ConnectionParameters(max_unsent_bytes=MIN_MAX_UNSENT_BYTES - 1)
    params = ConnectionParameters()
    params.max_unsent_bytes = MIN_MAX_UNSENT_BYTES
    assert params.max_unsent_bytes == MIN_MAX_UNSENT_BYTES


# ------------------------------------------------------------------------------ the limit


def test_refuses_at_the_limit_queues_nothing_and_resumes_after_the_drain() -> None:
    io, conn, channel = setup()
    rec = Recorder()
    conn.add_on_output_drained_callback(rec("drained"))
    io.stalling.stalled = True
    body = b"x" * 1000
    count, error = fill(channel, body)
    # The whole megabyte is used (each message is its body and about 50 bytes of frames)...
    assert MiB // 1060 <= count <= MiB // 1000
    assert error.limit == MiB and MiB - 1100 < error.unsent <= MiB
    assert "max_unsent_bytes=1048576" in str(error) and "OutputBufferFullError" in repr(error)
    assert isinstance(error, exc.AMQPError)
    assert conn.outbound_buffer_size == error.unsent
    # ... and stays refused until the output drains, whatever the size.
    with pytest.raises(exc.OutputBufferFullError):
        channel.basic_publish("", "q", b"")
    io.run()
    assert rec.named("drained") == []
    io.stalling.release()
    io.run()
    assert rec.named("drained") == [(conn,)]
    assert publishes(io) == count  # the refused messages were never queued
    channel.basic_publish("", "q", body)
    io.run()
    assert publishes(io) == count + 1
    assert rec.named("drained") == [(conn,)]


def test_a_burst_to_a_fast_transport_is_never_refused() -> None:
    # The burst is handed to the transport when the estimate reaches the limit: what it sent
    # at once is not counted.
    io, conn, channel = setup(limit=2 * MiB)
    for _ in range(2000):
        channel.basic_publish("", "q", b"y" * 4000)
    io.run()
    assert publishes(io) == 2000


def test_refusal_counts_output_the_engine_still_holds() -> None:
    # Once the transport is above WRITE_HIGH_WATER, the connection keeps its output back.
    io, conn, channel = setup(limit=8 * MiB)
    io.stalling.stalled = True
    for _ in range(1100):
        channel.basic_publish("", "q", b"y" * 4000)
    io.run()
    assert io.stalling.buffered >= WRITE_HIGH_WATER
    count, error = fill(channel, b"y" * 4000)
    assert conn._engine is not None
    assert conn._engine.bytes_to_send + conn._backlog_bytes == count * 4048
    assert 8 * MiB - 4100 < error.unsent <= 8 * MiB


def test_unbounded_with_none_or_zero() -> None:
    for limit in (None, 0):
        io, conn, channel = setup(limit)
        io.stalling.stalled = True
        for _ in range(3000):
            channel.basic_publish("", "q", b"z" * 1000)
        assert conn.outbound_buffer_size > 2 * MiB


def test_a_message_bigger_than_the_limit_goes_when_the_output_is_drained() -> None:
    io, conn, channel = setup()
    io.stalling.stalled = True
    big = b"b" * (3 * MiB)
    channel.basic_publish("", "q", big)
    with pytest.raises(exc.OutputBufferFullError):
        channel.basic_publish("", "q", big)
    io.stalling.release()
    io.run()
    channel.basic_publish("", "q", big)
    io.run()
    assert publishes(io) == 2


def test_properties_count_towards_the_estimate() -> None:
    io, conn, channel = setup()
    io.stalling.stalled = True
    props = spec.BasicProperties(content_type="text/plain", headers={"k": "v" * 100})
    for _ in range(MiB // 600):
        channel.basic_publish("", "q", b"p" * 100, props)
    count, error = fill(channel, b"p" * 100)
    assert error.unsent <= MiB


def test_a_drain_that_happens_at_once_still_runs_the_callbacks() -> None:
    # The transport takes everything as soon as the engine hands it over: no write_drained
    # will come, so the flush itself notices.
    io, conn, channel = setup()
    rec = Recorder()
    conn.add_on_output_drained_callback(rec("drained"))
    io.stalling.stalled = True
    fill(channel, b"x" * 1000)
    io.stalling.stalled = False
    held, io.stalling.held = io.stalling.held, []
    io.stalling.buffered = 0
    for chunk in held:
        FakeTransport.write(io.stalling, chunk)
    io.run()  # a scheduled flush
    conn._flush()
    io.run()
    assert rec.named("drained") == [(conn,)]


def test_callbacks_can_be_removed_and_must_be_callable() -> None:
    io, conn, channel = setup()
    rec = Recorder()
    callback = rec("drained")
    conn.add_on_output_drained_callback(callback)
    assert conn.remove_on_output_drained_callback(callback)
    assert not conn.remove_on_output_drained_callback(callback)
    with pytest.raises(TypeError):
        conn.add_on_output_drained_callback("nope")  # type: ignore[arg-type]
    io.stalling.stalled = True
    fill(channel, b"x" * 1000)
    io.stalling.release()
    io.run()
    assert rec.calls == []


def test_no_drained_callback_after_the_connection_closed() -> None:
    io, conn, channel = setup()
    rec = Recorder()
    conn.add_on_output_drained_callback(rec("drained"))
    io.stalling.stalled = True
    fill(channel, b"x" * 1000)
    io.stalling.lose(ConnectionResetError("gone"))
    io.run()
    assert conn.is_closed
    assert rec.calls == []
    assert not conn._output_full


def test_held_output_counts() -> None:
    # Publishes queued behind unanswered synchronous requests are output too.
    io, conn, channel = setup()
    io.stalling.stalled = True
    channel.queue_declare("a", callback=lambda _frame: None)
    channel.queue_declare("b", callback=lambda _frame: None)  # held behind the first
    count, error = fill(channel, b"h" * 1000)
    assert conn._engine is not None and conn._engine.bytes_held > MiB // 2
    assert error.unsent <= MiB


def test_recovery_resumes_a_full_connection() -> None:
    io = StallingIO()
    params = ConnectionParameters(
        max_unsent_bytes=MiB, recovery=RecoveryPolicy(initial_delay=0.1, jitter=0)
    )
    _, conn, _ = open_connection(io, parameters=params)
    events: list[object] = []
    conn.add_recovery_listener(lambda _c, event: events.append(event))
    rec = Recorder()
    conn.add_on_output_drained_callback(rec("drained"))
    channel = conn.channel()
    io.run()
    io.stalling.stalled = True
    fill(channel, b"x" * 1000)
    io.stalling.lose(ConnectionResetError("gone"))
    io.run(5)
    assert any(isinstance(event, Recovered) for event in events), events
    assert rec.named("drained") == [(conn,)]
    assert channel.is_open
    channel.basic_publish("", "q", b"again")
    io.run()
