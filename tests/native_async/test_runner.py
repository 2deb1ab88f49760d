"""The native API's services (``AnyioServices``) by themselves: the callback runner, lookups.

On trio, the callback runner (``AnyioServices.run``) runs the callbacks amqp_core schedules "as
soon as possible" and the timers. Waking it costs a scheduling round, so a timer added while it
sleeps moves the deadline it sleeps until instead of waking it: most timers are timeouts that
never fire. A trio instrument counts the runner's steps.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import trio
import trio.lowlevel
from anyio import wait_all_tasks_blocked

from amqp_asyncio.native._services import AnyioServices

pytestmark = pytest.mark.anyio


class _RunnerSteps(trio.abc.Instrument):
    """Counts the steps of the tasks running ``AnyioServices.run``."""

    def __init__(self) -> None:
        self.count = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("AnyioServices.run"):
            self.count += 1


@asynccontextmanager
async def _counting() -> AsyncIterator[_RunnerSteps]:
    steps = _RunnerSteps()
    trio.lowlevel.add_instrument(steps)
    try:
        yield steps
    finally:
        trio.lowlevel.remove_instrument(steps)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_timer_added_while_the_runner_sleeps_moves_its_deadline() -> None:
    fired: list[tuple[str, float]] = []
    start = time.monotonic()

    def timer(name: str) -> Any:
        return lambda: fired.append((name, time.monotonic() - start))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg, _counting() as steps:
            services = AnyioServices(tg)
            tg.start_soon(services.run)
            await wait_all_tasks_blocked()
            steps.count = 0
            services.call_later(60, timer("late"))
            services.call_later(30, timer("sooner"))
            services.call_later(90, timer("latest"))
            cancelled = services.call_later(20, timer("cancelled"))
            cancelled.cancel()
            await wait_all_tasks_blocked()
            assert steps.count == 0  # none of these woke it
            services.call_later(0.2, timer("second"))
            services.call_later(0.1, timer("first"))
            while len(fired) < 2:
                await anyio.sleep(0.01)
            assert [name for name, _at in fired] == ["first", "second"]
            assert fired[1][1] < 5  # the moved deadline woke it, not the 30 s one
            assert steps.count <= 2  # woken as each came due
            soon: list[str] = []
            services.call_later(0, lambda: soon.append("ran"))
            await wait_all_tasks_blocked()
            assert soon == ["ran"]  # what is due at once still wakes it
            tg.cancel_scope.cancel()


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_lookups_answer_addresses_at_once_and_ask_the_resolver_for_names() -> None:
    got: dict[str, Any] = {}
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            services = AnyioServices(tg)
            tg.start_soon(services.run)
            for host in ("::1", "1.2.3.4.5", "localhost"):
                services.getaddrinfo(host, 5672, functools.partial(got.__setitem__, host))
            while len(got) < 3:
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert [info.sockaddr for info in got["::1"]] == [("::1", 5672, 0, 0)]
    assert isinstance(got["1.2.3.4.5"], OSError)
    assert ("127.0.0.1", 5672) in [info.sockaddr[:2] for info in got["localhost"]]
