"""BlockingConnection and BlockingChannel against a real RabbitMQ: pika's surface, one by one."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import amqp_blocking
import amqp_blocking.blocking_connection
from amqp_blocking import BlockingChannel, BlockingConnection
from amqp_core.credentials import PlainCredentials
from amqp_core.exceptions import (
    AMQPConnectionError,
    ChannelClosedByBroker,
    ChannelWrongStateError,
    ConnectionWrongStateError,
    DuplicateConsumerTag,
    ProbableAuthenticationError,
    ReentrancyError,
)
from amqp_core.parameters import ConnectionParameters, URLParameters
from amqp_core.spec import BasicProperties
from amqp_core.transport import READ_SIZE
from tests.read_sizes import record_reads

pytestmark = pytest.mark.timeout(60)


def test_exports() -> None:
    assert amqp_blocking.BlockingConnection is amqp_blocking.blocking_connection.BlockingConnection
    assert amqp_blocking.BlockingChannel is amqp_blocking.blocking_connection.BlockingChannel


def test_publish_example(params: URLParameters) -> None:
    # The seed docs' publish example, in our names.
    with BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.exchange_declare("example", durable=False, auto_delete=True)
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, "example", routing_key="test")
        channel.basic_publish(exchange="example", routing_key="test", body="Test Message")
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        assert body == b"Test Message"
        assert method.routing_key == "test"
    assert connection.is_closed


def test_consume_generator_example(channel: BlockingChannel, queue: str) -> None:
    for i in range(15):
        channel.basic_publish("", queue, f"m{i}")
    channel.basic_qos(prefetch_count=15)
    seen = []
    for method_frame, _properties, body in channel.consume(queue):
        seen.append(body)
        channel.basic_ack(method_frame.delivery_tag)
        if method_frame.delivery_tag == 10:
            break
    # Wait until the five others are buffered, then cancel: they are requeued.
    deadline = time.monotonic() + 10
    while channel.get_waiting_message_count() < 5 and time.monotonic() < deadline:
        channel.connection.process_data_events(0.05)
    assert channel.get_waiting_message_count() == 5
    assert channel.cancel() == 5
    assert seen == [f"m{i}".encode() for i in range(10)]
    # The broker requeues asynchronously: look until the count settles.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        count = channel.queue_declare(queue, passive=True).method.message_count
        if count == 5:
            break
        time.sleep(0.05)
    assert count == 5


def test_consume_inactivity_and_resume(channel: BlockingChannel, queue: str) -> None:
    started = time.monotonic()
    gen = channel.consume(queue, auto_ack=True, inactivity_timeout=0.2)
    assert next(gen) == (None, None, None)
    assert 0.15 <= time.monotonic() - started < 5
    channel.basic_publish("", queue, b"late")
    again = channel.consume(queue, auto_ack=True, inactivity_timeout=5)
    assert next(again)[2] == b"late"
    with pytest.raises(ValueError, match="cancel"):
        next(channel.consume(queue, auto_ack=False))
    assert channel.cancel() == 0
    assert channel.cancel() == 0


def test_basic_consume_start_stop(channel: BlockingChannel, queue: str) -> None:
    for i in range(3):
        channel.basic_publish("", queue, str(i))
    got: list[bytes] = []

    def on_message(ch: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        assert ch is channel
        got.append(body)
        ch.basic_ack(method.delivery_tag)
        if len(got) == 3:
            with pytest.raises(ReentrancyError):
                ch.start_consuming()
            ch.stop_consuming()

    with pytest.raises(ValueError, match="callable"):
        channel.basic_consume(queue, "not callable")  # type: ignore[arg-type]
    tag = channel.basic_consume(queue, on_message, consumer_tag="mine")
    assert tag == "mine"
    assert channel.consumer_tags == ["mine"]
    with pytest.raises(DuplicateConsumerTag):
        channel.basic_consume(queue, on_message, consumer_tag="mine")
    channel.start_consuming()
    assert got == [b"0", b"1", b"2"]
    assert channel.consumer_tags == []
    assert channel.basic_cancel("unknown") == []


def test_basic_cancel_hands_back_auto_ack_messages(
    connection: BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    for i in range(4):
        channel.basic_publish("", queue, str(i))
    tag = channel.basic_consume(queue, lambda *args: None, auto_ack=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # Nothing dispatches (no process_data_events): the deliveries stay buffered.
        if channel.queue_declare(queue, passive=True).method.message_count == 0:
            break
        time.sleep(0.02)
    time.sleep(0.1)
    pending = channel.basic_cancel(tag)
    assert [body for _m, _p, body in pending] == [b"0", b"1", b"2", b"3"]


def test_get_ack_nack_reject_recover(channel: BlockingChannel, queue: str) -> None:
    assert channel.basic_get(queue) == (None, None, None)
    for i in range(3):
        channel.basic_publish("", queue, str(i), BasicProperties(content_type="text/plain"))
    method, props, body = channel.basic_get(queue)
    assert body == b"0"
    assert props.content_type == "text/plain"
    assert method.message_count == 2
    channel.basic_nack(method.delivery_tag, requeue=True)
    method, _p, _b = channel.basic_get(queue)
    channel.basic_reject(method.delivery_tag, requeue=False)
    method, _p, _b = channel.basic_get(queue)
    channel.basic_ack(method.delivery_tag)
    method, _p, _b = channel.basic_get(queue)
    assert channel.basic_recover(requeue=True).method.NAME == "Basic.RecoverOk"
    assert channel.queue_purge(queue).method.message_count >= 0


def test_a_message_of_a_few_mebibytes_is_read_in_pieces_of_at_most_read_size(
    channel: BlockingChannel, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = bytes(range(256)) * (4 * 4096)  # 4 MiB: the broker sends far more than one read
    channel.basic_publish("", queue, body)
    reads = record_reads(monkeypatch)
    _method, _props, received = channel.basic_get(queue, auto_ack=True)
    assert received == body
    assert sum(reads) > len(body)
    assert max(reads) <= READ_SIZE


def test_rpc_return_values(channel: BlockingChannel) -> None:
    ok = channel.queue_declare("blocking-rpc-q", auto_delete=True)
    assert ok.method.queue == "blocking-rpc-q"
    assert ok.method.message_count == 0
    assert ok.method.consumer_count == 0
    assert channel.exchange_declare("blocking-rpc-x", "fanout").method.NAME == (
        "Exchange.DeclareOk"
    )
    assert channel.exchange_declare("blocking-rpc-x2", "fanout").method.NAME.endswith("Ok")
    assert channel.exchange_bind("blocking-rpc-x2", "blocking-rpc-x").method.NAME.endswith("Ok")
    assert channel.exchange_unbind("blocking-rpc-x2", "blocking-rpc-x").method.NAME.endswith(
        "UnbindOk"
    )
    assert channel.queue_bind("blocking-rpc-q", "blocking-rpc-x").method.NAME == "Queue.BindOk"
    assert channel.queue_unbind("blocking-rpc-q", "blocking-rpc-x").method.NAME.endswith("Ok")
    assert channel.queue_delete("blocking-rpc-q").method.message_count == 0
    assert channel.exchange_delete("blocking-rpc-x2").method.NAME == "Exchange.DeleteOk"
    assert channel.exchange_delete("blocking-rpc-x").method.NAME == "Exchange.DeleteOk"
    assert channel.tx_select().method.NAME == "Tx.SelectOk"
    assert channel.tx_commit().method.NAME == "Tx.CommitOk"
    assert channel.tx_rollback().method.NAME == "Tx.RollbackOk"
    assert channel.flow(True) is True
    assert channel.basic_qos(prefetch_count=5).method.NAME == "Basic.QosOk"


def test_channel_404_then_new_channel_works(connection: BlockingConnection) -> None:
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare("blocking-no-such-queue", passive=True)
    assert info.value.reply_code == 404
    assert channel.is_closed
    with pytest.raises(ChannelWrongStateError):
        channel.basic_publish("", "x", b"")
    other = connection.channel()
    assert other.queue_declare("", exclusive=True).method.queue
    assert connection.is_open


def test_channel_406_precondition_failed(connection: BlockingConnection) -> None:
    channel = connection.channel()
    channel.queue_declare("blocking-406", auto_delete=True)
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare("blocking-406", durable=True)
    assert info.value.reply_code == 406
    cleanup = connection.channel()
    cleanup.queue_delete("blocking-406")


def test_channel_close_and_context_manager(connection: BlockingConnection) -> None:
    with connection.channel() as channel:
        number = channel.channel_number
        assert int(channel) == number
        assert channel.connection is connection
        assert channel.is_open
    assert channel.is_closed
    with pytest.raises(ChannelWrongStateError):
        channel.close()


def test_return_callback(connection: BlockingConnection, channel: BlockingChannel) -> None:
    returned: list[bytes] = []
    channel.add_on_return_callback(lambda ch, method, props, body: returned.append(body))
    channel.basic_publish("", "blocking-nowhere", b"lost", mandatory=True)
    deadline = time.monotonic() + 10
    while not returned and time.monotonic() < deadline:
        connection.process_data_events(0.1)
    assert returned == [b"lost"]


def test_broker_cancel_callback(connection: BlockingConnection, channel: BlockingChannel) -> None:
    cancelled: list[str] = []
    channel.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    queue = channel.queue_declare("blocking-cancel-q").method.queue
    tag = channel.basic_consume(queue, lambda *args: None)
    connection.channel().queue_delete(queue)
    channel.start_consuming()  # returns: the broker cancelled the only consumer
    assert cancelled == [tag]
    # The consume() generator ends the same way.
    queue = channel.queue_declare("blocking-cancel-q2").method.queue
    gen = channel.consume(queue, inactivity_timeout=5)
    connection.channel().queue_delete(queue)
    assert list(gen) == []


def test_connection_properties_and_timers(connection: BlockingConnection) -> None:
    assert connection.basic_nack_supported
    assert connection.basic_nack
    assert connection.consumer_cancel_notify_supported
    assert connection.consumer_cancel_notify
    assert connection.exchange_exchange_bindings_supported
    assert connection.publisher_confirms_supported
    assert connection.publisher_confirms
    fired: list[str] = []
    connection.call_later(0.05, lambda: fired.append("a"))
    gone = connection.call_later(0.05, lambda: fired.append("b"))
    connection.remove_timeout(gone)
    started = time.monotonic()
    connection.sleep(0.3)
    assert 0.3 <= time.monotonic() - started < 3
    assert fired == ["a"]
    connection.process_data_events()
    connection.process_data_events(0.01)
    connection.update_secret("guest", "rotation")


def test_add_callback_threadsafe_wakes_waiter(connection: BlockingConnection) -> None:
    ran: list[float] = []

    def hand_over() -> None:
        connection.add_callback_threadsafe(lambda: ran.append(time.monotonic()))

    other = threading.Timer(0.3, hand_over)
    other.start()
    started = time.monotonic()
    connection.process_data_events(time_limit=None)
    other.join()
    assert ran
    assert ran[0] - started < 1.0
    assert time.monotonic() - started < 1.5


def test_ack_from_worker_thread(params: URLParameters) -> None:
    # The seed docs' pattern: the work happens in a thread, the ack goes through
    # add_callback_threadsafe and runs in the consuming thread.
    import functools

    connection = BlockingConnection(params)
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    for i in range(5):
        channel.basic_publish("", queue, str(i))
    acked: list[int] = []
    workers: list[threading.Thread] = []

    def ack_message(ch: BlockingChannel, delivery_tag: int) -> None:
        if ch.is_open:
            ch.basic_ack(delivery_tag)
            acked.append(delivery_tag)
        if len(acked) == 5:
            ch.stop_consuming()

    def do_work(ch: BlockingChannel, delivery_tag: int) -> None:
        time.sleep(0.05)
        connection.add_callback_threadsafe(functools.partial(ack_message, ch, delivery_tag))

    def on_message(ch: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        worker = threading.Thread(target=do_work, args=(ch, method.delivery_tag))
        worker.start()
        workers.append(worker)

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    for worker in workers:
        worker.join()
    assert sorted(acked) == [1, 2, 3, 4, 5]
    assert channel.queue_declare(queue, passive=True).method.message_count == 0
    connection.close()
    with pytest.raises(ConnectionWrongStateError):
        connection.close()
    with pytest.raises(ConnectionWrongStateError):
        connection.add_callback_threadsafe(lambda: None)


def test_open_errors(amqp_url: str, params: URLParameters) -> None:
    bad = URLParameters(amqp_url)
    bad.credentials = PlainCredentials("guest", "wrong")
    with pytest.raises(ProbableAuthenticationError):
        BlockingConnection(bad)
    with pytest.raises(AMQPConnectionError):
        BlockingConnection(ConnectionParameters(host="127.0.0.1", port=1))
    with pytest.raises(ValueError, match="empty"):
        BlockingConnection([])
    # A sequence: the first host refuses, the second works.
    with BlockingConnection([ConnectionParameters(host="127.0.0.1", port=1), params]) as conn:
        assert conn.is_open
