"""A waiting task reads the socket itself (trio, plain TCP): the stream's side and the API's.

``AnyioServices.wait`` lends the reading of a plain TCP stream to the task that waits for a
reply, and the stream's reader task stands aside meanwhile. The first tests drive a
``_Transport`` over a real TCP connection to a peer played by the test; the others check,
against RabbitMQ, that the native API's waits keep their meaning with reading lent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from amqp_asyncio import connect
from amqp_asyncio.native._channel import NativeChannel
from amqp_asyncio.native._connection import NativeConnection
from amqp_asyncio.native._services import _HAND_BACK_DELAY, _Transport
from amqp_asyncio.native._waiter import Latch, Waiter
from amqp_core.transport import READ_SIZE
from tests.read_sizes import record_reads

pytestmark = pytest.mark.anyio

# The lending is trio's (asyncio's protocol callbacks read without a task), and on asyncio
# the socket of an anyio stream belongs to the loop's transport.
_on_trio = pytest.mark.parametrize("anyio_backend", ["trio"])


class _Listener:
    """Records what the transport reports; ``on_data`` may settle waiters or raise."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.readers: list[object] = []
        self.lost: list[BaseException | None] = []
        self.on_data: Callable[[bytes], None] = lambda _data: None
        self.on_lost: Callable[[], None] = lambda: None

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.readers.append(anyio.get_current_task().id)
        self.on_data(data)

    def write_drained(self) -> None:
        pass

    def connection_lost(self, error: BaseException | None) -> None:
        self.lost.append(error)
        self.on_lost()


def _at_once(_delay: float, callback: Callable[[], None]) -> None:
    """A ``call_later`` that calls back at once: the reading is handed back as a wait ends."""
    callback()


@asynccontextmanager
async def _connected(
    call_later: Callable[[float, Callable[[], None]], object] = _at_once,
) -> AsyncIterator[tuple[_Transport, _Listener, anyio.abc.SocketStream]]:
    """A transport on a TCP connection to a peer stream the test controls."""
    server = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = server.extra(anyio.abc.SocketAttribute.local_port)
    async with server:
        client = await anyio.connect_tcp("127.0.0.1", port)
        accepting = server.listeners[0]
        assert isinstance(accepting, anyio.abc.SocketListener)
        peer = await accepting.accept()
        listener = _Listener()
        raw = client.extra(anyio.abc.SocketAttribute.raw_socket)
        transport = _Transport(client, listener, lambda: None, call_later, raw)
        async with peer:
            yield transport, listener, peer


