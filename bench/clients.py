"""Every client's side of every benchmark scenario, and the worker that runs one of them.

The benchmark (:mod:`bench.run`) runs each (client, scenario) in a fresh interpreter:
``python -m bench.clients '<json job>'``. The worker runs the scenario once, then prints one
JSON line with its figure and the process's peak RSS (``resource.getrusage``), so one client's
memory never shows up in another's figure.

The clients come in families that share one scenario script each, because the libraries share
pika's API: the blocking family (amqp_blocking, pika's BlockingConnection), the callback family
(amqp_select, amqp_asyncio's AsyncioConnection, amqp_tornado, amqp_gevent, pika's
SelectConnection; they differ only in how their loop is started and stopped), the native async
API (on asyncio and on trio), twisted's Deferred API, and the raw socket of :mod:`bench.raw`.

Scenarios (the job's ``scenario``):

* ``publish``: publish ``n`` messages of ``size`` bytes without confirms; the clock stops when a
  separate connection sees all ``n`` in the queue (passive declares, every 2 ms).
* ``confirm``: publish ``n`` messages with confirms in the library's fastest mode; the clock
  stops when the last one is confirmed.
* ``consume``: consume ``n`` messages (already queued) with prefetch 1000, acking every 100th
  with ``multiple``; the clock stops at the last delivery.
* ``rpc``: ``n`` request/reply round trips through two queues, answered by a raw responder.
* ``connect``: ``n`` times open a connection and a channel and close them.
* ``blocked``: publish up to ``n`` messages while the broker blocks the connection; after
  ``seconds`` report how many publishes were taken and the peak RSS. Our callback-style and
  Twisted clients follow the documented pattern (publish until ``OutputBufferFullError``,
  resume from the output-drained callback), so they stop at ``max_unsent_bytes``; pika's
  clients buffer every message.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

# Nothing here imports amqp_core or more of the standard library than a client needs: every
# module this worker loads counts in the peak RSS of the client it measures. So bench.raw (which
# encodes with amqp_core) is imported by the few functions that use it, and medians are taken
# without ``statistics`` (which loads decimal, fractions and random).

__all__ = ("CLIENTS", "run_job")

_TIMEOUT = 300.0
# How many samples of this job were warm-up (run first, not counted); set by run_job.
_WARMUP = [0]


class DepthPoller:
    """Watch a queue's depth from a process of its own; note when the queue is full.

    A process, not a thread of the worker: a thread would take the GIL from the publisher it
    times, and would load amqp_core (``bench.raw``'s codec) into the process whose peak RSS
    is measured. The poller's ``time.monotonic()`` is the same system-wide clock as ours.
    """

    def __init__(self, url: str, queue: str, count: int) -> None:
        import subprocess

        self.end = 0.0
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.raw", "wait-for-depth", url, queue, str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        # The clock starts once the poller is connected.
        if self._process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the depth poller did not start: {self._process.wait()}")

    def is_done(self) -> bool:
        """Whether the queue has been seen full (then ``end`` is when)."""
        if self._process.poll() is None:
            return False
        self._collect()
        return True

    def wait(self) -> None:
        """Wait until the queue has been seen full."""
        self._process.wait(_TIMEOUT)
        self._collect()

    def _collect(self) -> None:
        assert self._process.stdout is not None
        answer = self._process.stdout.read().strip()
        if self._process.returncode != 0 or not answer:
            raise RuntimeError(f"the depth poller failed ({self._process.returncode})")
        self.end = float(answer)


def _rate(n: int, seconds: float) -> dict[str, Any]:
    return {"value": n / seconds, "unit": "msg/s", "seconds": seconds}


def _median(ordered: list[float]) -> float:
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _latency(samples: list[float]) -> dict[str, Any]:
    samples = sorted(samples[_WARMUP[0] :])
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return {"value": _median(samples) * 1e6, "unit": "us", "p99": p99 * 1e6}


def _connect_result(samples: list[float]) -> dict[str, Any]:
    return {"value": _median(sorted(samples[_WARMUP[0] :])) * 1e3, "unit": "ms"}


# ---------------------------------------------------------------------------------------------
# The blocking family
# ---------------------------------------------------------------------------------------------


def _blocking(lib: Any, fast_confirms: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def run(job: dict[str, Any]) -> dict[str, Any]:
        url, queue, n, scenario = job["url"], job["queue"], job["n"], job["scenario"]
        body = b"x" * job["size"]
        params = lib.URLParameters(url)
        if scenario == "connect":
            samples = []
            for _ in range(n):
                start = time.perf_counter()
                connection = lib.BlockingConnection(params)
                connection.channel()
                connection.close()
                samples.append(time.perf_counter() - start)
            return _connect_result(samples)
        connection = lib.BlockingConnection(params)
        channel = connection.channel()
        if scenario == "publish":
            poller = DepthPoller(url, queue, n)
            start = time.monotonic()
            for _ in range(n):
                channel.basic_publish("", queue, body)
            while not poller.is_done():
                connection.process_data_events(0.002)
            result = _rate(n, poller.end - start)
        elif scenario == "confirm":
            if fast_confirms:
                batch = [("", queue, body)] * n
                start = time.monotonic()
                outcomes = channel.publish_batch(batch)
                end = time.monotonic()
                assert all(outcome.ok for outcome in outcomes)
            else:
                channel.confirm_delivery()
                start = time.monotonic()
                for _ in range(n):
                    channel.basic_publish("", queue, body)
                end = time.monotonic()
            result = _rate(n, end - start)
        elif scenario == "consume":
            channel.basic_qos(prefetch_count=1000)
            seen = [0]

            def on_message(ch: Any, method: Any, _properties: Any, _body: bytes) -> None:
                seen[0] += 1
                count = seen[0]
                if count % 100 == 0 or count == n:
                    ch.basic_ack(method.delivery_tag, multiple=True)
                if count == n:
                    ch.stop_consuming()

            start = time.monotonic()
            channel.basic_consume(queue, on_message)
            channel.start_consuming()
            result = _rate(n, time.monotonic() - start)
        elif scenario == "rpc":
            got = [0]

            def on_reply(_ch: Any, _method: Any, _properties: Any, _body: bytes) -> None:
                got[0] += 1

            channel.basic_consume(job["replies"], on_reply, auto_ack=True)
            samples = []
            for i in range(n):
                start = time.perf_counter()
                channel.basic_publish("", queue, body)
                while got[0] <= i:
                    connection.process_data_events(None)
                samples.append(time.perf_counter() - start)
            result = _latency(samples)
        elif scenario == "blocked":
            _blocked_watchdog(job)
            for i in range(n):
                channel.basic_publish("", queue, body)
                _PROGRESS[0] = i + 1
            time.sleep(_TIMEOUT)
            raise AssertionError("unreachable: the watchdog ends the process")
        else:
            raise ValueError(scenario)
        connection.close()
        return result

    return run


# ---------------------------------------------------------------------------------------------
# The callback family
# ---------------------------------------------------------------------------------------------


class _Loop:
    """How one callback-style library's connection is made, and its loop run and stopped."""

    def __init__(
        self,
        connect: Callable[..., Any],
        start: Callable[[], None],
        stop: Callable[[], None],
        call_later: Callable[[float, Callable[[], None]], Any],
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self.connect = connect
        self.start = start
        self.stop = stop
        self.call_later = call_later
        self.close = close


def _callback(
    make_loop: Callable[[], _Loop], lib: Any
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def run(job: dict[str, Any]) -> dict[str, Any]:
        loop = make_loop()
        script = _CallbackScript(job, loop, lib)
        script.begin()
        guard = loop.call_later(_TIMEOUT, loop.stop)
        del guard
        loop.start()
        loop.close()
        if script.error is not None:
            raise script.error
        if script.result is None:
            raise RuntimeError(f"{job['client']} {job['scenario']}: did not finish")
        return script.result

    return run


class _CallbackScript:
    """One scenario as a chain of callbacks, on pika's callback API."""

    def __init__(self, job: dict[str, Any], loop: _Loop, lib: Any) -> None:
        self.job = job
        self.loop = loop
        self.lib = lib
        self.n: int = job["n"]
        self.queue: str = job["queue"]
        self.body = b"x" * job["size"]
        self.scenario: str = job["scenario"]
        self.params = lib.URLParameters(job["url"])
        self.connection: Any = None
        self.channel: Any = None
        self.error: BaseException | None = None
        self.result: dict[str, Any] | None = None
        self.count = 0
        self.start = 0.0
        self.samples: list[float] = []
        self.poller: DepthPoller | None = None

    def begin(self) -> None:
        self.start = time.perf_counter()
        self.connection = self.loop.connect(
            self.params, self.on_open, self.on_open_error, self.on_close
        )

    def finish(self, result: dict[str, Any]) -> None:
        self.result = result
        self.connection.close()

    def on_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self.on_channel)

    def on_open_error(self, _connection: Any, error: BaseException) -> None:
        self.error = error if isinstance(error, BaseException) else RuntimeError(str(error))
        self.loop.stop()

    def on_close(self, _connection: Any, reason: BaseException) -> None:
        if self.scenario == "connect" and self.error is None:
            self.samples.append(time.perf_counter() - self.start)
            if len(self.samples) < self.n:
                self.begin()
                return
            self.result = _connect_result(self.samples)
        if self.result is None and self.error is None:
            self.error = reason
        self.loop.stop()

    def on_channel(self, channel: Any) -> None:
        self.channel = channel
        scenario = self.scenario
        if scenario == "connect":
            self.connection.close()
        elif scenario == "publish":
            self.poller = DepthPoller(self.job["url"], self.queue, self.n)
            start = time.monotonic()
            publish = channel.basic_publish
            queue, body = self.queue, self.body
            for _ in range(self.n):
                publish("", queue, body)
            self.start = start
            self.loop.call_later(0.002, self.check_depth)
        elif scenario == "confirm":
            channel.confirm_delivery(self.on_confirm, callback=self.on_confirming)
        elif scenario == "consume":
            channel.basic_qos(prefetch_count=1000, callback=self.on_qos)
        elif scenario == "rpc":
            channel.basic_consume(
                self.job["replies"], self.on_reply, auto_ack=True, callback=self.on_reply_consumer
            )
        elif scenario == "blocked":
            _blocked_watchdog(self.job)
            if hasattr(self.connection, "add_on_output_drained_callback"):
                # Ours: publish until refused, go on when the output has drained.
                self.connection.add_on_output_drained_callback(self.publish_until_full)
                self.publish_until_full(self.connection)
            else:
                publish = channel.basic_publish
                queue, body = self.queue, self.body
                for i in range(self.n):
                    publish("", queue, body)
                    _PROGRESS[0] = i + 1
        else:
            raise ValueError(scenario)

    def publish_until_full(self, _connection: Any) -> None:
        from amqp_core.exceptions import OutputBufferFullError

        publish = self.channel.basic_publish
        queue, body = self.queue, self.body
        try:
            for i in range(_PROGRESS[0], self.n):
                publish("", queue, body)
                _PROGRESS[0] = i + 1
        except OutputBufferFullError:
            return  # the output-drained callback calls again

    def check_depth(self) -> None:
        assert self.poller is not None
        if self.poller.is_done():
            self.finish(_rate(self.n, self.poller.end - self.start))
        else:
            self.loop.call_later(0.002, self.check_depth)

    def on_confirming(self, _frame: Any) -> None:
        self.start = time.monotonic()
        publish = self.channel.basic_publish
        queue, body = self.queue, self.body
        for _ in range(self.n):
            publish("", queue, body)

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        if type(method).__name__ != "Ack":
            self.error = RuntimeError(f"nacked: {method!r}")
            self.connection.close()
            return
        self.count = method.delivery_tag if method.multiple else self.count + 1
        if self.count == self.n:
            self.finish(_rate(self.n, time.monotonic() - self.start))

    def on_qos(self, _frame: Any) -> None:
        self.start = time.monotonic()
        self.channel.basic_consume(self.queue, self.on_message)

    def on_message(self, channel: Any, method: Any, _properties: Any, _body: bytes) -> None:
        self.count += 1
        count = self.count
        if count % 100 == 0 or count == self.n:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if count == self.n:
            self.finish(_rate(self.n, time.monotonic() - self.start))

    def on_reply_consumer(self, _frame: Any) -> None:
        self.start = time.perf_counter()
        self.channel.basic_publish("", self.queue, self.body)

    def on_reply(self, channel: Any, _method: Any, _properties: Any, _body: bytes) -> None:
        now = time.perf_counter()
        self.samples.append(now - self.start)
        if len(self.samples) == self.n:
            self.finish(_latency(self.samples))
            return
        self.start = time.perf_counter()
        channel.basic_publish("", self.queue, self.body)


def _select_loop(module: Any) -> Callable[[], _Loop]:
    def make() -> _Loop:
        ioloop = module.IOLoop()

        def connect(*args: Any) -> Any:
            return module.SelectConnection(*args, custom_ioloop=ioloop)

        return _Loop(connect, ioloop.start, ioloop.stop, ioloop.call_later)

    return make


def _asyncio_loop(connection_class: Callable[[], Any]) -> Callable[[], _Loop]:
    def make() -> _Loop:
        import asyncio

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        cls = connection_class()

        def connect(*args: Any) -> Any:
            return cls(*args, custom_ioloop=loop)

        return _Loop(connect, loop.run_forever, loop.stop, loop.call_later, loop.close)

    return make


def _tornado_loop(connection_class: Callable[[], Any]) -> Callable[[], _Loop]:
    def make() -> _Loop:
        from tornado.ioloop import IOLoop

        ioloop = IOLoop.current()
        cls = connection_class()

        def connect(*args: Any) -> Any:
            return cls(*args, custom_ioloop=ioloop)

        return _Loop(connect, ioloop.start, ioloop.stop, ioloop.call_later)

    return make


def _gevent_loop() -> _Loop:
    from amqp_gevent import GeventConnection
    from amqp_gevent.io_services import GeventIOServices

    # One services object (the hub's loop) for every connection the scenario opens.
    services = GeventIOServices(None)

    def connect(*args: Any) -> Any:
        return GeventConnection(*args, custom_ioloop=services)  # type: ignore[misc]

    return _Loop(connect, services.start, services.stop, services.call_later)


def _pika_gevent_loop() -> _Loop:
    import gevent
    from pika.adapters.gevent_connection import GeventConnection

    stop = gevent.event.Event()

    def connect(*args: Any) -> Any:
        return GeventConnection(*args)

    def call_later(delay: float, callback: Callable[[], None]) -> Any:
        return gevent.spawn_later(delay, callback)

    # pika's gevent adapter runs in the hub; the scenario's callbacks run there until stopped.
    return _Loop(connect, stop.wait, stop.set, call_later)


# ---------------------------------------------------------------------------------------------
# The native async API (anyio: asyncio and trio)
# ---------------------------------------------------------------------------------------------


def _native(backend: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def run(job: dict[str, Any]) -> dict[str, Any]:
        import anyio

        result: dict[str, Any] = {}

        async def main() -> None:
            result.update(await _native_scenario(job))

        anyio.run(main, backend=backend)
        return result

    return run


async def _native_scenario(job: dict[str, Any]) -> dict[str, Any]:
    import anyio

    from amqp_asyncio import connect

    url, queue, n, scenario = job["url"], job["queue"], job["n"], job["scenario"]
    body = b"x" * job["size"]
    if scenario == "connect":
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            async with connect(url) as connection, await connection.channel():
                pass
            samples.append(time.perf_counter() - start)
        return _connect_result(samples)
    async with connect(url) as connection:
        if scenario == "publish":
            channel = await connection.channel()
            poller = DepthPoller(url, queue, n)
            start = time.monotonic()
            publish = channel.basic_publish
            for _ in range(n):
                await publish("", queue, body)
            while not poller.is_done():
                await anyio.sleep(0.002)
            return _rate(n, poller.end - start)
        if scenario == "confirm":
            # The fastest documented way: publish_batch, with up to ``max_in_flight``
            # messages awaiting their confirm.
            channel = await connection.channel(publisher_confirms=True, max_in_flight=1000)
            start = time.monotonic()
            outcomes = await channel.publish_batch([("", queue, body)] * n)
            end = time.monotonic()
            assert all(outcome.ok for outcome in outcomes)
            return _rate(n, end - start)
        if scenario == "consume":
            channel = await connection.channel()
            await channel.basic_qos(prefetch_count=1000)
            count = 0
            start = time.monotonic()
            async with channel.consume(queue) as messages:
                async for message in messages:
                    count += 1
                    if count % 100 == 0 or count == n:
                        await message.ack(multiple=True)
                    if count == n:
                        break
            return _rate(n, time.monotonic() - start)
        if scenario == "rpc":
            channel = await connection.channel()
            samples = []
            async with channel.consume(job["replies"], auto_ack=True) as replies:
                for _ in range(n):
                    start = time.perf_counter()
                    await channel.basic_publish("", queue, body)
                    await replies.__anext__()
                    samples.append(time.perf_counter() - start)
            return _latency(samples)
        if scenario == "blocked":
            channel = await connection.channel()
            _blocked_watchdog(job)
            for i in range(n):
                await channel.basic_publish("", queue, body)
                _PROGRESS[0] = i + 1
            await anyio.sleep(_TIMEOUT)
        raise ValueError(scenario)


# ---------------------------------------------------------------------------------------------
# Twisted (Deferred API)
# ---------------------------------------------------------------------------------------------


def _on_reactor(
    scenario: Callable[[Any, dict[str, Any]], Any], job: dict[str, Any]
) -> dict[str, Any]:
    """Run ``scenario(reactor, job)`` (a Deferred of the result) on the reactor until it ends."""
    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    outcome: list[Any] = []

    def finish(value: Any) -> None:
        outcome.append(value)
        reactor.stop()

    scenario(reactor, job).addBoth(finish)
    reactor.run()
    if not outcome:
        raise RuntimeError(f"{job['client']} {job['scenario']}: did not finish")
    if not isinstance(outcome[0], dict):
        outcome[0].raiseException()  # a twisted Failure
    result: dict[str, Any] = outcome[0]
    return result


def _twisted(job: dict[str, Any]) -> dict[str, Any]:
    return _on_reactor(_twisted_scenario, job)


def _pika_twisted(job: dict[str, Any]) -> dict[str, Any]:
    """Consume with pika's Twisted adapter, as pika's own Twisted example does."""
    if job["scenario"] != "consume":
        raise ValueError(f"pika TwistedProtocolConnection runs the consume scenario only: {job}")
    return _on_reactor(_pika_twisted_consume, job)


def _pika_twisted_consume(reactor: Any, job: dict[str, Any]) -> Any:
    import pika
    from pika.adapters.twisted_connection import TwistedProtocolConnection
    from twisted.internet import defer, endpoints

    params = pika.URLParameters(job["url"])
    queue, n = job["queue"], job["n"]

    @defer.inlineCallbacks
    def run() -> Any:
        endpoint = endpoints.TCP4ClientEndpoint(reactor, params.host, params.port)
        protocol = TwistedProtocolConnection(params)
        connection = yield endpoints.connectProtocol(endpoint, protocol)  # type: ignore[no-untyped-call]
        yield connection.ready
        channel = yield connection.channel()
        yield channel.basic_qos(prefetch_count=1000)
        start = time.monotonic()
        messages, _tag = yield channel.basic_consume(queue=queue, auto_ack=False)
        for count in range(1, n + 1):
            _channel, method, _properties, _body = yield messages.get()
            if count % 100 == 0 or count == n:
                channel.basic_ack(method.delivery_tag, multiple=True)
        result = _rate(n, time.monotonic() - start)
        yield connection.close()
        return result

    return run()


def _twisted_scenario(reactor: Any, job: dict[str, Any]) -> Any:
    """The scenario on amqp_twisted's Deferred API, written as a Twisted user would."""
    from twisted.internet import defer, endpoints, task

    from amqp_core.exceptions import OutputBufferFullError
    from amqp_core.parameters import URLParameters
    from amqp_twisted import TwistedProtocolConnection

    url, queue, n, scenario = job["url"], job["queue"], job["n"], job["scenario"]
    body = b"x" * job["size"]
    params = URLParameters(url)

    def sleep(seconds: float) -> Any:
        return task.deferLater(reactor, seconds, lambda: None)

    @defer.inlineCallbacks
    def connect() -> Any:
        endpoint = endpoints.TCP4ClientEndpoint(reactor, params.host, params.port)
        protocol = TwistedProtocolConnection(params)
        connection = yield endpoints.connectProtocol(endpoint, protocol)  # type: ignore[no-untyped-call]
        yield connection.ready
        return connection

    @defer.inlineCallbacks
    def run() -> Any:
        if scenario == "connect":
            samples = []
            for _ in range(n):
                start = time.perf_counter()
                connection = yield connect()
                yield connection.channel()
                yield connection.close()
                samples.append(time.perf_counter() - start)
            return _connect_result(samples)
        connection = yield connect()
        channel = yield connection.channel()
        if scenario == "publish":
            poller = DepthPoller(url, queue, n)
            start = time.monotonic()
            for _ in range(n):
                # Without confirms the Deferred has fired already: nothing to wait for.
                channel.basic_publish("", queue, body)
            while not poller.is_done():
                yield sleep(0.002)
            result = _rate(n, poller.end - start)
        elif scenario == "confirm":
            # The fastest documented way: publish_batch, one Deferred for the whole batch.
            yield channel.confirm_delivery()
            start = time.monotonic()
            outcomes = yield channel.publish_batch([("", queue, body)] * n)
            result = _rate(n, time.monotonic() - start)
            assert all(outcome.ok for outcome in outcomes)
        elif scenario == "consume":
            # The fastest documented way: an on_message callback, no Deferred per message.
            yield channel.basic_qos(prefetch_count=1000)
            done: defer.Deferred[None] = defer.Deferred()
            seen = [0]

            def on_message(message: Any) -> None:
                seen[0] += 1
                count = seen[0]
                if count % 100 == 0 or count == n:
                    channel.basic_ack(message.method.delivery_tag, multiple=True)
                if count == n:
                    done.callback(None)

            start = time.monotonic()
            yield channel.basic_consume(queue, on_message=on_message)
            yield done
            result = _rate(n, time.monotonic() - start)
        elif scenario == "rpc":
            replies, _tag = yield channel.basic_consume(job["replies"], auto_ack=True)
            samples = []
            for _ in range(n):
                start = time.perf_counter()
                yield channel.basic_publish("", queue, body)
                yield replies.get()
                samples.append(time.perf_counter() - start)
            result = _latency(samples)
        elif scenario == "blocked":
            _blocked_watchdog(job)
            drained: list[defer.Deferred[None]] = []

            def on_drained(_connection: Any) -> None:
                if drained:
                    drained.pop().callback(None)

            connection.add_on_output_drained_callback(on_drained)
            for i in range(n):
                try:
                    yield channel.basic_publish("", queue, body)
                except OutputBufferFullError:
                    # Wait for the output to drain, then publish the refused message again.
                    waiting: defer.Deferred[None] = defer.Deferred()
                    drained.append(waiting)
                    yield waiting
                    yield channel.basic_publish("", queue, body)
                _PROGRESS[0] = i + 1
            yield sleep(_TIMEOUT)
            raise AssertionError("unreachable: the watchdog ends the process")
        else:
            raise ValueError(scenario)
        yield connection.close()
        return result

    return run()


# ---------------------------------------------------------------------------------------------
# The raw socket (the ceiling)
# ---------------------------------------------------------------------------------------------


def _raw(job: dict[str, Any]) -> dict[str, Any]:
    from amqp_core import spec
    from bench import raw

    url, queue, n, scenario = job["url"], job["queue"], job["n"], job["scenario"]
    body = b"x" * job["size"]
    if scenario == "connect":
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            raw.RawConnection(url).close()
            samples.append(time.perf_counter() - start)
        return _connect_result(samples)
    connection = raw.RawConnection(url)
    if scenario == "publish":
        data = raw.encode_publishes(queue, body, n, connection.frame_max)
        poller = DepthPoller(url, queue, n)
        start = time.monotonic()
        raw.publish_frames(connection, data)
        poller.wait()
        result = _rate(n, poller.end - start)
    elif scenario == "confirm":
        connection.rpc(spec.Confirm.Select(), spec.Confirm.SelectOk)
        data = raw.encode_publishes(queue, body, n, connection.frame_max)
        reader = threading.Thread(target=connection.count_confirms, args=(n,))
        start = time.monotonic()
        reader.start()
        raw.publish_frames(connection, data)
        reader.join()
        result = _rate(n, time.monotonic() - start)
    elif scenario == "consume":
        connection.rpc(spec.Basic.Qos(prefetch_count=1000), spec.Basic.QosOk)
        start = time.monotonic()
        connection.send_method(1, spec.Basic.Consume(queue=queue))
        connection.scan(n, ack_every=100)
        result = _rate(n, time.monotonic() - start)
    elif scenario == "rpc":
        connection.rpc(spec.Basic.Consume(queue=job["replies"], no_ack=True), spec.Basic.ConsumeOk)
        request = raw.encode_publishes(queue, body, 1, connection.frame_max)
        samples = []
        sock = connection.sock
        for _ in range(n):
            start = time.perf_counter()
            sock.sendall(request)
            raw.wait_for_body(connection)
            samples.append(time.perf_counter() - start)
        result = _latency(samples)
    else:
        raise ValueError(scenario)
    connection.close()
    return result


# ---------------------------------------------------------------------------------------------
# The blocked-publisher watchdog
# ---------------------------------------------------------------------------------------------

_PROGRESS = [0]


def _blocked_watchdog(job: dict[str, Any]) -> None:
    """After ``seconds``, print the result and end the process, however stuck the client is."""

    def report() -> None:
        time.sleep(job["seconds"])
        _emit({"value": _PROGRESS[0], "unit": "publishes returned"})
        os._exit(0)

    threading.Thread(target=report, daemon=True).start()


# ---------------------------------------------------------------------------------------------
# The registry and the worker
# ---------------------------------------------------------------------------------------------


def _ours_blocking(job: dict[str, Any]) -> dict[str, Any]:
    from amqp_blocking import BlockingConnection
    from amqp_core.parameters import URLParameters

    names = {"URLParameters": URLParameters, "BlockingConnection": BlockingConnection}
    lib = type("lib", (), names)
    return _blocking(lib, fast_confirms=True)(job)


def _pika_blocking(job: dict[str, Any]) -> dict[str, Any]:
    import pika

    return _blocking(pika, fast_confirms=False)(job)


def _ours_select(job: dict[str, Any]) -> dict[str, Any]:
    import amqp_select
    from amqp_core.parameters import URLParameters

    lib = type("lib", (), {"URLParameters": URLParameters})
    return _callback(_select_loop(amqp_select), lib)(job)


def _pika_select(job: dict[str, Any]) -> dict[str, Any]:
    import pika
    from pika.adapters import select_connection

    class _Module:
        IOLoop = select_connection.IOLoop
        SelectConnection = pika.SelectConnection

    return _callback(_select_loop(_Module), pika)(job)


def _ours_asyncio(job: dict[str, Any]) -> dict[str, Any]:
    from amqp_core.parameters import URLParameters

    def cls() -> Any:
        from amqp_asyncio import AsyncioConnection

        return AsyncioConnection

    lib = type("lib", (), {"URLParameters": URLParameters})
    return _callback(_asyncio_loop(cls), lib)(job)


def _ours_tornado(job: dict[str, Any]) -> dict[str, Any]:
    from amqp_core.parameters import URLParameters

    def cls() -> Any:
        from amqp_tornado import TornadoConnection

        return TornadoConnection

    lib = type("lib", (), {"URLParameters": URLParameters})
    return _callback(_tornado_loop(cls), lib)(job)


# pika's adapters for the frameworks we also serve: the like-for-like baselines of memory
# (a framework's own imports count for both clients alike).


def _pika_asyncio(job: dict[str, Any]) -> dict[str, Any]:
    import pika

    def cls() -> Any:
        from pika.adapters.asyncio_connection import AsyncioConnection

        return AsyncioConnection

    return _callback(_asyncio_loop(cls), pika)(job)


def _pika_tornado(job: dict[str, Any]) -> dict[str, Any]:
    import pika

    def cls() -> Any:
        from pika.adapters.tornado_connection import TornadoConnection

        return TornadoConnection

    return _callback(_tornado_loop(cls), pika)(job)


def _pika_gevent(job: dict[str, Any]) -> dict[str, Any]:
    import pika

    return _callback(_pika_gevent_loop, pika)(job)


def _ours_gevent(job: dict[str, Any]) -> dict[str, Any]:
    from amqp_core.parameters import URLParameters

    lib = type("lib", (), {"URLParameters": URLParameters})
    return _callback(_gevent_loop, lib)(job)


#: client name -> (library family shown in the table, runner). Order is the table's order.
CLIENTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "raw socket": _raw,
    "amqp-blocking": _ours_blocking,
    "amqp-select": _ours_select,
    "amqp-asyncio (callback)": _ours_asyncio,
    "amqp-asyncio native (asyncio)": _native("asyncio"),
    "amqp-asyncio native (trio)": _native("trio"),
    "amqp-tornado": _ours_tornado,
    "amqp-twisted": _twisted,
    "amqp-gevent": _ours_gevent,
    "pika BlockingConnection": _pika_blocking,
    "pika SelectConnection": _pika_select,
    "pika AsyncioConnection": _pika_asyncio,
    "pika TornadoConnection": _pika_tornado,
    "pika TwistedProtocolConnection": _pika_twisted,
    "pika GeventConnection": _pika_gevent,
}


def peak_rss_kb() -> int:
    """This process's peak RSS in KiB.

    ``/proc/self/status``'s ``VmHWM`` where there is one: Linux keeps ``getrusage``'s
    ``ru_maxrss`` across ``execve``, so a worker would otherwise report its parent's peak when
    that was higher (the benchmark's own process, after encoding a big queue fill).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # pragma: no cover - not Linux


def _emit(result: dict[str, Any]) -> None:
    result["maxrss_kb"] = peak_rss_kb()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario for one client in this process; return its result."""
    _WARMUP[0] = job.get("warmup", 0)
    return CLIENTS[job["client"]](job)


def main(argv: list[str]) -> int:
    """The worker: run the job given as JSON in ``argv[0]`` and print the result as JSON."""
    job = json.loads(argv[0])
    _emit(run_job(job))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
