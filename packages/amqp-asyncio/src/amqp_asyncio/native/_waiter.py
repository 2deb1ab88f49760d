"""A one-shot result that one task waits for, settled from a callback in the same loop.

Unlike an asyncio future a waiter works on trio too, and a result nobody waits for any more
(its task was cancelled) is simply dropped: there is no "exception never retrieved" to report,
because the error was meant for a task that chose to stop waiting. A :class:`Latch` (a close)
is waited for by any number of tasks, each through a waiter of its own.

A task may wait for it by reading the connection's socket itself (see
``AnyioServices.wait``): while it waits for the socket, :attr:`Waiter.parked` holds the
scope it waits in, and settling the waiter from anywhere else cancels that scope, so the
task never sleeps on the socket with its result already there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

import anyio
import anyio.lowlevel

__all__ = ("Latch", "Waiter")

_T = TypeVar("_T")


class _Future(Protocol):
    """What a waiter needs of the future its task awaits on asyncio (``WakeupFuture``)."""

    def set_result(self, result: None, /) -> None: ...


class Waiter(Generic[_T]):
    """One result or one error; the first one set wins.

    Attributes:
        done: True once settled.
        error: the error it was settled with, if any.
    """

    __slots__ = ("_event", "_value", "done", "error", "future", "parked")

    def __init__(self) -> None:
        # Made by the first wait(): a task that reads its reply itself never needs one.
        self._event: anyio.Event | None = None
        self._value: _T | None = None
        self.error: BaseException | None = None
        self.done = False
        self.parked: anyio.CancelScope | None = None
        # On asyncio the waiting task awaits a future (see AnyioServices.wait), settled
        # (at most once) with the waiter: no anyio and asyncio event objects in between.
        self.future: _Future | None = None

    def set_result(self, value: _T) -> None:
        """Settle with ``value`` (ignored if already settled)."""
        if not self.done:
            self.done = True
            self._value = value
            self._settled()

    def set_error(self, error: BaseException) -> None:
        """Settle with ``error`` (ignored if already settled)."""
        if not self.done:
            self.done = True
            self.error = error
            self._settled()

    def _settled(self) -> None:
        future = self.future
        if future is not None:
            future.set_result(None)
        if self._event is not None:
            self._event.set()
        parked = self.parked
        if parked is not None:
            self.parked = None
            parked.cancel()

    async def wait(self) -> _T:
        """Wait for the result; raise the error if that is what was set."""
        if not self.done:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        else:
            await anyio.lowlevel.checkpoint()
        return self.result()

    def result(self) -> _T:
        """The result of a settled waiter; raise the error if that is what was set."""
        if self.error is not None:
            raise self.error
        return self._value  # type: ignore[return-value]  # settled with a result: a _T


class Latch:
    """Something that happens once (a close) and that any number of tasks may wait for.

    Each waiting task waits on a :class:`Waiter` of its own through the wait the latch was
    made with (``AnyioServices.wait``), as for a reply: so on trio over plain TCP a task
    waiting for a close reads the broker's ``Close-Ok`` itself, instead of the reader task
    reading it and then waking the task, a scheduling round more.
    """

    __slots__ = ("_wait_for", "_waiters", "happened")

    def __init__(self, wait_for: Callable[[Waiter[None]], Awaitable[None]]) -> None:
        self.happened = False
        self._wait_for = wait_for
        self._waiters: list[Waiter[None]] = []

    def set(self) -> None:
        """Let every waiting task go, and every later wait return at once."""
        self.happened = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set_result(None)

    async def wait(self) -> None:
        """Return once it has happened (a cancellation point even if it already has)."""
        if self.happened:
            await anyio.lowlevel.checkpoint()
            return
        waiter: Waiter[None] = Waiter()
        self._waiters.append(waiter)
        try:
            await self._wait_for(waiter)
        finally:
            if not waiter.done:
                self._waiters.remove(waiter)
