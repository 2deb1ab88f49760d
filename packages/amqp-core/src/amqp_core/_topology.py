"""What the application declared on a connection, kept so that recovery can declare it again.

The record is fed by the channels of a connection that has a recovery policy: every
declaration, binding and deletion passes :meth:`Topology.observe` on its way out. A declaration
is recorded once the broker confirmed it (its ``-Ok`` arrived, or it was sent with ``nowait``,
which the broker never confirms), so a refused declaration is never replayed; a deletion or
unbinding forgets what it removed, so a deleted queue does not come back.

Exchanges, queues and bindings belong to the connection, not to the channel they were declared
on: the broker keeps them after that channel closes. What does belong to a channel (its QoS,
confirm and transaction modes, its consumers) is kept on the channel itself and replayed by
:mod:`amqp_core.recovery`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from amqp_core import spec

if TYPE_CHECKING:
    from amqp_core.channel import Channel

__all__ = ("Binding", "Topology")

RPCCallback = Callable[[Any], None]


@dataclass(slots=True)
class Binding:
    """One recorded binding: ``source`` exchange -> ``destination`` (a queue or an exchange).

    Attributes:
        destination: the queue (``to_queue``) or exchange bound.
        source: the exchange it is bound to.
        routing_key: the binding key.
        arguments: the binding arguments.
        to_queue: True for ``Queue.Bind``, False for ``Exchange.Bind``.
    """

    destination: str
    source: str
    routing_key: str
    arguments: dict[str, Any] = field(default_factory=dict)
    to_queue: bool = True

    def key(self) -> tuple[str, str, str, bool, tuple[tuple[str, Any], ...]]:
        """Identify the binding as the broker does (arguments included)."""
        return (
            self.destination,
            self.source,
            self.routing_key,
            self.to_queue,
            tuple(sorted((k, repr(v)) for k, v in self.arguments.items())),
        )


class Topology:
    """The exchanges, queues and bindings declared on one connection, in declaration order.

    Attributes:
        exchanges: exchange name -> its ``Exchange.Declare`` (with ``nowait`` off).
        queues: queue name -> its ``Queue.Declare``; a server-named queue is kept under the
            name the broker gave it, with ``queue=""`` in the method.
        bindings: the bindings, oldest first.
    """

    def __init__(self) -> None:
        self.exchanges: dict[str, spec.Exchange.Declare] = {}
        self.queues: dict[str, spec.Queue.Declare] = {}
        self.bindings: list[Binding] = []

    # ------------------------------------------------------------------ recording

    def observe(
        self, channel: Channel, method: Any, callback: RPCCallback | None
    ) -> RPCCallback | None:
        """Note a request a channel sends; return the callback to use for its reply.

        Requests that change nothing recovery cares about pass through untouched. For the
        others, the change is recorded when the reply arrives (the returned callback records,
        then calls ``callback``), or at once when the request is sent with ``nowait``.
        """
        record = self._recorders.get(type(method))
        if record is None:
            return callback
        if getattr(method, "nowait", False):
            record(self, channel, method, None)
            return callback

        def recorded(result: Any) -> None:
            record(self, channel, method, result)
            if callback is not None:
                callback(result)

        return recorded

    def _exchange_declare(self, channel: Channel, method: Any, result: Any) -> None:
        if not method.passive:
            self.exchanges[method.exchange] = spec.Exchange.Declare(
                exchange=method.exchange,
                type=method.type,
                durable=method.durable,
                auto_delete=method.auto_delete,
                internal=method.internal,
                arguments=dict(method.arguments or {}),
            )

    def _exchange_delete(self, channel: Channel, method: Any, result: Any) -> None:
        name = method.exchange
        self.exchanges.pop(name, None)
        # The broker drops every binding that has the exchange at either end.
        self.bindings = [
            b for b in self.bindings if b.source != name and (b.to_queue or b.destination != name)
        ]

    def _queue_declare(self, channel: Channel, method: Any, result: Any) -> None:
        if method.passive:
            return
        name = method.queue
        if not name:
            if result is None:
                return  # nowait with a server-named queue: the name is unknowable
            name = result.method.queue
        self.queues[name] = spec.Queue.Declare(
            queue=method.queue,
            durable=method.durable,
            exclusive=method.exclusive,
            auto_delete=method.auto_delete,
            arguments=dict(method.arguments or {}),
        )

    def _queue_delete(self, channel: Channel, method: Any, result: Any) -> None:
        self.forget_queue(method.queue)

    def _bind(self, channel: Channel, method: Any, result: Any) -> None:
        binding = self._binding(method)
        if all(b.key() != binding.key() for b in self.bindings):
            self.bindings.append(binding)

    def _unbind(self, channel: Channel, method: Any, result: Any) -> None:
        key = self._binding(method).key()
        self.bindings = [b for b in self.bindings if b.key() != key]

    @staticmethod
    def _binding(method: Any) -> Binding:
        to_queue = isinstance(method, (spec.Queue.Bind, spec.Queue.Unbind))
        return Binding(
            destination=method.queue if to_queue else method.destination,
            source=method.exchange if to_queue else method.source,
            routing_key=method.routing_key,
            arguments=dict(method.arguments or {}),
            to_queue=to_queue,
        )

    def _qos(self, channel: Channel, method: Any, result: Any) -> None:
        channel._recovery_qos = method

    def _tx_select(self, channel: Channel, method: Any, result: Any) -> None:
        channel._recovery_tx = True

    _recorders: ClassVar[dict[type, Callable[[Topology, Channel, Any, Any], None]]] = {
        spec.Exchange.Declare: _exchange_declare,
        spec.Exchange.Delete: _exchange_delete,
        spec.Exchange.Bind: _bind,
        spec.Exchange.Unbind: _unbind,
        spec.Queue.Declare: _queue_declare,
        spec.Queue.Delete: _queue_delete,
        spec.Queue.Bind: _bind,
        spec.Queue.Unbind: _unbind,
        spec.Basic.Qos: _qos,
        spec.Tx.Select: _tx_select,
    }

    # ------------------------------------------------------------------ changes by recovery

    def forget_queue(self, name: str) -> None:
        """Forget a queue and the bindings to it (it was deleted)."""
        self.queues.pop(name, None)
        self.bindings = [b for b in self.bindings if not (b.to_queue and b.destination == name)]

    def rename_queue(self, old: str, new: str) -> None:
        """A server-named queue came back under a new name: follow it everywhere."""
        declare = self.queues.pop(old, None)
        if declare is not None:
            self.queues[new] = declare
        for binding in self.bindings:
            if binding.to_queue and binding.destination == old:
                binding.destination = new
                if binding.routing_key == old:
                    # queue_bind's default key is the queue's name: it follows the name.
                    binding.routing_key = new
