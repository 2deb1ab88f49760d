"""Typed replies for awaitable APIs built on the callback :class:`~amqp_core.channel.Channel`.

An async adapter hands its users the broker's replies as typed results, and reads a few fields
of the methods the channel and connection pass to their callbacks. Doing that with method
classes would put AMQP knowledge in the adapter; these helpers keep it here:

* the reply types (``QueueDeclareOk`` ...) under stable names, for annotations;
* :func:`reply`, which takes the ``frame.Method`` an RPC callback receives and returns the
  method inside it, checked and typed;
* :func:`blocked_reason` and :func:`cancelled_consumer_tag`, which read the one field an
  adapter needs from ``Connection.Blocked`` and from the broker's ``Basic.Cancel``.

Publisher-confirm bookkeeping (acks, nacks, returns) is :mod:`amqp_core.confirms`.
"""

from __future__ import annotations

from typing import TypeAlias, TypeVar

from amqp_core import frame, spec
from amqp_core.amqp_object import Method

__all__ = (
    "BasicDeliver",
    "BasicGetOk",
    "ExchangeDeclareOk",
    "QueueDeclareOk",
    "QueueDeleteOk",
    "QueuePurgeOk",
    "blocked_reason",
    "cancelled_consumer_tag",
    "reply",
)

#: ``Queue.DeclareOk``: ``queue``, ``message_count``, ``consumer_count``.
QueueDeclareOk: TypeAlias = spec.Queue.DeclareOk
#: ``Queue.PurgeOk``: ``message_count``.
QueuePurgeOk: TypeAlias = spec.Queue.PurgeOk
#: ``Queue.DeleteOk``: ``message_count``.
QueueDeleteOk: TypeAlias = spec.Queue.DeleteOk
#: ``Exchange.DeclareOk`` (no fields).
ExchangeDeclareOk: TypeAlias = spec.Exchange.DeclareOk
#: ``Basic.Deliver``: what a consumer's message callback receives as its method.
BasicDeliver: TypeAlias = spec.Basic.Deliver
#: ``Basic.GetOk``: what a get's message callback receives as its method.
BasicGetOk: TypeAlias = spec.Basic.GetOk

_M = TypeVar("_M", bound=Method)


def reply(result: frame.Method, kind: type[_M]) -> _M:
    """Return the method an RPC callback received, typed as ``kind``.

    Args:
        result: what the channel passed to the RPC callback.
        kind: the reply class expected, e.g. :data:`QueueDeclareOk`.

    Raises:
        TypeError: the reply is of another class (a bug: replies are matched by the channel).
    """
    method = result.method
    if not isinstance(method, kind):
        raise TypeError(f"expected {kind.__name__}, got {method!r}")
    return method


def blocked_reason(result: frame.Method) -> str:
    """Return the reason of a ``Connection.Blocked`` given to a blocked callback."""
    method = result.method
    assert isinstance(method, spec.Connection.Blocked)
    return method.reason


def cancelled_consumer_tag(result: frame.Method) -> str:
    """Return the consumer tag of a broker's ``Basic.Cancel`` given to a cancel callback."""
    method = result.method
    assert isinstance(method, spec.Basic.Cancel)
    return method.consumer_tag
