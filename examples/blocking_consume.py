"""Consume with acknowledgements, handing the work to a thread (the seed docs' pattern).

The I/O thread of the connection keeps heartbeats going whatever the worker does; the ack is
handed back with ``add_callback_threadsafe`` (a direct ``basic_ack`` from the worker would be
safe too: every method of the connection is thread-safe).

Run: ``python examples/blocking_consume.py amqp://guest:guest@localhost:5672/%2F``
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from typing import Any

from amqp_blocking import BlockingChannel, BlockingConnection
from amqp_core.parameters import URLParameters

COUNT = 5


def main(url: str) -> None:
    """Publish a few messages, consume them with acks from worker threads, then stop."""
    connection = BlockingConnection(URLParameters(url))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    for i in range(COUNT):
        channel.basic_publish("", queue, f"job {i}")
    done: list[int] = []
    workers: list[threading.Thread] = []

    def ack_message(ch: BlockingChannel, delivery_tag: int) -> None:
        if ch.is_open:
            ch.basic_ack(delivery_tag)
        done.append(delivery_tag)
        if len(done) == COUNT:
            ch.stop_consuming()

    def do_work(ch: BlockingChannel, delivery_tag: int, body: bytes) -> None:
        time.sleep(0.1)  # the work
        connection.add_callback_threadsafe(functools.partial(ack_message, ch, delivery_tag))

    def on_message(ch: BlockingChannel, method: Any, _properties: Any, body: bytes) -> None:
        worker = threading.Thread(target=do_work, args=(ch, method.delivery_tag, body))
        worker.start()
        workers.append(worker)

    channel.basic_qos(prefetch_count=2)
    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    for worker in workers:
        worker.join()
    print(f"acknowledged {len(done)} messages")
    connection.close()


if __name__ == "__main__":
    main(sys.argv[1])