@asynccontextmanager
async def _running(
    call_later: Callable[[float, Callable[[], None]], object] = _at_once,
) -> AsyncIterator[tuple[_Transport, _Listener, anyio.abc.SocketStream, anyio.abc.TaskGroup]]:
    """As :func:`_connected`, with the transport running (ready to lend) until closed at the end."""
    async with (
        _connected(call_later) as (transport, listener, peer),
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(transport.run)
        await _until(transport.lendable)
        yield transport, listener, peer, tg
        transport.close()


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await anyio.sleep(0.005)


@_on_trio
async def test_a_waiting_task_reads_its_own_reply() -> None:
    with anyio.fail_after(10):
        async with _running() as (transport, listener, peer, tg):
            reply: Waiter[bytes] = Waiter()
            listener.on_data = lambda data: reply.set_result(data) if b"reply" in data else None
            me = anyio.get_current_task().id

            answered = anyio.Event()

            async def answer() -> None:
                await anyio.sleep(0.05)
                await peer.send(b"reply")
                answered.set()

            tg.start_soon(answer)
            await transport.read_for(reply)
            assert reply.result() == b"reply"
            assert listener.readers == [me]  # read here, not by the reader task
            # The reader task reads again once the wait is over.
            await answered.wait()
            await peer.send(b"later")
            await _until(lambda: b"later" in listener.received)
            assert listener.readers[-1] != me
        assert listener.lost == [None]


@_on_trio
async def test_settling_elsewhere_wakes_the_reading_task() -> None:
    with anyio.fail_after(10):
        async with _running() as (transport, listener, _peer, tg):
            waiter: Waiter[str] = Waiter()

            async def settle() -> None:
                await anyio.sleep(0.05)
                waiter.set_result("from another task")

            tg.start_soon(settle)
            # No byte ever arrives: only the settling can end this wait.
            await transport.read_for(waiter)
            assert waiter.result() == "from another task"
            assert transport.lendable()
        assert listener.lost == [None]


@_on_trio
async def test_two_waiters_one_reads_for_both() -> None:
    with anyio.fail_after(10):
        async with _running() as (transport, listener, peer, tg):
            first: Waiter[None] = Waiter()
            second: Waiter[None] = Waiter()

            def on_data(_data: bytes) -> None:
                if b"1" in listener.received:
                    first.set_result(None)
                if b"2" in listener.received:
                    second.set_result(None)

            listener.on_data = on_data
            done: list[str] = []

            async def wait(name: str, waiter: Waiter[None]) -> None:
                if transport.lendable():
                    await transport.read_for(waiter)
                await waiter.wait()
                done.append(name)

            tg.start_soon(wait, "first", first)
            tg.start_soon(wait, "second", second)
            await anyio.wait_all_tasks_blocked()
            await peer.send(b"2")
            await _until(lambda: done == ["second"])
            await peer.send(b"1")
            await _until(lambda: len(done) == 2)


@_on_trio
async def test_a_cancelled_reading_task_gives_the_reading_back() -> None:
    with anyio.fail_after(10):
        async with _running() as (transport, listener, peer, _tg):
            with anyio.move_on_after(0.05):
                await transport.read_for(Waiter())
            assert transport.lendable()
            await peer.send(b"after")
            await _until(lambda: b"after" in listener.received)


@_on_trio
async def test_the_peer_closing_while_lent_is_reported_once() -> None:
    with anyio.fail_after(10):
        async with _running() as (transport, listener, peer, tg):
            waiter: Waiter[None] = Waiter()
            listener.on_lost = lambda: waiter.set_error(ConnectionError("lost"))
            tg.start_soon(peer.aclose)
            await transport.read_for(waiter)  # returns on EOF; the reader task reports it
            with pytest.raises(ConnectionError):
                await waiter.wait()
        assert listener.lost == [None]


@_on_trio
async def test_an_error_raised_while_lent_ends_the_stream_task() -> None:
    with anyio.fail_after(10):
        async with _connected() as (transport, listener, peer):

            def on_data(_data: bytes) -> None:
                raise RuntimeError("a callback failed")

            listener.on_data = on_data
            waiter: Waiter[None] = Waiter()

            async def run() -> None:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(transport.run)
                    await _until(transport.lendable)
                    await peer.send(b"boom")
                    await transport.read_for(waiter)  # returns, leaving the error to the task
                    await anyio.sleep(5)  # the task group ends before

            with pytest.raises(Exception) as info:  # noqa: PT011
                await run()
            assert not waiter.done
            assert info.group_contains(RuntimeError, match="a callback failed")


class _Timers:
    """Plays the services' ``call_later`` for a transport: records, runs on demand."""

    def __init__(self) -> None:
        self.due: list[tuple[float, Callable[[], None]]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.due.append((delay, callback))

    def fire(self) -> None:
        due, self.due = self.due, []
        for _delay, callback in due:
            callback()


async def _read_one(
    transport: _Transport, listener: _Listener, peer: anyio.abc.SocketStream, marker: bytes
) -> None:
    """Read in this task until ``marker`` came in; the peer sends it once the task waits."""
    waiter: Waiter[None] = Waiter()
    listener.on_data = lambda _data: (
        waiter.set_result(None) if marker in listener.received else None
    )

    async def send() -> None:
        await anyio.wait_all_tasks_blocked()
        await peer.send(marker)

    async with anyio.create_task_group() as tg:
        tg.start_soon(send)
        await transport.read_for(waiter)
    assert waiter.done


@_on_trio
async def test_the_reader_task_takes_the_reading_back_only_when_the_timer_says() -> None:
    with anyio.fail_after(10):
        timers = _Timers()
        async with _running(timers.call_later) as (transport, listener, peer, _tg):
            me = anyio.get_current_task().id
            await _read_one(transport, listener, peer, b"one")
            # One hand-back is due, after a short delay; the reader task still stands aside.
            assert [delay for delay, _callback in timers.due] == [_HAND_BACK_DELAY]
            await peer.send(b"unread")
            await anyio.sleep(0.05)
            assert b"unread" not in listener.received
            # A task that waits again meanwhile reads on, what was sent meanwhile first.
            await _read_one(transport, listener, peer, b"two")
            assert listener.readers[:2] == [me, me]
            assert set(listener.readers) == {me}
            assert len(timers.due) == 1  # still the one hand-back: none is added per wait
            timers.fire()
            await peer.send(b"three")
            await _until(lambda: b"three" in listener.received)
            assert listener.readers[-1] != me


@_on_trio
async def test_a_hand_back_due_while_a_task_reads_leaves_it_reading() -> None:
    with anyio.fail_after(10):
        timers = _Timers()
        async with _running(timers.call_later) as (transport, listener, peer, _tg):
            await _read_one(transport, listener, peer, b"one")
            waiter: Waiter[None] = Waiter()
            listener.on_data = lambda _data: waiter.set_result(None)

            async def fire_then_answer() -> None:
                await anyio.wait_all_tasks_blocked()
                timers.fire()  # the waiting task is reading: nothing to hand back
                await anyio.wait_all_tasks_blocked()
                assert transport._lent
                await peer.send(b"reply")

            async with anyio.create_task_group() as tg:
                tg.start_soon(fire_then_answer)
                await transport.read_for(waiter)
            assert listener.readers[-1] == anyio.get_current_task().id
            # Its own hand-back, due later, is armed again.
            assert len(timers.due) == 1


@_on_trio
async def test_a_task_waiting_without_reading_has_the_reading_handed_back_at_once() -> None:
    with anyio.fail_after(10):
        timers = _Timers()
        async with _running(timers.call_later) as (transport, listener, peer, _tg):
            await _read_one(transport, listener, peer, b"one")
            # As AnyioServices.expecting_input does for a task about to wait for an unblock.
            transport.plain_waiters += 1
            transport.hand_back()
            await peer.send(b"close-ok")
            await _until(lambda: b"close-ok" in listener.received)
            assert listener.readers[-1] != anyio.get_current_task().id
            # And a borrower done while somebody waits that way hands back at once too.
            await _read_one(transport, listener, peer, b"two")
            await peer.send(b"three")
            await _until(lambda: b"three" in listener.received)
            assert listener.readers[-1] != anyio.get_current_task().id
            timers.fire()


# ------------------------------------------------------------------ against RabbitMQ


@pytest.mark.broker
async def test_a_message_of_a_few_mebibytes_is_read_in_pieces_of_at_most_read_size(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = bytes(range(256)) * (4 * 4096)  # 4 MiB: the broker sends far more than one read
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection, await connection.channel() as channel:
            queue = (await channel.queue_declare("", exclusive=True)).queue
            await channel.basic_publish("", queue, body)
            reads = record_reads(monkeypatch)
            async with channel.consume(queue, auto_ack=True) as messages:
                message = await messages.__anext__()
    assert message.body == body
    assert sum(reads) > len(body)
    assert max(reads) <= READ_SIZE


@pytest.mark.broker
async def test_a_consumer_waiting_on_trio_reads_for_itself(
    amqp_url: str, anyio_backend: str
) -> None:
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection, await connection.channel() as channel:
            queue = (await channel.queue_declare("", exclusive=True)).queue
            lender = connection._services._lender
            if anyio_backend == "trio":
                assert lender is not None
            else:
                assert lender is None  # asyncio: the loop's protocol callbacks read
            seen: list[bool] = []
            async with channel.consume(queue) as messages:

                async def publish() -> None:
                    await anyio.wait_all_tasks_blocked()
                    seen.append(lender is not None and lender._lent)
                    await channel.basic_publish("", queue, b"hello")

                async with anyio.create_task_group() as tg:
                    tg.start_soon(publish)
                    message = await messages.__anext__()
            assert message.body == b"hello"
            assert seen == [anyio_backend == "trio"]


@pytest.mark.broker
async def test_a_consumer_cancelled_by_another_task_stops_waiting(amqp_url: str) -> None:
    with anyio.fail_after(15):
        async with connect(amqp_url) as connection, await connection.channel() as channel:
            queue = (await channel.queue_declare("", exclusive=True)).queue
            consumer = channel.consume(queue)
            await consumer.start()
            got: list[Any] = []

            async def iterate() -> None:
                async for message in consumer:
                    got.append(message)

            async with anyio.create_task_group() as tg:
                tg.start_soon(iterate)
                await anyio.wait_all_tasks_blocked()
                await consumer.cancel()  # its Cancel-Ok ends the iteration
            assert got == []
            # The connection reads on: an RPC and a new consumer still work.
            await channel.basic_publish("", queue, b"after")
            async with channel.consume(queue) as messages:
                message = await messages.__anext__()
            assert message.body == b"after"


@pytest.mark.broker
async def test_many_tasks_waiting_for_replies_at_once(amqp_url: str) -> None:
    with anyio.fail_after(30):
        async with connect(amqp_url) as connection:
            declared: list[str] = []

            async def declare_many(index: int) -> None:
                channel = await connection.channel()
                for round_ in range(20):
                    name = f"reading.{index}.{round_}"
                    result = await channel.queue_declare(name, auto_delete=True)
                    assert result.queue == name
                    await channel.queue_delete(name)
                    declared.append(name)
                await channel.close()

            async with anyio.create_task_group() as tg:
                for index in range(8):
                    tg.start_soon(declare_many, index)
            assert len(declared) == 160


@pytest.mark.broker
async def test_heartbeats_flow_while_a_task_waits_long(amqp_url: str) -> None:
    url = amqp_url + ("&" if "?" in amqp_url else "?") + "heartbeat=1"
    with anyio.fail_after(20):
        async with connect(url) as connection, await connection.channel() as channel:
            queue = (await channel.queue_declare("", exclusive=True)).queue
            async with channel.consume(queue) as messages:
                with anyio.move_on_after(3.5):  # more than three heartbeat intervals
                    await messages.__anext__()
            assert connection.is_open
            assert (await channel.queue_declare(queue, passive=True)).queue == queue


@pytest.mark.broker
@_on_trio
async def test_waits_for_a_close_or_a_confirm_slot_do_not_wait_for_the_hand_back(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were any of these waits to leave the reading to the hand-back, it would take a minute.
    monkeypatch.setattr("amqp_asyncio.native._services._HAND_BACK_DELAY", 60.0)
    with anyio.fail_after(10):
        async with connect(amqp_url) as connection:
            channel = await connection.channel(publisher_confirms=True, max_in_flight=1)
            queue = (await channel.queue_declare("", exclusive=True)).queue
            lender = connection._services._lender
            assert lender is not None

            async def publish(body: bytes) -> None:
                await channel.basic_publish("", queue, body)

            async with anyio.create_task_group() as tg:
                # The second publisher waits for the first one's slot, freed by its confirm.
                for body in (b"a", b"b", b"c"):
                    tg.start_soon(publish, body)
            assert lender._hand_back_due  # the last confirm was read by a waiting task
            # One task alone: it waits for each next slot without reading.
            outcomes = await channel.publish_batch([("", queue, b"d"), ("", queue, b"e")])
            assert [outcome.ok for outcome in outcomes] == [True, True]
            other = await connection.channel()
            closed: list[BaseException | None] = []

            async def watch() -> None:
                closed.append(await other.wait_closed())

            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await anyio.wait_all_tasks_blocked()
                await other.close()
            assert len(closed) == 1  # why: closed by us
            assert (await channel.queue_declare(queue, passive=True)).message_count == 5
            await channel.close()
        assert not connection.is_open


@pytest.mark.broker
@_on_trio
async def test_a_task_closing_a_channel_or_the_connection_reads_the_close_ok_itself(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As for any reply: the reader task reading it and then waking the closing task would
    # cost a scheduling round on every close.
    handled_by: dict[str, object] = {}

    def recording(kind: str, original: Callable[..., None]) -> Callable[..., None]:
        def on_core_close(self: object, *args: object) -> None:
            handled_by[kind] = anyio.get_current_task().id
            original(self, *args)

        return on_core_close

    for kind, owner in (("channel", NativeChannel), ("connection", NativeConnection)):
        monkeypatch.setattr(owner, "_on_core_close", recording(kind, owner._on_core_close))
    me = anyio.get_current_task().id
    with anyio.fail_after(10):
        async with connect(amqp_url) as connection:
            channel = await connection.channel()
            await channel.close()
            assert handled_by == {"channel": me}
            await connection.close()
            assert handled_by == {"channel": me, "connection": me}
            assert (await connection.wait_closed()) is connection.close_reason


async def test_a_latch_lets_every_waiting_task_go_and_forgets_a_cancelled_one() -> None:
    async def wait_for(waiter: Waiter[None]) -> None:
        await waiter.wait()

    latch = Latch(wait_for)

    released: list[str] = []

    async def wait(name: str) -> None:
        await latch.wait()
        released.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait, "first")
            tg.start_soon(wait, "second")
            with anyio.move_on_after(0.01):
                await latch.wait()
            await anyio.wait_all_tasks_blocked()
            assert len(latch._waiters) == 2  # the cancelled wait left nothing behind
            latch.set()
        assert sorted(released) == ["first", "second"]
        assert latch._waiters == []
        await latch.wait()  # it has happened: returns at once
