"""The event loops the adapter tests run on, behind one small driver interface.

A driver makes an adapter's loop, hands out its IOServices, runs the loop until a test says
stop (or a deadline passes, which fails the test instead of hanging it), and closes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from amqp_asyncio.io_services import AsyncioIOServices
from amqp_core.transport import IOServices
from amqp_select.ioloop import IOLoop, available_pollers
from amqp_select.selector_services import SelectorIOServices


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


DRIVER_NAMES = (*(f"select-{poller}" for poller in available_pollers()), "asyncio")


def make_driver(name: str) -> LoopDriver:
    if name == "asyncio":
        return AsyncioDriver()
    return SelectDriver(name.removeprefix("select-"))
