"""On asyncio a task waiting for a reply is woken once the data carrying it is handled.

``AnyioServices.wait`` makes the task await a ``WakeupFuture``. The protocol brackets its
handing of received data to amqp_core with ``Wakeups.handling()`` .. ``handled()``: a future
settled in between wakes its task inside ``handled()``, in the task's context, instead of on
the loop's next round. Outside the bracket the future is a plain asyncio future. The first
tests play the protocol's part with plain loop callbacks (the protocol's ``data_received`` is
one); the last one checks the whole path against RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import anyio.abc
import pytest

from amqp_asyncio import connect
from amqp_asyncio.native._asyncio_stream import WakeupFuture, Wakeups
from amqp_asyncio.native._services import AnyioServices
from amqp_asyncio.native._waiter import Waiter

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

_T = TypeVar("_T")

# Which context a task's code runs in once woken: the task's own, not its waker's.
_whose: contextvars.ContextVar[str] = contextvars.ContextVar("_whose", default="nobody")


@asynccontextmanager
async def _services() -> AsyncIterator[tuple[AnyioServices, Wakeups, anyio.abc.TaskGroup]]:
    """A connection's services on asyncio, running in a task group, as ``connect()`` has them."""
    async with _watchdog() as stuck:
        try:
            async with anyio.create_task_group() as tg:
                services = AnyioServices(tg)
                tg.start_soon(services.run)
                wakeups = services._wakeups
                assert wakeups is not None
                yield services, wakeups, tg
                tg.cancel_scope.cancel()
        finally:
            await _end_bare_tasks(stuck)


@asynccontextmanager
async def _watchdog() -> AsyncIterator[list[str]]:
    """Wake the tasks the mechanism failed to wake (see :func:`_wake_stuck`) and fail.

    Such a task can't even be cancelled: without this a broken mechanism would hang the
    test, and the test run with it, instead of failing it.
    """
    loop = asyncio.get_running_loop()
    stuck: list[str] = []
    watchdog: asyncio.TimerHandle | None = None

    def watch() -> None:
        nonlocal watchdog
        _wake_stuck(stuck)
        watchdog = loop.call_later(0.2, watch)

    watch()
    try:
        yield stuck
    finally:
        assert watchdog is not None
        watchdog.cancel()
    assert not stuck, f"tasks left waiting on a settled future: {stuck}"


def _wake_stuck(stuck: list[str]) -> None:
    """Wake the tasks whose awaited WakeupFuture is done but that were never woken.

    Between two of the loop's callbacks no such task may exist: a future settled in the
    bracket is woken by ``handled()`` in the same callback, any other at once, by asyncio's
    call_soon.
    """
    for task in asyncio.all_tasks():
        waiting = getattr(task, "_fut_waiter", None)
        if isinstance(waiting, WakeupFuture) and waiting.done() and waiting._task_wakeup:
            stuck.append(task.get_name())
            waiting.wake_soon()


# The bare tasks of the running test, ended by _services() when it exits.
_bare_tasks: list[asyncio.Task[None]] = []


def _task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A bare asyncio task: the tests that cancel one or let SystemExit out need asyncio's own."""
    task = asyncio.get_running_loop().create_task(coro)
    _bare_tasks.append(task)
    return task


async def _end_bare_tasks(stuck: list[str]) -> None:
    """Cancel the bare tasks still running: the test runner would wait for them."""
    tasks, _bare_tasks[:] = list(_bare_tasks), []
    for task in tasks:
        task.cancel()
    _wake_stuck(stuck)
    if tasks:
        with anyio.CancelScope(shield=True):
            await asyncio.wait(tasks, timeout=5)


