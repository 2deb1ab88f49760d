"""ConfirmTracker and release_undelivered: which publish each ack, nack or return settles."""

from __future__ import annotations

from typing import Any, cast

import pytest

from amqp_core import spec
from amqp_core.blocking_support import release_undelivered
from amqp_core.channel import Channel
from amqp_core.confirms import ConfirmTracker, PublishOutcome, ReturnedMessage
from amqp_core.exceptions import ChannelClosedByBroker, NackError, UnroutableError

_B = spec.Basic


def _publish(tracker: ConfirmTracker, body: bytes, mandatory: bool = False) -> PublishOutcome:
    return tracker.published("x", "rk", body, None, mandatory)


def test_acks_single_and_multiple() -> None:
    settled: list[int] = []
    tracker = ConfirmTracker(on_settled=lambda outcome: settled.append(outcome.sequence))
    outcomes = [_publish(tracker, b"%d" % i) for i in range(5)]
    assert [o.sequence for o in outcomes] == [1, 2, 3, 4, 5]
    assert tracker.unsettled == 5
    assert repr(outcomes[0]) == "<PublishOutcome #1 pending>"
    with pytest.raises(RuntimeError, match="not settled"):
        _ = outcomes[0].error
    assert tracker.on_confirm(_B.Ack(delivery_tag=2)) == [outcomes[1]]
    assert [o.sequence for o in tracker.on_confirm(_B.Ack(delivery_tag=3, multiple=True))] == [
        1,
        3,
    ]
    assert tracker.on_confirm(_B.Ack(delivery_tag=3, multiple=True)) == []
    assert tracker.on_confirm(_B.Ack(delivery_tag=5)) == [outcomes[4]]
    assert tracker.on_confirm(_B.Ack(delivery_tag=4)) == [outcomes[3]]
    assert settled == [2, 1, 3, 5, 4]
    assert all(o.ok for o in outcomes)
    assert outcomes[0].error is None
    assert repr(outcomes[0]) == "<PublishOutcome #1 acked>"
    assert tracker.unsettled == 0


def test_nack_makes_nack_error() -> None:
    tracker = ConfirmTracker()
    first = _publish(tracker, b"a")
    second = _publish(tracker, b"b")

    class Frame:
        method = _B.Nack(delivery_tag=2, multiple=True)

    assert tracker.on_confirm(Frame()) == [first, second]
    error = second.error
    assert isinstance(error, NackError)
    message = cast(ReturnedMessage, error.messages[0])
    assert message.body == b"b"
    assert isinstance(message.method, _B.Nack)
    assert not second.ok
    assert repr(second) == "<PublishOutcome #2 nacked>"


def test_return_is_matched_to_its_message() -> None:
    tracker = ConfirmTracker()
    routed = _publish(tracker, b"same", mandatory=True)
    lost = tracker.published("x", "other", b"same", None, True)
    plain = _publish(tracker, b"plain")
    returned = _B.Return(312, "NO_ROUTE", "x", "other")
    props = spec.BasicProperties()
    assert tracker.on_return(returned, props, b"same")
    assert not tracker.on_return(_B.Return(312, "NO_ROUTE", "x", "nowhere"), props, b"?")
    tracker.on_confirm(_B.Ack(delivery_tag=3, multiple=True))
    assert routed.ok
    assert plain.ok
    assert not lost.ok
    error = lost.error
    assert isinstance(error, UnroutableError)
    assert cast(ReturnedMessage, error.messages[0]).method is returned
    assert repr(lost) == "<PublishOutcome #2 returned>"
    assert "ReturnedMessage" in repr(error.messages[0])


def test_fail_all_settles_with_the_reason() -> None:
    tracker = ConfirmTracker()
    outcomes = [_publish(tracker, b"a"), _publish(tracker, b"b")]
    reason = ChannelClosedByBroker(404, "NOT_FOUND")
    assert tracker.fail_all(reason) == outcomes
    assert all(o.error is reason for o in outcomes)
    assert repr(outcomes[0]).startswith("<PublishOutcome #1 failed")
    assert _publish(tracker, b"c").sequence == 3


class _FakeChannel:
    def __init__(self, is_open: bool) -> None:
        self.is_open = is_open
        self.nacks: list[tuple[int, bool, bool]] = []

    def basic_nack(self, delivery_tag: int, multiple: bool, requeue: bool) -> None:
        self.nacks.append((delivery_tag, multiple, requeue))


def test_release_undelivered() -> None:
    messages: list[tuple[Any, Any, bytes]] = [
        (_B.Deliver("c", 7, False, "", "q"), spec.BasicProperties(), b"a"),
        (_B.Deliver("c", 9, False, "", "q"), spec.BasicProperties(), b"b"),
    ]
    channel = _FakeChannel(True)
    assert release_undelivered(cast(Channel, channel), True, messages) == (messages, 0)
    assert channel.nacks == []
    assert release_undelivered(cast(Channel, channel), False, messages) == ([], 2)
    assert channel.nacks == [(7, False, True), (9, False, True)]
    closed = _FakeChannel(False)
    assert release_undelivered(cast(Channel, closed), False, messages) == ([], 0)


@pytest.mark.parametrize(("window", "level"), [(1, 0), (2, 1), (1000, 500), (10_001, 5000), (0, 0)])
def test_a_full_window_is_refilled_from_half(window: int, level: int) -> None:
    assert ConfirmTracker.refill_level(window) == level
