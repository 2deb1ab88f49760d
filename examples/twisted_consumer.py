"""TwistedProtocolConnection with ``ClientCreator`` and ``inlineCallbacks``.

The shape of pika's documented Twisted example, in this project's names: Twisted connects the
TCP stream, ``protocol.ready`` fires once the AMQP connection is open, and a generator declares,
publishes with confirms, consumes from a ``ClosableDeferredQueue``, acks, and closes.

Run it against a broker with ``AMQP_URL=amqp://... python -m examples.twisted_consumer``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.internet.task import react

from amqp_core.parameters import URLParameters
from amqp_twisted import TwistedProtocolConnection


@defer.inlineCallbacks
def run(connection: TwistedProtocolConnection, count: int) -> Generator[Any, Any, list[bytes]]:
    """Publish ``count`` messages with confirms, consume and ack them, close; return bodies."""
    channel = yield connection.channel()
    yield channel.exchange_declare(exchange="example-twisted", exchange_type="direct")
    yield channel.queue_declare(queue="example-twisted", auto_delete=True)
    yield channel.queue_bind(exchange="example-twisted", queue="example-twisted", routing_key="k")
    yield channel.basic_qos(prefetch_count=10)
    yield channel.confirm_delivery()
    for number in range(count):
        yield channel.basic_publish("example-twisted", "k", f"message {number}".encode())
    print(f"published {count}, each confirmed")
    queue, consumer_tag = yield channel.basic_consume(queue="example-twisted")
    bodies = []
    for _ in range(count):
        message = yield queue.get()
        print(f"received {message.body!r}")
        bodies.append(message.body)
        message.channel.basic_ack(delivery_tag=message.method.delivery_tag)
    yield channel.basic_cancel(consumer_tag)
    reason = yield connection.close()
    print(f"connection closed: {reason!r}")
    return bodies


@defer.inlineCallbacks
def main(_reactor: Any, url: str, count: int = 5) -> Generator[Any, Any, None]:
    """Connect with ``ClientCreator``, then :func:`run` once ``ready`` fires."""
    parameters = URLParameters(url)
    creator = protocol.ClientCreator(reactor, TwistedProtocolConnection, parameters)  # type: ignore[no-untyped-call]
    connection = yield creator.connectTCP(parameters.host, parameters.port)  # type: ignore[no-untyped-call]
    yield connection.ready
    yield run(connection, count)


if __name__ == "__main__":
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    react(main, (url, count))
