"""An in-memory IOServices with a fake clock, and a Transport wired to FakeBroker."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from amqp_core.connection import Connection
from amqp_core.parameters import Parameters
from amqp_core.testing.peer import FakeBroker
from amqp_core.transport import AddressInfo, StreamListener, StreamSettings, Transport


class Timer:
    def __init__(self, at: float, seq: int, callback: Callable[[], None]) -> None:
        self.at = at
        self.seq = seq
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: Timer) -> bool:
        return (self.at, self.seq) < (other.at, other.seq)


def addr(ip: str, port: int = 5672) -> AddressInfo:
    return AddressInfo(2, 1, 6, (ip, port))


class FakeTransport:
    def __init__(self, io: FakeIO, broker: FakeBroker, listener: StreamListener) -> None:
        self.io = io
        self.broker = broker
        self.listener = listener
        self.buffered = 0
        self.closed = False
        self.aborted = False
        self.lost = False
        self.written: list[bytes] = []

    def write(self, data: Any) -> None:
        assert not self.closed, "write after close"
        chunk = bytes(data)
        self.written.append(chunk)
        self.broker.receive_data(chunk)
        self.io.call_later(0, self.pump)

    def write_buffer_size(self) -> int:
        return self.buffered

    def pump(self) -> None:
        if self.lost:
            return
        back = self.broker.data_to_send()
        if back:
            self.listener.data_received(back)
        if self.broker.closed and not self.lost:
            self.lose(None)

    def lose(self, error: BaseException | None) -> None:
        if not self.lost:
            self.lost = True
            self.closed = True
            self.listener.connection_lost(error)

    def close(self) -> None:
        self.closed = True
        self.broker.receive_data(b"")
        self.io.call_later(0, lambda: self.lose(None))

    def abort(self) -> None:
        self.closed = True
        self.aborted = True
        self.broker.receive_data(b"")
        self.io.call_later(0, lambda: self.lose(None))


class FakeIO:
    """IOServices over a fake clock; hosts and endpoints are configured by the test."""

    def __init__(self) -> None:
        self.time = 1000.0
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        # host -> addresses or an exception
        self.hosts: dict[str, Sequence[AddressInfo] | BaseException] = {
            "localhost": [addr("127.0.0.1")]
        }
        # ip -> broker factory, an exception, or "hang"
        self.endpoints: dict[str, Any] = {"127.0.0.1": FakeBroker}
        self.connects: list[tuple[float, StreamSettings]] = []
        self.resolves: list[tuple[float, str, int]] = []
        self.transports: list[FakeTransport] = []
        self.brokers: list[FakeBroker] = []

    def now(self) -> float:
        return self.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self.time + delay, next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        self.call_later(0, callback)

    def getaddrinfo(
        self,
        host: str,
        port: int,
        on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
    ) -> Timer:
        self.resolves.append((self.time, host, port))
        result = self.hosts.get(host, OSError(f"unknown host {host}"))
        if not isinstance(result, BaseException):
            result = [
                AddressInfo(a.family, a.socktype, a.proto, (a.sockaddr[0], port)) for a in result
            ]
        return self.call_later(0, lambda: on_done(result))

    def connect_stream(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> Timer:
        self.connects.append((self.time, settings))
        target = self.endpoints.get(
            settings.address.sockaddr[0], ConnectionRefusedError(111, "refused")
        )
        if target == "hang":
            return self.call_later(1e9, lambda: None)
        if isinstance(target, BaseException):
            return self.call_later(0, lambda: on_done(target))
        broker = target()
        self.brokers.append(broker)
        transport = FakeTransport(self, broker, listener)
        self.transports.append(transport)
        return self.call_later(0, lambda: on_done(transport))

    @property
    def transport(self) -> FakeTransport:
        return self.transports[-1]

    @property
    def broker(self) -> FakeBroker:
        return self.brokers[-1]

    def run(self, seconds: float = 0.0) -> None:
        """Run every timer due within ``seconds`` from now, advancing the clock."""
        end = self.time + seconds
        while self._timers and self._timers[0].at <= end:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.time = max(self.time, timer.at)
            timer.callback()
        self.time = max(self.time, end)

    def pending(self) -> list[Timer]:
        return [t for t in self._timers if not t.cancelled]


class Recorder:
    """Collects callback calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __call__(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]


class TestConnection(Connection):
    """What an adapter does: pass its IOServices."""

    __test__ = False

    def __init__(
        self, io: FakeIO, parameters: Parameters | Sequence[Parameters] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(parameters, io_services=io, **kwargs)


def open_connection(
    io: FakeIO | None = None, **kwargs: Any
) -> tuple[FakeIO, TestConnection, Recorder]:
    io = io or FakeIO()
    rec = Recorder()
    conn = TestConnection(
        io,
        kwargs.pop("parameters", None),
        on_open_callback=rec("open"),
        on_open_error_callback=rec("open_error"),
        on_close_callback=rec("close"),
        **kwargs,
    )
    io.run()
    assert conn.is_open, rec.calls
    return io, conn, rec
