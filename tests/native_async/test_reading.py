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
from amqp_asyncio.native._services import _Transport
from amqp_asyncio.native._waiter import Waiter
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


@asynccontextmanager
async def _connected() -> AsyncIterator[tuple[_Transport, _Listener, anyio.abc.SocketStream]]:
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
        transport = _Transport(client, listener, lambda: None, raw)
        async with peer:
            yield transport, listener, peer


@asynccontextmanager
async def _running() -> AsyncIterator[
    tuple[_Transport, _Listener, anyio.abc.SocketStream, anyio.abc.TaskGroup]
]:
    """As :func:`_connected`, with the transport running (ready to lend) until closed at the end."""
    async with _connected() as (transport, listener, peer), anyio.create_task_group() as tg:
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
