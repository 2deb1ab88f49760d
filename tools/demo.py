"""The demo: publish and consume a batch of messages through every adapter that exists.

With no ``AMQP_URL`` in the environment it starts a throwaway RabbitMQ (:mod:`tools.broker`)
and stops it at the end. For each adapter it opens a connection, declares a private queue,
publishes ``--count`` messages with publisher confirms, consumes them all back with acks, and
prints what it did and how fast.

Run it with ``hatch run demo`` (``--count``, ``--size``, ``--adapter`` to narrow it down).

Adding an adapter: write a function ``(url, count, size) -> Result`` and add it to
:data:`ADAPTERS`. The callback-style adapters share :class:`_CallbackRun` and differ only in
how they run their loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from amqp_core.channel import Channel
from amqp_core.connection import Connection
from amqp_core.parameters import URLParameters

__all__ = ("ADAPTERS", "Result", "main")

_TIMEOUT = 120.0


@dataclass
class Result:
    """What one adapter did, and how long each half took."""

    adapter: str
    count: int
    size: int
    publish_seconds: float
    consume_seconds: float
    confirmed: int
    consumed: int

    def lines(self) -> list[str]:
        """Human-readable report lines."""

        def rate(seconds: float) -> str:
            return f"{self.count / seconds:,.0f} msg/s" if seconds > 0 else "n/a"

        return [
            f"{self.adapter}: published {self.count} messages of {self.size} bytes with "
            f"confirms in {self.publish_seconds:.3f} s ({rate(self.publish_seconds)}), "
            f"{self.confirmed} confirmed",
            f"{self.adapter}: consumed and acked {self.consumed} messages in "
            f"{self.consume_seconds:.3f} s ({rate(self.consume_seconds)})",
        ]


class _CallbackRun:
    """The demo's steps on a callback-style connection; ``stop`` ends the adapter's loop."""

    def __init__(self, adapter: str, count: int, size: int, stop: Callable[[], None]) -> None:
        self.adapter = adapter
        self.count = count
        self.body = b"x" * size
        self.stop = stop
        self.error: BaseException | None = None
        self.channel: Channel | None = None
        self.queue = ""
        self.confirmed = 0
        self.consumed = 0
        self.marks: list[float] = []

    def on_open(self, connection: Connection) -> None:
        connection.channel(on_open_callback=self.on_channel)

    def on_open_error(self, connection: Connection, error: BaseException) -> None:
        self.error = error
        self.stop()

    def on_close(self, connection: Connection, reason: BaseException) -> None:
        if self.consumed < self.count and self.error is None:
            self.error = reason
        self.stop()

    def on_channel(self, channel: Channel) -> None:
        self.channel = channel
        channel.queue_declare("", exclusive=True, callback=self.on_declared)

    def on_declared(self, frame: Any) -> None:
        assert self.channel is not None
        self.queue = frame.method.queue
        self.channel.confirm_delivery(self.on_confirm, callback=self.on_confirming)

    def on_confirming(self, frame: Any) -> None:
        assert self.channel is not None
        self.marks.append(time.perf_counter())
        for _ in range(self.count):
            self.channel.basic_publish("", self.queue, self.body)

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        if type(method).__name__ != "Ack":
            self.error = RuntimeError(f"the broker refused a message: {method!r}")
            self.channel.connection.close()  # type: ignore[union-attr]
            return
        self.confirmed = method.delivery_tag if method.multiple else self.confirmed + 1
        if self.confirmed == self.count:
            self.marks.append(time.perf_counter())
            assert self.channel is not None
            self.channel.basic_qos(prefetch_count=1000, callback=self.on_qos)

    def on_qos(self, frame: Any) -> None:
        assert self.channel is not None
        self.marks.append(time.perf_counter())
        self.channel.basic_consume(self.queue, self.on_message)

    def on_message(self, channel: Channel, method: Any, properties: Any, body: bytes) -> None:
        self.consumed += 1
        if self.consumed % 100 == 0 or self.consumed == self.count:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if self.consumed == self.count:
            self.marks.append(time.perf_counter())
            channel.connection.close()

    def result(self) -> Result:
        if self.error is not None:
            raise self.error
        if len(self.marks) != 4:
            raise TimeoutError(f"{self.adapter}: the demo did not finish in {_TIMEOUT} s")
        return Result(
            adapter=self.adapter,
            count=self.count,
            size=len(self.body),
            publish_seconds=self.marks[1] - self.marks[0],
            consume_seconds=self.marks[3] - self.marks[2],
            confirmed=self.confirmed,
            consumed=self.consumed,
        )


def run_select(url: str, count: int, size: int) -> Result:
    """The demo on amqp_select.SelectConnection."""
    from amqp_select import IOLoop, SelectConnection

    loop = IOLoop()
    run = _CallbackRun(f"select ({loop.poller_type})", count, size, loop.stop)
    try:
        SelectConnection(
            URLParameters(url), run.on_open, run.on_open_error, run.on_close, custom_ioloop=loop
        )
        guard = loop.call_later(_TIMEOUT, loop.stop)
        loop.start()
        loop.remove_timeout(guard)
    finally:
        loop.close()
    return run.result()


def run_asyncio(url: str, count: int, size: int) -> Result:
    """The demo on amqp_asyncio.AsyncioConnection."""
    from amqp_asyncio import AsyncioConnection

    async def go() -> Result:
        finished = asyncio.get_running_loop().create_future()

        def stop() -> None:
            if not finished.done():
                finished.set_result(None)

        run = _CallbackRun("asyncio", count, size, stop)
        AsyncioConnection(URLParameters(url), run.on_open, run.on_open_error, run.on_close)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(finished, _TIMEOUT)
        return run.result()

    return asyncio.run(go())


def run_tornado(url: str, count: int, size: int) -> Result:
    """The demo on amqp_tornado.TornadoConnection, on an IOLoop of its own."""
    from tornado.ioloop import IOLoop as TornadoIOLoop

    from amqp_tornado import TornadoConnection

    loop = TornadoIOLoop(make_current=False)
    run = _CallbackRun("tornado", count, size, loop.stop)
    try:
        TornadoConnection(
            URLParameters(url), run.on_open, run.on_open_error, run.on_close, custom_ioloop=loop
        )
        guard = loop.call_later(_TIMEOUT, loop.stop)
        loop.start()
        loop.remove_timeout(guard)
    finally:
        loop.close()
    return run.result()


def run_gevent(url: str, count: int, size: int) -> Result:
    """The demo on amqp_gevent.GeventConnection; this greenlet waits while the hub runs."""
    import gevent.event

    from amqp_gevent import GeventConnection

    finished = gevent.event.Event()
    run = _CallbackRun("gevent", count, size, finished.set)
    GeventConnection(URLParameters(url), run.on_open, run.on_open_error, run.on_close)
    finished.wait(_TIMEOUT)
    gevent.sleep(0.01)  # let the connection's greenlets finish closing
    return run.result()


def run_blocking(url: str, count: int, size: int) -> Result:
    """The demo on amqp_blocking.BlockingConnection, confirming with ``publish_batch``."""
    from amqp_blocking import BlockingConnection

    body = b"x" * size
    with BlockingConnection(URLParameters(url)) as connection:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        started = time.perf_counter()
        outcomes = channel.publish_batch(("", queue, body) for _ in range(count))
        published = time.perf_counter()
        failed = [outcome for outcome in outcomes if not outcome.ok]
        if failed:
            raise RuntimeError(f"blocking: {len(failed)} messages were not confirmed")
        channel.basic_qos(prefetch_count=1000)
        consumed = 0
        consuming = time.perf_counter()
        for method, _properties, _body in channel.consume(queue, inactivity_timeout=_TIMEOUT):
            if method is None:
                raise TimeoutError(f"blocking: no message for {_TIMEOUT} s")
            consumed += 1
            if consumed % 100 == 0 or consumed == count:
                channel.basic_ack(method.delivery_tag, multiple=True)
            if consumed == count:
                break
        done = time.perf_counter()
        channel.cancel()
    return Result("blocking", count, size, published - started, done - consuming, count, consumed)


def _run_native(backend: str, url: str, count: int, size: int) -> Result:
    """The demo on the native async API, on ``backend`` ("asyncio" or "trio")."""
    import anyio

    from amqp_asyncio import connect

    body = b"x" * size

    async def publisher(channel: Any, queue: str, first: int, step: int) -> None:
        for _ in range(first, count, step):
            await channel.basic_publish("", queue, body)

    async def go() -> Result:
        with anyio.fail_after(_TIMEOUT):
            async with connect(URLParameters(url)) as connection:
                channel = await connection.channel(publisher_confirms=True)
                queue = (await channel.queue_declare("", exclusive=True)).queue
                started = time.perf_counter()
                # Publishes return once confirmed; 50 tasks keep many of them in flight.
                async with anyio.create_task_group() as tasks:
                    for first in range(50):
                        tasks.start_soon(publisher, channel, queue, first, 50)
                published = time.perf_counter()
                await channel.basic_qos(prefetch_count=1000)
                consumed = 0
                consuming = time.perf_counter()
                async with channel.consume(queue) as messages:
                    async for message in messages:
                        consumed += 1
                        if consumed % 100 == 0 or consumed == count:
                            await message.ack(multiple=True)
                        if consumed == count:
                            break
                done = time.perf_counter()
        return Result(
            f"native-{backend}",
            count,
            size,
            published - started,
            done - consuming,
            count,
            consumed,
        )

    result: Result = anyio.run(go, backend=backend)
    return result


def run_native_asyncio(url: str, count: int, size: int) -> Result:
    """The demo on the native async API over asyncio."""
    return _run_native("asyncio", url, count, size)


def run_native_trio(url: str, count: int, size: int) -> Result:
    """The demo on the native async API over trio."""
    return _run_native("trio", url, count, size)


#: Every adapter the demo runs, in order. Twisted is left out: its reactor runs once per
#: process (examples/twisted_consumer.py shows it).
ADAPTERS: dict[str, Callable[[str, int, int], Result]] = {
    "blocking": run_blocking,
    "select": run_select,
    "asyncio": run_asyncio,
    "native-asyncio": run_native_asyncio,
    "native-trio": run_native_trio,
    "tornado": run_tornado,
    "gevent": run_gevent,
}


@contextlib.contextmanager
def _broker_url() -> Iterator[str]:
    url = os.environ.get("AMQP_URL")
    if url:
        print("using the broker at $AMQP_URL")
        yield url
        return
    from tools.broker import RabbitMQNode

    print("AMQP_URL is not set: starting a throwaway RabbitMQ ...", flush=True)
    started = time.monotonic()
    with RabbitMQNode() as node:
        print(f"RabbitMQ is up on 127.0.0.1:{node.amqp_port} ({time.monotonic() - started:.1f} s)")
        yield node.url
        print("stopping RabbitMQ ...", flush=True)
    print("RabbitMQ stopped and removed")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the exit status."""
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="messages per adapter")
    parser.add_argument("--size", type=int, default=100, help="bytes per message body")
    parser.add_argument(
        "--adapter", action="append", choices=list(ADAPTERS), help="run only these adapters"
    )
    args = parser.parse_args(argv)
    chosen = args.adapter or list(ADAPTERS)
    failures = 0
    with _broker_url() as url:
        for name in chosen:
            try:
                result = ADAPTERS[name](url, args.count, args.size)
            except Exception as exc:
                failures += 1
                print(f"{name}: FAILED: {exc!r}")
                continue
            for line in result.lines():
                print(line, flush=True)
    print("demo finished" + (f" with {failures} failure(s)" if failures else ": all adapters OK"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
