"""Recovery on a real three-node RabbitMQ cluster: a node dies under a publisher and a consumer.

The worked example of ``docs/recovery.md``. Three nodes, one quorum queue (replicated on all
three), a publisher with confirms and a consumer with manual acks, each given all three hosts
and a recovery policy, both connected to the same node. That node is stopped in the middle of
the traffic (``rabbitmqctl stop``: the node's Erlang VM exits, its client connections end and
its queue replica goes down), then started again on the same data directory, rejoining the
cluster. No user code intervenes; the test checks that

* every message the publisher saw confirmed was consumed at least once (0 lost);
* a message consumed twice was flagged ``redelivered`` the second time;
* both clients ended up connected to another node.

Only one node is down at a time, so the quorum queue keeps its majority.
"""

# ruff: noqa: PT018
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from amqp_blocking import BlockingConnection
from amqp_core import exceptions as exc
from amqp_core import recovery as rc
from amqp_core import spec
from amqp_core.parameters import ConnectionParameters
from amqp_select import SelectConnection
from tools.broker import RabbitMQNode, running_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

QUEUE = "recovery-quorum"
# Publishers run until told to stop (after the failure and the restart), at most this many.
TOTAL = 1_000_000
POLICY = rc.RecoveryPolicy(initial_delay=0.1, max_delay=1.0, max_duration=90)


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[RabbitMQNode]]:
    with running_cluster(3) as nodes:
        yield nodes


def hosts(nodes: list[RabbitMQNode], first: int) -> list[ConnectionParameters]:
    """All three nodes, starting with ``nodes[first]``."""
    order = nodes[first:] + nodes[:first]
    return [
        ConnectionParameters(host="127.0.0.1", port=node.amqp_port, recovery=POLICY)
        for node in order
    ]


def port_of(connection: BlockingConnection) -> int:
    return connection._impl.params.port


class Consumer(threading.Thread):
    def __init__(self, params: list[ConnectionParameters]) -> None:
        super().__init__(name="consumer", daemon=True)
        self.connection = BlockingConnection(params)
        self.events: list[Any] = []
        self.connection.add_recovery_listener(lambda _c, e: self.events.append(e))
        self.channel = self.connection.channel()
        self.channel.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        self.channel.basic_qos(prefetch_count=100)
        self.seen: list[tuple[int, bool]] = []
        self.error: BaseException | None = None
        self.channel.basic_consume(QUEUE, self.on_message)

    def on_message(self, channel: Any, method: Any, _props: Any, body: bytes) -> None:
        self.seen.append((int(body), method.redelivered))
        channel.basic_ack(method.delivery_tag)

    def run(self) -> None:
        try:
            self.channel.start_consuming()
        except BaseException as error:  # reported by the test
            self.error = error

    def stop(self) -> None:
        self.connection.add_callback_threadsafe(self.channel.stop_consuming)
        self.join(30)
        self.connection.close()


class Publisher(threading.Thread):
    def __init__(self, params: list[ConnectionParameters]) -> None:
        super().__init__(name="publisher", daemon=True)
        self.connection = BlockingConnection(params)
        self.events: list[Any] = []
        self.connection.add_recovery_listener(lambda _c, e: self.events.append(e))
        # Seen at once, on the I/O thread (for the failure message).
        self.core_events: list[Any] = []
        self.connection._impl.add_recovery_listener(lambda _c, e: self.core_events.append(e))
        self.channel = self.connection.channel()
        self.confirmed: set[int] = set()
        self.unconfirmed: set[int] = set()
        self.error: BaseException | None = None
        self.sent = 0
        self.stop_requested = threading.Event()

    def run(self) -> None:
        try:
            while self.sent < TOTAL and not self.stop_requested.is_set():
                batch = []
                for _ in range(50):
                    batch.append(
                        (self.sent, self.channel.publish_async("", QUEUE, b"%d" % self.sent))
                    )
                    self.sent += 1
                self.channel.wait_for_confirms()
                for number, outcome in batch:
                    (self.confirmed if outcome.ok else self.unconfirmed).add(number)
                # Runs the recovery listener (blocking callbacks run in the user's thread).
                self.connection.process_data_events(0)
                time.sleep(0.005)
        except BaseException as error:  # reported by the test
            self.error = error
        finally:
            self.connection.close()


def wait_for(predicate: Any, timeout: float, what: Any) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.05)


def _unconsumed(
    confirmed: set[int], seen: list[tuple[int, bool]], error: object, events: object, state: object
) -> str:
    """What a test that waits in vain for every confirmed message says about the consumer."""
    missing = sorted(confirmed - {number for number, _ in seen})
    return (
        f"every confirmed message to be consumed: {len(missing)} of {len(confirmed)} missing "
        f"(first {missing[:10]}), {len(seen)} deliveries seen; consumer error {error!r}, "
        f"events {events}, state {state!r}"
    )


