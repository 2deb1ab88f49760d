"""Publish with publisher confirms on SelectConnection, and see a mandatory message come back.

Connect, open a channel, turn confirms on, declare a queue, publish ``count`` persistent
messages to it and one mandatory message that no queue takes; print each confirm and the
return, and close once the broker has confirmed every message.

Usage: ``python examples/select_confirmed_publish.py [AMQP_URL] [COUNT]``
"""

from __future__ import annotations

import sys

from amqp_core import BasicProperties, DeliveryMode, frame, spec
from amqp_core.channel import Channel
from amqp_core.connection import Connection
from amqp_core.parameters import URLParameters
from amqp_select import SelectConnection


def main(url: str, count: int = 5, queue: str = "example-select-confirms") -> dict[str, int]:
    """Publish ``count`` + 1 messages with confirms; return the acked/nacked/returned counts."""
    outcome = {"acked": 0, "nacked": 0, "returned": 0}
    total = count + 1  # the unroutable message is confirmed too, after its return
    unconfirmed = set(range(1, total + 1))  # the broker numbers the messages 1, 2, 3 ...

    def on_open(connection: Connection) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel: Channel) -> None:
        channel.add_on_return_callback(on_return)
        channel.confirm_delivery(on_confirm, callback=lambda _: declare(channel))

    def declare(channel: Channel) -> None:
        channel.queue_declare(queue, auto_delete=True, callback=lambda _: publish(channel))

    def publish(channel: Channel) -> None:
        persistent = BasicProperties(delivery_mode=DeliveryMode.Persistent)
        for number in range(count):
            channel.basic_publish("", queue, f"message {number}", persistent, mandatory=True)
        channel.basic_publish("amq.direct", "no-such-key", b"lost", mandatory=True)
        print(f"published {total} messages")

    def on_return(
        channel: Channel, method: spec.Basic.Return, properties: BasicProperties, body: bytes
    ) -> None:
        outcome["returned"] += 1
        print(f"returned {body!r}: {method.reply_code} {method.reply_text}")

    def on_confirm(confirm: frame.Method) -> None:
        method = confirm.method
        assert isinstance(method, (spec.Basic.Ack, spec.Basic.Nack))
        kind = "acked" if isinstance(method, spec.Basic.Ack) else "nacked"
        # One confirm settles its tag, or with multiple=True every unconfirmed tag up to it.
        # Confirms may come out of order: a persistent message is confirmed once it is on disk.
        tag = method.delivery_tag
        settled = {t for t in unconfirmed if t <= tag} if method.multiple else {tag}
        unconfirmed.difference_update(settled)
        outcome[kind] += len(settled)
        print(f"{kind} {sorted(settled)}")
        if not unconfirmed:
            connection.close()

    def on_closed(conn: Connection, reason: BaseException) -> None:
        print(f"closed: {reason!r}")
        connection.ioloop.stop()

    def on_open_error(conn: Connection, error: BaseException) -> None:
        connection.ioloop.stop()
        raise error

    connection = SelectConnection(
        URLParameters(url),
        on_open_callback=on_open,
        on_open_error_callback=on_open_error,
        on_close_callback=on_closed,
    )
    try:
        connection.ioloop.start()
    finally:
        connection.ioloop.close()
    print(f"acked {outcome['acked']}, nacked {outcome['nacked']}, returned {outcome['returned']}")
    return outcome


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@localhost:5672/%2F",
        int(sys.argv[2]) if len(sys.argv) > 2 else 5,
    )
