"""The reader role: a user thread that waits reads the socket itself, against a real RabbitMQ.

A thread waiting for a reply, confirms or events reads the connection's socket while no other
thread does, so that the reply is handled without a hand-off from the I/O thread. These tests
check that it does, and that everything the I/O thread did meanwhile still happens: other
waiters get their replies, heartbeats flow, and a close, a drop or a recovery ends the wait.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from amqp_blocking import BlockingConnection, _io
from amqp_core import recovery as rc
from amqp_core.exceptions import (
    ConnectionClosedByBroker,
    ConnectionWrongStateError,
    StreamLostError,
)
from amqp_core.parameters import URLParameters
from tests.blocking.conftest import proxied_url
from tests.blocking.proxy import TCPProxy
from tests.recovery.test_blocking import FAST, params_via
from tools.broker import RabbitMQNode

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count, by thread name, the reads of every blocking connection's socket."""
    counts: Counter[str] = Counter()
    original = _io._SocketTransport.on_readable

    def on_readable(self: _io._SocketTransport) -> None:
        counts[threading.current_thread().name] += 1
        original(self)

    monkeypatch.setattr(_io._SocketTransport, "on_readable", on_readable)
    return counts


def _reader_of(connection: BlockingConnection) -> int | None:
    with connection._lock:
        return connection._io._reader


def _wait_for_reader(connection: BlockingConnection, ident: int | None) -> None:
    """Wait until thread ``ident`` holds the reader role of ``connection``."""
    deadline = time.monotonic() + 5
    while _reader_of(connection) != ident:
        assert time.monotonic() < deadline, "the waiting thread never took the reader role"
        time.sleep(0.01)


def _when_reading(connection: BlockingConnection, action: Callable[[], object]) -> threading.Thread:
    """Start a thread that runs ``action`` once the calling thread holds the reader role."""
    reader = threading.get_ident()

    def run() -> None:
        _wait_for_reader(connection, reader)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_the_waiting_thread_reads_its_replies(params: URLParameters, readers: Counter[str]) -> None:
    counts = readers
    connection = BlockingConnection(params)
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        counts.clear()
        for _ in range(50):
            channel.queue_declare(queue, passive=True)
        me = threading.current_thread().name
        # The I/O thread may win a race now and then, but the replies are read here.
        assert counts[me] >= 40, counts
    finally:
        connection.close()


def test_the_io_thread_reads_again_when_nobody_waits(params: URLParameters) -> None:
    connection = BlockingConnection(params)
    publisher = BlockingConnection(params)
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_consume(queue, lambda *args: None, auto_ack=True)
        for _ in range(20):
            channel.basic_qos(prefetch_count=10)
        # Nobody waits on the connection now: a delivery is still read, by the I/O thread,
        # and queued for the next process_data_events.
        publisher.channel().basic_publish("", queue, b"x")
        deadline = time.monotonic() + 5
        while True:
            with connection._lock:
                if channel._events:
                    break
            assert time.monotonic() < deadline, "the delivery was never read"
            time.sleep(0.01)
        with connection._lock:
            assert not connection._io._read_paused
    finally:
        publisher.close()
        connection.close()


def test_two_threads_waiting_for_replies_both_get_them(
    params: URLParameters, readers: Counter[str]
) -> None:
    counts = readers
    connection = BlockingConnection(params)
    errors: list[BaseException] = []
    done: list[str] = []

    def declare_loop() -> None:
        try:
            channel = connection.channel()
            queue = channel.queue_declare("", exclusive=True).method.queue
            for i in range(300):
                assert channel.queue_declare(queue, passive=True).method.queue == queue
                if i % 50 == 0:
                    channel.basic_publish("", queue, b"x")
            done.append(threading.current_thread().name)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    try:
        threads = [threading.Thread(target=declare_loop, name=f"declarer-{i}") for i in range(3)]
        for thread in threads:
            thread.start()
        # And this thread waits for events meanwhile.
        connection.process_data_events(0.3)
        for thread in threads:
            thread.join(30)
        assert not errors, errors
        assert sorted(done) == ["declarer-0", "declarer-1", "declarer-2"]
        # The declaring threads read at least some of the replies themselves.
        assert sum(n for name, n in counts.items() if name.startswith("declarer-")) > 0, counts
        assert connection.is_open
    finally:
        connection.close()