async def _from_loop(callback: Callable[[], _T]) -> _T:
    """Run ``callback`` as a plain callback of the loop (as ``data_received`` runs); its result."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_T] = loop.create_future()

    def run() -> None:
        assert asyncio.current_task() is None  # handled() must not run inside a task
        done.set_result(callback())

    loop.call_soon(run)
    return await done


async def _rounds(count: int = 5) -> None:
    """Let the loop run ``count`` rounds."""
    for _ in range(count):
        await asyncio.sleep(0)


async def _until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not condition():
            await asyncio.sleep(0)


def _assert_not_cancelled() -> None:
    """Nothing is left to cancel the current task (asyncio counts the requests from 3.11)."""
    task = asyncio.current_task()
    assert task is not None
    if sys.version_info >= (3, 11):
        assert task.cancelling() == 0


def _receive(wakeups: Wakeups, settle: Callable[[], None], log: list[str]) -> None:
    """Handle "received data" that settles waiters; a marker queued first shows the next round."""
    asyncio.get_running_loop().call_soon(log.append, "next round")
    wakeups.handling()
    settle()
    log.append("settled")
    wakeups.handled()
    log.append("handled")


async def test_a_task_settled_while_data_is_handled_wakes_in_handled() -> None:
    with anyio.fail_after(10):
        async with _services() as (services, wakeups, tg):
            waiter: Waiter[str] = Waiter()
            log: list[str] = []

            async def wait() -> None:
                _whose.set("the task")
                reply = await services.wait(waiter)
                log.append(f"woken with {reply} in the context of {_whose.get()}")

            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()

            def receive() -> None:
                _whose.set("the callback")
                _receive(wakeups, lambda: waiter.set_result("reply"), log)

            await _from_loop(receive)
            await _until(lambda: "next round" in log)
            assert log == [
                "settled",
                "woken with reply in the context of the task",
                "handled",
                "next round",
            ]


async def test_a_task_settled_outside_the_bracket_wakes_on_a_later_round() -> None:
    with anyio.fail_after(10):
        async with _services() as (services, wakeups, tg):
            log: list[str] = []

            async def wait(waiter: Waiter[str]) -> None:
                reply = await services.wait(waiter)
                log.append(f"woken with {reply}")

            # From a loop callback, as an asyncio future would: after what was queued before.
            waiter: Waiter[str] = Waiter()
            tg.start_soon(wait, waiter)
            await anyio.wait_all_tasks_blocked()

            def settle() -> list[str]:
                asyncio.get_running_loop().call_soon(log.append, "next round")
                waiter.set_result("first")
                log.append("settled")
                return list(log)

            assert await _from_loop(settle) == ["settled"]
            await _until(lambda: len(log) == 3)
            assert log == ["settled", "next round", "woken with first"]

            # From a task.
            log.clear()
            waiter = Waiter()
            tg.start_soon(wait, waiter)
            await anyio.wait_all_tasks_blocked()
            waiter.set_result("second")
            assert log == []
            await _until(lambda: log == ["woken with second"])

            # A bracket that settled nothing leaves the next settling alone.
            await _from_loop(lambda: _receive(wakeups, lambda: None, []))
            log.clear()
            waiter = Waiter()
            tg.start_soon(wait, waiter)
            await anyio.wait_all_tasks_blocked()

            def settle_third() -> list[str]:
                waiter.set_result("third")
                return list(log)

            assert await _from_loop(settle_third) == []
            await _until(lambda: log == ["woken with third"])


async def test_two_tasks_settled_in_one_bracket_wake_in_settle_order() -> None:
    with anyio.fail_after(10):
        async with _services() as (services, wakeups, tg):
            first: Waiter[None] = Waiter()
            second: Waiter[None] = Waiter()
            log: list[str] = []

            async def wait(name: str, waiter: Waiter[None]) -> None:
                await services.wait(waiter)
                log.append(name)

            tg.start_soon(wait, "first", first)
            tg.start_soon(wait, "second", second)
            await anyio.wait_all_tasks_blocked()

            def settle() -> None:
                second.set_result(None)
                first.set_result(None)

            await _from_loop(lambda: _receive(wakeups, settle, log))
            await _until(lambda: "next round" in log)
            assert log == ["settled", "second", "first", "handled", "next round"]


async def test_an_error_settled_in_the_bracket_is_raised_in_the_woken_task() -> None:
    with anyio.fail_after(10):
        async with _services() as (services, wakeups, tg):
            waiter: Waiter[None] = Waiter()
            log: list[str] = []

            async def wait() -> None:
                try:
                    await services.wait(waiter)
                except LookupError as error:
                    log.append(f"raised {error}")

            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            settle = lambda: waiter.set_error(LookupError("the reply"))  # noqa: E731
            await _from_loop(lambda: _receive(wakeups, settle, log))
            assert log[:3] == ["settled", "raised the reply", "handled"]


# ------------------------------------------------------------------ cancellation


async def test_a_cancelled_task_ignores_its_later_reply() -> None:
    with anyio.fail_after(10):
        async with _services() as (services, wakeups, _tg):
            log: list[str] = []

            async def wait(waiter: Waiter[None]) -> None:
                try:
                    await services.wait(waiter)
                except asyncio.CancelledError:
                    log.append("cancelled")
                    raise
                log.append("woken")  # pragma: no cover - the test fails if it gets here

            # The reply arrives later, inside a bracket and outside one.
            for settle_in_bracket in (True, False):
                log.clear()
                waiter: Waiter[None] = Waiter()
                task = _task(wait(waiter))
                await _rounds()
                task.cancel()
                await asyncio.wait([task])
                assert task.cancelled()
                assert log == ["cancelled"]
                if settle_in_bracket:
                    await _from_loop(
                        lambda: _receive(wakeups, lambda: waiter.set_result(None), log)  # noqa: B023
                    )
                else:
                    waiter.set_result(None)
                await _rounds()
                assert "woken" not in log

            # The future itself: a settling after its task's cancellation is ignored, in the
            # bracket too (no InvalidStateError).
            future = wakeups.future()

            async def await_future() -> None:
                await future

            task = _task(await_future())
            await _rounds()
            task.cancel()
            await asyncio.wait([task])
            assert task.cancelled()
            assert future.cancelled()
            future.set_result(None)
            await _from_loop(lambda: _receive(wakeups, lambda: future.set_result(None), []))
            assert future.cancelled()


async def test_a_task_cancelled_after_its_reply_came_but_before_handled() -> None:
    with anyio.fail_after(10):
        async with _services() as (services, wakeups, _tg):
            waiter: Waiter[str] = Waiter()
            log: list[str] = []

            async def wait() -> None:
                try:
                    reply = await services.wait(waiter)
                    log.append(f"woken with {reply}")
                except asyncio.CancelledError:
                    log.append("cancelled")
                    raise

            task = _task(wait())
            await _rounds()

            def settle() -> None:
                waiter.set_result("reply")
                task.cancel()  # its future is done: asyncio throws into the task when woken

            await _from_loop(lambda: _receive(wakeups, settle, log))
            assert log[:3] == ["settled", "cancelled", "handled"]
            await asyncio.wait([task])
            assert task.cancelled()


async def test_an_anyio_scope_cancels_the_wait_and_only_the_wait() -> None:
    with anyio.fail_after(10):
        async with _services() as (services, wakeups, _tg):
            # A timeout.
            waiter: Waiter[None] = Waiter()
            with anyio.move_on_after(0.05) as scope:
                await services.wait(waiter)
            assert scope.cancelled_caught
            assert waiter.future is None
            await _rounds()  # not cancelled again
            waiter.set_result(None)
            await _from_loop(lambda: _receive(wakeups, lambda: None, []))
            await _rounds()

            # A scope cancelled by a loop callback, as one of amqp_core's may.
            waiter = Waiter()
            with anyio.CancelScope() as scope:
                asyncio.get_running_loop().call_later(0.01, scope.cancel)
                await services.wait(waiter)
            assert scope.cancelled_caught
            await _rounds()
            _assert_not_cancelled()

            # The scope is cancelled once the reply is in but before the task is woken: the
            # task leaves the scope either way, and nothing cancels it later on.
            replied: Waiter[str] = Waiter()
            log: list[str] = []
            with anyio.CancelScope() as scope:

                def settle() -> None:
                    replied.set_result("reply")
                    scope.cancel()

                services.call_later(0.01, lambda: _receive(wakeups, settle, log))
                reply = await services.wait(replied)
                log.append(f"woken with {reply}")
                await _rounds()  # a checkpoint in the cancelled scope
                log.append("not cancelled")  # pragma: no cover - the test fails if it gets here
            assert scope.cancelled_caught
            # anyio does not cancel a task whose awaited future is done: the reply wins.
            assert log[:3] == ["settled", "woken with reply", "handled"]
            await _rounds()
            _assert_not_cancelled()
            assert "not cancelled" not in log


async def test_a_task_in_a_scope_cancelled_after_its_reply_came() -> None:
    with anyio.fail_after(10):
        async with _services() as (services, wakeups, tg):
            waiter: Waiter[str] = Waiter()
            scopes: list[anyio.CancelScope] = []
            log: list[str] = []

            async def wait() -> None:
                with anyio.CancelScope() as scope:
                    scopes.append(scope)
                    reply = await services.wait(waiter)
                    log.append(f"woken with {reply}")
                    await asyncio.sleep(0)
                    log.append("not cancelled")  # pragma: no cover
                log.append(f"left the scope, cancelled_caught={scope.cancelled_caught}")
                # It can wait for other things afterwards.
                await _rounds()
                nested: Waiter[str] = Waiter()
                services.call_later(0, lambda: nested.set_result("later"))
                reply = await services.wait(nested)
                log.append(f"then woken with {reply}")

            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()

            def settle() -> None:
                waiter.set_result("reply")
                scopes[0].cancel()

            await _from_loop(lambda: _receive(wakeups, settle, log))
            await _until(lambda: len(log) == 6)
            assert log == [
                "settled",
                "woken with reply",
                "handled",
                "next round",
                "left the scope, cancelled_caught=True",
                "then woken with later",
            ]


async def test_system_exit_from_a_woken_task_is_raised_by_handled() -> None:
    with anyio.fail_after(10):
        async with _services() as (services, wakeups, _tg):
            before: Waiter[None] = Waiter()
            exiting: Waiter[None] = Waiter()
            after: Waiter[None] = Waiter()
            log: list[str] = []
            handling: list[bool] = []

            async def wait(name: str, waiter: Waiter[None]) -> None:
                await services.wait(waiter)
                log.append(f"{name} woken")
                # Raised from the loop's own round, SystemExit would end the test run.
                if waiter is exiting and handling:
                    raise SystemExit(3)
                if waiter is before:
                    services.call_later(0, lambda: log.append("before's callback"))

            tasks = [
                _task(wait("before", before)),
                _task(wait("exiting", exiting)),
                _task(wait("after", after)),
            ]
            await _rounds()

            def receive() -> None:
                asyncio.get_running_loop().call_soon(log.append, "next round")
                wakeups.handling()
                before.set_result(None)
                exiting.set_result(None)
                after.set_result(None)
                handling.append(True)
                try:
                    wakeups.handled()
                except SystemExit as exit_:
                    log.append(f"handled raised SystemExit({exit_.code})")
                finally:
                    handling.clear()
                assert asyncio.current_task() is None  # asyncio left the task behind

            await _from_loop(receive)
            assert log[:3] == ["before woken", "exiting woken", "handled raised SystemExit(3)"]
            _done, pending = await asyncio.wait(tasks, timeout=5)
            assert not pending
            await _rounds()
            # The task settled after it wakes on a later round, as an asyncio future would
            # wake it; what the one before asked for still runs.
            assert log[3:] == ["next round", "before's callback", "after woken"]
            assert isinstance(tasks[1].exception(), SystemExit)

            # The mechanism still works afterwards.
            waiter: Waiter[None] = Waiter()
            log.clear()
            task = _task(wait("again", waiter))
            await _rounds()
            await _from_loop(lambda: _receive(wakeups, lambda: waiter.set_result(None), log))
            assert log[:3] == ["settled", "again woken", "handled"]
            await task


async def test_wakeup_future_keeps_asyncio_s_callbacks() -> None:
    # anyio's cancel scopes look at the task's awaited future: it must be asyncio's kind.
    future = WakeupFuture(Wakeups(asyncio.get_running_loop()))
    assert isinstance(future, asyncio.Future)
    seen: list[object] = []
    future.add_done_callback(seen.append)  # the awaiting task's place
    future.add_done_callback(seen.append)  # any other: asyncio's
    assert future.remove_done_callback(seen.append) == 2
    future.set_result(None)
    await _rounds()
    assert seen == []
    # Added once done, a callback is asyncio's too: it runs on the next round.
    future.add_done_callback(seen.append)
    await _rounds()
    assert seen == [future]


# ------------------------------------------------------------------ against RabbitMQ


@pytest.mark.broker
async def test_rpc_round_trips_wake_their_tasks_in_the_round_their_reply_came(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    woken_in_handled: list[None] = []
    wake = WakeupFuture.wake

    def counting_wake(self: WakeupFuture) -> None:
        woken_in_handled.append(None)
        wake(self)

    monkeypatch.setattr(WakeupFuture, "wake", counting_wake)
    rounds = 50
    with anyio.fail_after(30):
        async with (
            _watchdog(),
            connect(amqp_url) as connection,
            await connection.channel() as client,
            await connection.channel() as server,
        ):
            assert connection._services._wakeups is not None
            requests = (await client.queue_declare("", exclusive=True)).queue
            replies_to = (await client.queue_declare("", exclusive=True)).queue

            async def serve() -> None:
                async with server.consume(requests) as incoming:
                    async for request in incoming:
                        await server.basic_publish("", replies_to, request.body + b" done")
                        await request.ack()

            async with anyio.create_task_group() as tg:
                tg.start_soon(serve)
                async with client.consume(replies_to, auto_ack=True) as replies:
                    for index in range(rounds):
                        await client.basic_publish("", requests, f"request {index}")
                        reply = await replies.__anext__()
                        assert reply.body == f"request {index} done".encode()

                    # No reply comes: the wait times out, and the connection goes on.
                    with anyio.move_on_after(0.2) as scope:
                        await replies.__anext__()
                    assert scope.cancelled_caught
                    await client.basic_publish("", requests, b"after the timeout")
                    reply = await replies.__anext__()
                    assert reply.body == b"after the timeout done"
                tg.cancel_scope.cancel()
            assert (await client.queue_declare(requests, passive=True)).queue == requests
            assert connection.is_open
    # Each reply (and each request, for the server) woke its task in handled().
    assert len(woken_in_handled) >= rounds
