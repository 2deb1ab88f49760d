"""The event loops the adapter tests run on, behind one small driver interface.

A driver makes an adapter's loop, hands out its IOServices, runs the loop until a test says
stop (or a deadline passes, which fails the test instead of hanging it), and closes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
from gevent.hub import Hub
from tornado.ioloop import IOLoop as TornadoIOLoop

from amqp_asyncio.io_services import AsyncioIOServices
from amqp_core.transport import IOServices
from amqp_gevent.io_services import GeventIOServices
from amqp_select.ioloop import IOLoop, available_pollers
from amqp_select.selector_services import SelectorIOServices
from amqp_tornado.io_services import TornadoIOServices


class LoopDriver:
    """One adapter's loop, as the tests drive it."""

    name = ""
    adapter = ""

    def services(self) -> IOServices:
        raise NotImplementedError

    @property
    def native_loop(self) -> Any:
        raise NotImplementedError

    def run(self, timeout: float) -> None:
        """Run until :meth:`stop`; raise TimeoutError if ``timeout`` seconds pass first."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def call_soon(self, callback: Callable[[], None]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SelectDriver(LoopDriver):
    adapter = "select"

    def __init__(self, poller: str) -> None:
        self.name = f"select-{poller}"
        self.loop = IOLoop(poller=poller)
        self._timed_out = False

    def services(self) -> IOServices:
        return SelectorIOServices(self.loop)

    @property
    def native_loop(self) -> IOLoop:
        return self.loop

    def run(self, timeout: float) -> None:
        self._timed_out = False

        def expire() -> None:
            self._timed_out = True
            self.loop.stop()

        guard = self.loop.call_later(timeout, expire)
        try:
            self.loop.start()
        finally:
            self.loop.remove_timeout(guard)
        if self._timed_out:
            raise TimeoutError(f"the {self.name} loop was not stopped within {timeout} s")

    def stop(self) -> None:
        self.loop.stop()

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.loop.add_callback_threadsafe(callback)

    def close(self) -> None:
        self.loop.close()


class AsyncioDriver(LoopDriver):
    name = "asyncio"
    adapter = "asyncio"

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._stopped: asyncio.Future[None] | None = None
        self._stop_requested = False

    def services(self) -> IOServices:
        return AsyncioIOServices(self.loop)

    @property
    def native_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    def run(self, timeout: float) -> None:
        self._stopped = self.loop.create_future()
        if self._stop_requested:
            # Like the select loop, a stop requested before the run ends the next run at once.
            self._stopped.set_result(None)
        self._stop_requested = False
        try:
            self.loop.run_until_complete(asyncio.wait_for(self._stopped, timeout))
        except asyncio.TimeoutError:
            raise TimeoutError(f"the asyncio loop was not stopped within {timeout} s") from None
        finally:
            self._stopped = None

    def stop(self) -> None:
        if self._stopped is None:
            self._stop_requested = True
        elif not self._stopped.done():
            self._stopped.set_result(None)

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.loop.call_soon_threadsafe(callback)

    def close(self) -> None:
        # Let transports that were just closed finish (their connection_lost is scheduled).
        self.loop.run_until_complete(asyncio.sleep(0.01))
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


class TornadoDriver(LoopDriver):
    name = "tornado"
    adapter = "tornado"

    def __init__(self) -> None:
        # A loop of its own, not made current: tests never touch a global IOLoop.
        self.loop: TornadoIOLoop = TornadoIOLoop(make_current=False)
        self._timed_out = False

    def services(self) -> IOServices:
        return TornadoIOServices(self.loop)

    @property
    def native_loop(self) -> TornadoIOLoop:
        return self.loop

    def run(self, timeout: float) -> None:
        self._timed_out = False

        def expire() -> None:
            self._timed_out = True
            self.loop.stop()

        guard = self.loop.call_later(timeout, expire)
        try:
            self.loop.start()
        finally:
            self.loop.remove_timeout(guard)
        if self._timed_out:
            raise TimeoutError(f"the tornado loop was not stopped within {timeout} s")

    def stop(self) -> None:
        self.loop.stop()

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.loop.add_callback(callback)

    def close(self) -> None:
        # Let streams that were just closed report it before the loop goes.
        self.loop.add_timeout(self.loop.time() + 0.01, self.loop.stop)
        self.loop.start()
        self.loop.close(all_fds=True)


class GeventDriver(LoopDriver):
    """gevent's hub: the test's greenlet waits on an event while the hub runs the rest.

    The test process is not monkey-patched.
    """

    name = "gevent"
    adapter = "gevent"

    def __init__(self) -> None:
        self.hub: Hub = gevent.get_hub()
        self._stopped = gevent.event.Event()

    def services(self) -> IOServices:
        return GeventIOServices(self.hub)

    @property
    def native_loop(self) -> Hub:
        return self.hub

    def run(self, timeout: float) -> None:
        # A stop requested before the run ends the next run at once, as with the other loops.
        stopped = self._stopped.wait(timeout)
        self._stopped.clear()
        if not stopped:
            raise TimeoutError(f"the gevent hub was not stopped within {timeout} s")

    def stop(self) -> None:
        self._stopped.set()

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.hub.loop.run_callback_threadsafe(callback)

    def close(self) -> None:
        # Let greenlets that were just told to end finish.
        gevent.sleep(0.01)


DRIVER_NAMES = (
    *(f"select-{poller}" for poller in available_pollers()),
    "asyncio",
    "tornado",
    "gevent",
)


def make_driver(name: str) -> LoopDriver:
    if name == "asyncio":
        return AsyncioDriver()
    if name == "tornado":
        return TornadoDriver()
    if name == "gevent":
        return GeventDriver()
    return SelectDriver(name.removeprefix("select-"))
