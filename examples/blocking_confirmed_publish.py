"""Publish with confirms, both ways: one at a time (pika's mode) and as a batch.

Run: ``python examples/blocking_confirmed_publish.py amqp://guest:guest@localhost:5672/%2F``
"""

from __future__ import annotations

import sys

from amqp_blocking import BlockingConnection
from amqp_core.exceptions import UnroutableError
from amqp_core.parameters import URLParameters


def main(url: str) -> None:
    """Publish 1,000 messages as a confirmed batch, then one unroutable message."""
    with BlockingConnection(URLParameters(url)) as connection:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue

        # Fast: one round trip per window of messages, a result per message.
        outcomes = channel.publish_batch(("", queue, f"message {i}") for i in range(1000))
        failed = [outcome for outcome in outcomes if not outcome.ok]
        print(f"batch: {len(outcomes) - len(failed)} confirmed, {len(failed)} failed")

        # pika's mode: every basic_publish waits for its own confirm.
        channel.confirm_delivery()
        try:
            channel.basic_publish("", "no-such-queue", b"lost", mandatory=True)
        except UnroutableError as error:
            print(f"unroutable: {len(error.messages)} message returned")


if __name__ == "__main__":
    main(sys.argv[1])
