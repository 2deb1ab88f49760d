"""Publisher-confirm bookkeeping: which published message each ack, nack or return settles.

Any adapter that offers "wait for the broker to confirm this message" needs the same rules, so
they live here once, with no I/O:

* On a channel in confirm mode the broker numbers publishes 1, 2, 3 ... in order; a
  ``Basic.Ack`` or ``Basic.Nack`` settles one number, or with ``multiple`` every number up to it.
* A mandatory message that no queue takes comes back as ``Basic.Return`` *before* the ack that
  settles it. A return carries no sequence number, so it is matched to the oldest unsettled
  mandatory message with the same exchange, routing key and body: the broker handles a channel's
  publishes in order, and two messages alike in all three route alike, so the match is exact
  whenever it matters.
* A message acked after a return is unroutable (pika's ``UnroutableError``); a nacked one is
  ``NackError``; when the channel or connection ends first, every unsettled message fails with
  that reason.

:class:`ConfirmTracker` keeps that state for one channel; :class:`PublishOutcome` is the
result of one message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amqp_core import spec
from amqp_core.exceptions import NackError, UnroutableError

__all__ = ("ConfirmTracker", "PublishOutcome", "ReturnedMessage")


class ReturnedMessage:
    """A message the broker gave back or refused: ``method``, ``properties`` and ``body``.

    The element type of :attr:`NackError.messages` and :attr:`UnroutableError.messages`
    (pika's ``blocking_connection.ReturnedMessage``).

    Args:
        method: the ``Basic.Return`` for a returned message; for a nacked one, the
            ``Basic.Nack`` that refused it.
        properties: the message's properties.
        body: the message's body.
    """

    __slots__ = ("body", "method", "properties")

    def __init__(self, method: Any, properties: spec.BasicProperties, body: bytes) -> None:
        self.method = method
        self.properties = properties
        self.body = body

    def __repr__(self) -> str:
        return f"ReturnedMessage(method={self.method!r}, body={self.body[:32]!r})"


class PublishOutcome:
    """What became of one message published with confirms.

    Attributes:
        sequence: the message's publish sequence number on its channel (1, 2, ...).
        settled: True once the broker acked or nacked it, or the channel ended first.
        acked: True when the broker acknowledged it.
        returned: the broker's ``Basic.Return`` of it (mandatory and unroutable), or None.
        failure: the channel's or connection's close reason if it ended before the confirm.
    """

    __slots__ = (
        "acked",
        "body",
        "exchange",
        "failure",
        "keep",
        "mandatory",
        "nack",
        "properties",
        "returned",
        "routing_key",
        "sequence",
        "settled",
    )

    def __init__(
        self,
        sequence: int,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.BasicProperties | None,
        mandatory: bool,
        keep: bool,
    ) -> None:
        self.sequence = sequence
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
        self.keep = keep
        self.settled = False
        self.acked = False
        self.nack: Any = None
        self.returned: ReturnedMessage | None = None
        self.failure: BaseException | None = None

    def __repr__(self) -> str:
        if not self.settled:
            state = "pending"
        elif self.failure is not None:
            state = f"failed {self.failure!r}"
        elif not self.acked:
            state = "nacked"
        else:
            state = "returned" if self.returned is not None else "acked"
        return f"<PublishOutcome #{self.sequence} {state}>"

    @property
    def ok(self) -> bool:
        """True when the broker acknowledged the message and did not return it."""
        return self.settled and self.acked and self.returned is None

    @property
    def error(self) -> BaseException | None:
        """The exception that describes a failure (pika's), or None when :attr:`ok`.

        ``NackError`` for a nack, ``UnroutableError`` for a returned message, the close
        reason when the channel ended first.

        Raises:
            RuntimeError: the message is not settled yet.
        """
        if not self.settled:
            raise RuntimeError(f"publish #{self.sequence} is not settled yet")
        if self.failure is not None:
            return self.failure
        if not self.acked:
            properties = self.properties or spec.BasicProperties()
            return NackError([ReturnedMessage(self.nack, properties, self.body)])
        if self.returned is not None:
            return UnroutableError([self.returned])
        return None


class ConfirmTracker:
    """The confirm state of one channel: unsettled publishes, matched to acks and returns.

    Call :meth:`published` for every publish made after ``Confirm.SelectOk`` (in the order
    they were made), and feed it every ack, nack and return of the channel.

    Args:
        on_settled: called with each outcome as it settles, if given.
    """

    def __init__(self, on_settled: Callable[[PublishOutcome], None] | None = None) -> None:
        self._next = 1
        self._low = 1
        self._pending: dict[int, PublishOutcome] = {}
        self._on_settled = on_settled

    @property
    def unsettled(self) -> int:
        """How many publishes wait for their confirm."""
        return len(self._pending)

    @staticmethod
    def refill_level(window: int) -> int:
        """How few publishes may wait for their confirm before a full ``window`` takes more.

        Half the window: a publisher held back by a full window goes on once half of it is
        confirmed, so that one wakeup is followed by a long run of publishes rather than by
        a few per ack (the broker acks in batches with ``multiple``). Every adapter that
        windows publishes refills at this level.
        """
        return max(1, window) // 2

    def published(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
        keep: bool = True,
    ) -> PublishOutcome:
        """Record a publish; return its (pending) outcome.

        Args:
            exchange: the exchange it was published to.
            routing_key: its routing key.
            body: its body (kept until settled, to match returns and to report nacks).
            properties: its properties.
            mandatory: whether it was published mandatory.
            keep: whether anybody waits for the outcome; informational for the caller.
        """
        outcome = PublishOutcome(
            self._next, exchange, routing_key, body, properties, mandatory, keep
        )
        self._pending[self._next] = outcome
        self._next += 1
        return outcome

    def on_return(self, method: Any, properties: spec.BasicProperties, body: bytes) -> bool:
        """Match a ``Basic.Return``; return whether it belonged to an unsettled publish."""
        for outcome in self._pending.values():
            if (
                outcome.mandatory
                and outcome.returned is None
                and outcome.exchange == method.exchange
                and outcome.routing_key == method.routing_key
                and outcome.body == body
            ):
                outcome.returned = ReturnedMessage(method, properties, body)
                return True
        return False

    def on_confirm(self, method: Any) -> list[PublishOutcome]:
        """Settle what a ``Basic.Ack`` or ``Basic.Nack`` covers; return those outcomes.

        Args:
            method: the ``Basic.Ack`` / ``Basic.Nack`` (or a frame holding it in ``method``).
        """
        method = getattr(method, "method", method)
        acked = not isinstance(method, spec.Basic.Nack)
        tag: int = method.delivery_tag
        tags = range(self._low if method.multiple else tag, tag + 1)
        settled = []
        pop = self._pending.pop
        on_settled = self._on_settled
        # Once per confirmed message under load: kept free of calls that are not needed.
        for number in tags:
            outcome = pop(number, None)
            if outcome is None:
                continue
            outcome.acked = acked
            if not acked:
                outcome.nack = method
            outcome.settled = True
            if on_settled is not None:
                on_settled(outcome)
            settled.append(outcome)
        if method.multiple or tag == self._low:
            # The lowest unsettled number only grows: step past the settled ones instead of
            # searching the whole window (a min() over it made every ack cost O(window)).
            pending = self._pending
            low = self._low
            end = self._next
            while low < end and low not in pending:
                low += 1
            self._low = low
        return settled

    def fail_all(self, reason: BaseException) -> list[PublishOutcome]:
        """Settle every unsettled publish with ``reason`` (the channel or connection ended)."""
        pending = list(self._pending.values())
        self._pending.clear()
        self._low = self._next
        for outcome in pending:
            outcome.failure = reason
            self._settle(outcome)
        return pending

    def _settle(self, outcome: PublishOutcome) -> PublishOutcome:
        outcome.settled = True
        if self._on_settled is not None:
            self._on_settled(outcome)
        return outcome
