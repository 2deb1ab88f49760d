"""The engine's measures of its own output: queued (bytes_to_send) and held (bytes_held)."""

from __future__ import annotations

from amqp_core import spec

from .helpers import Pair


def test_commands_held_behind_a_synchronous_request_are_counted_until_sent() -> None:
    pair = Pair()
    pair.open()
    ch = pair.channel()
    engine = pair.client
    assert engine.bytes_held == 0
    engine.send_method(ch, spec.Queue.Declare(queue="a"))
    engine.send_method(ch, spec.Queue.Declare(queue="b"))  # waits for DeclareOk of "a"
    engine.publish(ch, "", "b", b"x" * 100)
    held = engine.bytes_held
    queued = engine.bytes_to_send
    assert held > 100
    pair.pump()
    assert engine.bytes_held == 0
    # Declare "a" went at once; Declare "b", then the publish, once each reply came.
    assert [len(chunk) for chunk in pair.wire[-3:]] == [queued, 21, held - 21]
    assert [m.body for m in pair.broker.queues["b"].messages] == [b"x" * 100]
