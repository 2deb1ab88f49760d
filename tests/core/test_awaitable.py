"""amqp_core.awaitable: typed replies and the fields adapters read from callback methods."""

from __future__ import annotations

import pytest

from amqp_core import frame, spec
from amqp_core.awaitable import QueueDeclareOk, blocked_reason, cancelled_consumer_tag, reply


def test_reply_returns_the_typed_method() -> None:
    result = frame.Method(1, spec.Queue.DeclareOk("q", 3, 1))
    declared = reply(result, QueueDeclareOk)
    assert (declared.queue, declared.message_count, declared.consumer_count) == ("q", 3, 1)


def test_reply_of_another_class_is_an_error() -> None:
    with pytest.raises(TypeError, match="DeclareOk"):
        reply(frame.Method(1, spec.Queue.PurgeOk(0)), QueueDeclareOk)


def test_blocked_reason_and_cancelled_tag() -> None:
    assert blocked_reason(frame.Method(0, spec.Connection.Blocked("low on memory"))) == (
        "low on memory"
    )
    assert cancelled_consumer_tag(frame.Method(1, spec.Basic.Cancel("ctag1.1"))) == "ctag1.1"