def test_heartbeats_flow_while_a_thread_waits_as_reader(params: URLParameters) -> None:
    params.heartbeat = 1
    connection = BlockingConnection(params)
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        me = threading.get_ident()
        seen: list[int | None] = []
        spy = threading.Timer(1.0, lambda: seen.append(_reader_of(connection)))
        spy.start()
        # Four heartbeat intervals with nothing arriving but heartbeats: the broker's must be
        # read (or this side gives up after two) and ours sent (or the broker does).
        connection.process_data_events(4.0)
        spy.join()
        assert seen == [me]
        assert connection.is_open
        messages = channel.consume(queue, inactivity_timeout=4.0)
        assert next(messages) == (None, None, None)
        assert connection.is_open
        assert channel.queue_declare(queue, passive=True).method.queue == queue
        channel.cancel()
    finally:
        connection.close()


def test_a_close_from_another_thread_ends_the_readers_wait(params: URLParameters) -> None:
    connection = BlockingConnection(params)
    connection.channel()
    closer = _when_reading(connection, connection.close)
    started = time.monotonic()
    with pytest.raises(ConnectionWrongStateError):  # noqa: PT012
        while True:
            # The channel's closing ends one wait (its callbacks run), the connection's the next.
            connection.process_data_events(None)
    assert time.monotonic() - started < 5
    closer.join(10)
    assert not closer.is_alive()
    assert connection.is_closed


def test_a_broker_close_ends_the_readers_wait(
    params: URLParameters, rabbitmq: RabbitMQNode | None
) -> None:
    assert rabbitmq is not None, "this test needs the throwaway node (rabbitmqctl)"
    connection = BlockingConnection(params)
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    closer = _when_reading(
        connection, lambda: rabbitmq.rabbitmqctl("close_all_connections", "test")
    )
    with pytest.raises(ConnectionClosedByBroker):
        for _message in channel.consume(queue):
            pass
    closer.join(30)
    assert connection.is_closed


def test_a_dropped_connection_ends_the_readers_wait(amqp_url: str, proxy: TCPProxy) -> None:
    connection = BlockingConnection(URLParameters(proxied_url(amqp_url, proxy)))
    channel = connection.channel()
    channel.queue_declare("", exclusive=True)
    cutter = _when_reading(connection, proxy.cut)
    started = time.monotonic()
    with pytest.raises(StreamLostError):
        connection.process_data_events(None)
    assert time.monotonic() - started < 5
    cutter.join(10)
    assert connection.is_closed


def test_a_reader_waits_across_a_recovery(amqp_url: str, proxy: TCPProxy) -> None:
    connection = BlockingConnection(params_via(amqp_url, proxy.port, FAST))
    events: list[object] = []
    connection.add_recovery_listener(lambda _c, event: events.append(event))
    try:
        channel = connection.channel()
        queue = channel.queue_declare("blocking-reader-recovery", auto_delete=True).method.queue
        channel.queue_purge(queue)

        def cut_then_publish() -> None:
            proxy.cut()
            # Published by another connection once the consumer is back.
            deadline = time.monotonic() + 20
            while not any(isinstance(e, rc.Recovered) for e in events):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            other = BlockingConnection(URLParameters(amqp_url))
            other.channel().basic_publish("", queue, b"after")
            other.close()

        helper = _when_reading(connection, cut_then_publish)
        bodies = []
        for method, _props, body in channel.consume(queue, inactivity_timeout=0.5):
            if method is not None:
                bodies.append(body)
                channel.basic_ack(method.delivery_tag)
                break
        helper.join(30)
        assert bodies == [b"after"]
        assert connection.is_open
        channel.cancel()
    finally:
        connection.close()


def test_a_recovery_begun_by_the_reader_resolves_aside(
    amqp_url: str, proxy: TCPProxy, resolver_threads: list[str]
) -> None:
    # No delay before the first attempt: the reader that reads the end of the stream runs it.
    policy = rc.RecoveryPolicy(initial_delay=0, max_delay=0.1, max_duration=30)
    connection = BlockingConnection(params_via(amqp_url, proxy.port, policy))
    events: list[object] = []
    connection.add_recovery_listener(lambda _c, event: events.append(event))
    resolver_threads.clear()  # the first connect's, in this thread
    try:
        connection.channel()
        cutter = _when_reading(connection, proxy.cut)
        deadline = time.monotonic() + 20
        while not any(isinstance(e, rc.Recovered) for e in events):
            assert time.monotonic() < deadline, events
            connection.process_data_events(0.5)
        cutter.join(10)
        # A resolver that hangs must not hold up a user thread (nor, through the lock, all).
        assert resolver_threads, "the recovery never resolved the host"
        assert threading.current_thread().name not in resolver_threads, resolver_threads
        assert connection.is_open
    finally:
        connection.close()