def test_blocking_clients_survive_the_loss_of_their_node(cluster: list[RabbitMQNode]) -> None:
    victim = cluster[1]  # not the seed node; only one node is ever down
    admin = BlockingConnection(hosts(cluster, 0))
    admin.channel().queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    admin.close()
    consumer = Consumer(hosts(cluster, 1))
    publisher = Publisher(hosts(cluster, 1))
    assert port_of(consumer.connection) == port_of(publisher.connection) == victim.amqp_port
    consumer.start()
    publisher.start()
    wait_for(lambda: len(publisher.confirmed) >= 500, 60, "traffic before the failure")
    victim.shutdown()  # the whole Erlang VM, in the middle of the traffic
    try:
        wait_for(
            lambda: (
                all(
                    c.is_open and not c.is_recovering and port_of(c) != victim.amqp_port
                    for c in (publisher.connection, consumer.connection)
                )
                or publisher.error is not None
                or consumer.error is not None
            ),
            60,
            lambda: (
                f"both clients to recover: {publisher.core_events} {consumer.events} "
                f"{publisher.connection._impl!r} {consumer.connection._impl!r} "
                f"{publisher.error!r} {consumer.error!r} {publisher.connection._close_reason!r} "
                f"{publisher.connection._impl._close_reason!r} {publisher.is_alive()} "
                f"{publisher.connection._impl._stream!r} {publisher.sent}"
            ),
        )
    finally:
        # The same node again (name, ports, data): it rejoins the cluster.
        victim.restart()
    time.sleep(1)  # some traffic after the restart
    publisher.stop_requested.set()
    publisher.join(120)
    assert publisher.error is None, publisher.error
    assert 500 < publisher.sent < TOTAL
    wait_for(
        lambda: publisher.confirmed <= {n for n, _ in consumer.seen},
        60,
        lambda: _unconsumed(
            publisher.confirmed, consumer.seen, consumer.error, consumer.events, consumer.connection
        ),
    )
    consumer_port = port_of(consumer.connection)
    consumer.stop()
    assert consumer.error is None, consumer.error

    lost = publisher.confirmed - {n for n, _ in consumer.seen}
    assert len(lost) == 0, sorted(lost)[:20]
    first_seen: set[int] = set()
    bad_duplicates = []
    for number, redelivered in consumer.seen:
        if number in first_seen and not redelivered:
            bad_duplicates.append(number)
        first_seen.add(number)
    assert bad_duplicates == []
    # Both moved to another node by themselves.
    assert consumer_port != victim.amqp_port
    assert publisher.connection.is_closed  # closed by the publisher thread, after its work
    recovered = [e for e in publisher.events if isinstance(e, rc.Recovered)]
    assert recovered and recovered[0].port != victim.amqp_port
    assert any(isinstance(e, rc.ConnectionLost) for e in consumer.events)
    print(
        f"confirmed={len(publisher.confirmed)} unconfirmed={len(publisher.unconfirmed)} "
        f"consumed={len(consumer.seen)} distinct={len(first_seen)}"
    )


class SelectClient(threading.Thread):
    """A callback-style client on its own SelectConnection loop, in a thread."""

    def __init__(self, params: list[ConnectionParameters]) -> None:
        super().__init__(daemon=True)
        self.events: list[Any] = []
        self.error: BaseException | None = None
        self.channel: Any = None
        self.connection = SelectConnection(params, self.on_open, self.on_open_error, self.on_close)
        self.connection.add_recovery_listener(self.on_event)

    def on_open_error(self, _conn: Any, error: BaseException) -> None:
        self.error = error
        self.connection.ioloop.stop()

    def on_close(self, _conn: Any, reason: BaseException) -> None:
        if not isinstance(reason, exc.ConnectionClosedByClient):
            self.error = reason
        self.connection.ioloop.stop()

    def on_open(self, conn: Any) -> None:
        conn.channel(on_open_callback=self.on_channel)

    def on_channel(self, channel: Any) -> None:
        raise NotImplementedError

    def on_event(self, _conn: Any, event: Any) -> None:
        self.events.append(event)

    def run(self) -> None:
        try:
            self.connection.ioloop.start()
        except BaseException as error:  # reported by the test
            self.error = error
        finally:
            self.connection.ioloop.close()

    def close(self) -> None:
        def close() -> None:
            if not self.connection.is_closed:
                self.connection.close()

        self.connection.ioloop.add_callback_threadsafe(close)
        self.join(30)


