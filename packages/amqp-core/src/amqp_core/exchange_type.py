"""``ExchangeType``: the exchange types RabbitMQ ships (pika's ``pika.exchange_type``)."""

from __future__ import annotations

from enum import Enum

__all__ = ("ExchangeType",)


class ExchangeType(str, Enum):
    """The ``type`` argument of ``Exchange.Declare``.

    A ``str`` enum, so a member is accepted wherever the exchange type string is.
    """

    direct = "direct"
    fanout = "fanout"
    headers = "headers"
    topic = "topic"
