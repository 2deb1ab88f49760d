"""AMQP decisions a blocking (call-and-wait) API needs on top of the callback :class:`Channel`.

A blocking adapter turns each callback request into "send, then wait for the answer", and
buffers deliveries until its user asks for them. The pieces of that which are about AMQP, not
about threads or sockets, are here so that adapters stay byte pumps:

* :func:`basic_get`: one callback for both answers of ``Basic.Get`` (``GetOk`` or
  ``GetEmpty``), which the callback channel reports to two different callbacks.
* :func:`release_undelivered`: what to do with deliveries buffered for a consumer that is
  being cancelled: with ``auto_ack`` the broker already forgot them, so they are handed back to
  the caller; otherwise they are refused one by one with requeue, so the broker gives them to
  another consumer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from amqp_core.channel import Channel

__all__ = ("GetResult", "basic_get", "release_undelivered")

#: ``(method, properties, body)`` of a fetched message, or ``(None, None, None)`` when empty.
GetResult = tuple[Any, Any, Any]

_EMPTY: GetResult = (None, None, None)


def basic_get(
    channel: Channel, queue: str, auto_ack: bool, on_result: Callable[[GetResult], None]
) -> None:
    """Fetch one message; ``on_result`` gets ``(GetOk, properties, body)`` or three Nones.

    Args:
        channel: an open channel.
        queue: the queue.
        auto_ack: let the broker consider the message acknowledged once sent.
        on_result: called once, with the message or with ``(None, None, None)``.
    """

    def on_message(_channel: Channel, method: Any, properties: Any, body: bytes) -> None:
        on_result((method, properties, body))

    channel.basic_get(queue, on_message, auto_ack=auto_ack, on_empty=lambda _: on_result(_EMPTY))


def release_undelivered(
    channel: Channel, auto_ack: bool, messages: Sequence[tuple[Any, Any, bytes]]
) -> tuple[list[tuple[Any, Any, bytes]], int]:
    """Dispose of deliveries a cancelled consumer's user never saw.

    Args:
        channel: the channel they arrived on.
        auto_ack: whether the consumer was ``auto_ack`` (``no_ack``).
        messages: the buffered ``(Basic.Deliver, properties, body)`` tuples, oldest first.

    Returns:
        ``(handed_back, requeued)``: the messages the caller keeps (only with ``auto_ack``,
        since the broker no longer holds them), and how many were refused with requeue.
    """
    if auto_ack:
        return list(messages), 0
    requeued = 0
    if channel.is_open:
        for method, _properties, _body in messages:
            # One by one: ``multiple`` would also refuse deliveries the user still holds.
            channel.basic_nack(method.delivery_tag, multiple=False, requeue=True)
            requeued += 1
    return [], requeued