class SelectConsumer(SelectClient):
    def __init__(self, params: list[ConnectionParameters]) -> None:
        self.seen: list[tuple[int, bool]] = []
        super().__init__(params)

    def on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.basic_qos(prefetch_count=100)
        channel.queue_declare(
            QUEUE, durable=True, arguments={"x-queue-type": "quorum"}, callback=self.declared
        )

    def declared(self, _frame: Any) -> None:
        self.channel.basic_consume(QUEUE, self.on_message)

    def on_message(self, channel: Any, method: Any, _props: Any, body: bytes) -> None:
        self.seen.append((int(body), method.redelivered))
        channel.basic_ack(method.delivery_tag)


class SelectPublisher(SelectClient):
    def __init__(self, params: list[ConnectionParameters]) -> None:
        self.confirmed: set[int] = set()
        self.unconfirmed: set[int] = set()
        self.outstanding: dict[int, int] = {}  # sequence number -> message number
        self.sequence = 0
        self.sent = 0
        self.stop_requested = threading.Event()
        super().__init__(params)

    def on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.confirm_delivery(self.on_confirm, callback=lambda _f: self.publish_batch())

    def on_event(self, conn: Any, event: Any) -> None:
        super().on_event(conn, event)
        if isinstance(event, rc.Recovered):
            self.publish_batch()

    def publish_batch(self) -> None:
        # A batch timed before the loss may come due while the connection is down (publishing
        # then raises ConnectionStateError): the Recovered event starts the next one.
        if self.outstanding or not self.channel.is_open or not self.connection.is_open:
            return
        if self.sent >= TOTAL or self.stop_requested.is_set():
            self.connection.close()
            return
        for _ in range(50):
            self.channel.basic_publish("", QUEUE, b"%d" % self.sent)
            self.sequence += 1
            self.outstanding[self.sequence] = self.sent
            self.sent += 1

    def on_confirm(self, method_frame: Any) -> None:
        method = method_frame.method
        tags = (
            [t for t in self.outstanding if t <= method.delivery_tag]
            if method.multiple
            else [method.delivery_tag]
        )
        target = self.confirmed if isinstance(method, spec.Basic.Ack) else self.unconfirmed
        for tag in tags:
            number = self.outstanding.pop(tag, None)
            if number is not None:
                target.add(number)
        if not self.outstanding and not self.connection.is_recovering:
            self.connection.ioloop.call_later(0.02, self.publish_batch)


def test_select_clients_survive_the_loss_of_their_node(cluster: list[RabbitMQNode]) -> None:
    victim = cluster[2]
    admin = BlockingConnection(hosts(cluster, 0))
    admin_channel = admin.channel()
    admin_channel.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    admin_channel.queue_purge(QUEUE)
    admin.close()
    consumer = SelectConsumer(hosts(cluster, 2))
    publisher = SelectPublisher(hosts(cluster, 2))
    consumer.start()
    wait_for(
        lambda: consumer.channel is not None and consumer.channel.consumer_tags, 30, "consumer"
    )
    publisher.start()
    wait_for(lambda: len(publisher.confirmed) >= 500, 60, "traffic before the failure")
    assert publisher.connection.params.port == consumer.connection.params.port == victim.amqp_port
    victim.shutdown()  # the whole Erlang VM, in the middle of the traffic
    try:
        wait_for(
            lambda: (
                all(
                    any(isinstance(e, rc.Recovered) for e in c.events)
                    for c in (publisher, consumer)
                )
                or publisher.error is not None
                or consumer.error is not None
            ),
            60,
            lambda: f"both clients to recover: {publisher.events} {consumer.events}",
        )
    finally:
        # The same node again (name, ports, data): it rejoins the cluster.
        victim.restart()
    time.sleep(1)  # some traffic after the restart
    publisher.stop_requested.set()
    publisher.join(120)
    assert publisher.error is None, publisher.error
    assert 500 < publisher.sent < TOTAL and not publisher.outstanding
    wait_for(
        lambda: publisher.confirmed <= {n for n, _ in consumer.seen},
        60,
        lambda: _unconsumed(
            publisher.confirmed, consumer.seen, consumer.error, consumer.events, consumer.channel
        ),
    )
    consumer_port = consumer.connection.params.port
    consumer.close()
    assert consumer.error is None, consumer.error
    lost = publisher.confirmed - {n for n, _ in consumer.seen}
    assert len(lost) == 0, sorted(lost)[:20]
    first_seen: set[int] = set()
    bad_duplicates = []
    for number, redelivered in consumer.seen:
        if number in first_seen and not redelivered:
            bad_duplicates.append(number)
        first_seen.add(number)
    assert bad_duplicates == []
    assert consumer_port != victim.amqp_port
    recovered = [e for e in publisher.events if isinstance(e, rc.Recovered)]
    assert recovered[0].port != victim.amqp_port
    print(
        f"select: confirmed={len(publisher.confirmed)} unconfirmed={len(publisher.unconfirmed)} "
        f"consumed={len(consumer.seen)} distinct={len(first_seen)}"
    )
