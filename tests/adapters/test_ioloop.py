"""amqp_select.IOLoop on every poller this platform has: timers, callbacks, handlers, threads."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from amqp_select import ioloop as ioloop_module
from amqp_select.ioloop import IOLoop, available_pollers

POLLERS = available_pollers()


@pytest.fixture(params=POLLERS)
def loop(request: pytest.FixtureRequest) -> Iterator[IOLoop]:
    the_loop = IOLoop(poller=request.param)
    assert the_loop.poller_type == request.param
    # A test that hangs stops itself instead of waiting for the global timeout.
    guard = the_loop.call_later(10.0, the_loop.stop)
    yield the_loop
    the_loop.remove_timeout(guard)
    the_loop.close()


def test_this_platform_has_select_and_poll() -> None:
    assert "select" in POLLERS
    assert "poll" in POLLERS


def test_unknown_poller_is_refused() -> None:
    with pytest.raises(ValueError, match="'nope' is not available"):
        IOLoop(poller="nope")


def test_select_type_global_chooses_the_poller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ioloop_module, "SELECT_TYPE", "select")
    the_loop = IOLoop()
    try:
        assert the_loop.poller_type == "select"
    finally:
        the_loop.close()


def test_timers_run_in_deadline_order(loop: IOLoop) -> None:
    order: list[str] = []
    loop.call_later(0.03, lambda: order.append("c"))
    loop.call_later(0.01, lambda: order.append("a"))
    loop.call_later(0.02, lambda: order.append("b"))
    loop.call_later(0.05, loop.stop)
    started = time.monotonic()
    loop.start()
    assert order == ["a", "b", "c"]
    assert 0.04 <= time.monotonic() - started < 2.0


def test_removed_timer_does_not_run(loop: IOLoop) -> None:
    ran: list[int] = []
    handle = loop.call_later(0.01, lambda: ran.append(1))
    loop.remove_timeout(handle)
    loop.remove_timeout(handle)  # twice is harmless
    loop.call_later(0.03, loop.stop)
    loop.start()
    assert ran == []


def test_a_timer_can_cancel_another_due_in_the_same_pass(loop: IOLoop) -> None:
    ran: list[str] = []
    second = loop.call_later(0.01, lambda: ran.append("second"))
    loop.call_later(0.0, lambda: loop.remove_timeout(second))
    loop.call_later(0.05, loop.stop)
    time.sleep(0.02)  # both are due before the loop first looks
    loop.start()
    assert ran == []


def test_many_cancelled_timers_do_not_pile_up(loop: IOLoop) -> None:
    for _ in range(2000):
        loop.remove_timeout(loop.call_later(3600, lambda: None))
    assert len(loop._timers) < 1000


def test_add_callback_runs_on_next_pass(loop: IOLoop) -> None:
    ran: list[int] = []
    loop.add_callback(lambda: ran.append(1))
    loop.add_callback(loop.stop)
    loop.start()
    assert ran == [1]


def test_add_callback_threadsafe_wakes_a_sleeping_loop(loop: IOLoop) -> None:
    seen: list[str] = []

    def from_thread() -> None:
        time.sleep(0.05)
        loop.add_callback_threadsafe(lambda: seen.append(threading.current_thread().name))
        loop.add_callback_threadsafe(loop.stop)

    worker = threading.Thread(target=from_thread, name="worker")
    started = time.monotonic()
    worker.start()
    loop.start()  # would sleep for the 10 s guard without a wake-up
    worker.join()
    assert seen == [threading.main_thread().name]
    assert time.monotonic() - started < 2.0


def test_stop_before_start_returns_at_once(loop: IOLoop) -> None:
    loop.stop()
    started = time.monotonic()
    loop.start()
    assert time.monotonic() - started < 1.0


def test_handlers_see_read_and_write_readiness(loop: IOLoop) -> None:
    left, right = socket.socketpair()
    left.setblocking(False)
    received: list[bytes] = []
    events_seen: list[int] = []

    def on_events(fd: int, events: int) -> None:
        events_seen.append(events)
        if events & IOLoop.WRITE:
            left.send(b"ping")
            loop.update_handler(fd, IOLoop.READ)
        if events & IOLoop.READ:
            received.append(left.recv(100))
            loop.remove_handler(fd)
            loop.stop()

    try:
        loop.add_handler(left.fileno(), on_events, IOLoop.WRITE)

        def answer() -> None:
            right.send(right.recv(100) + b"-pong")

        loop.call_later(0.02, answer)
        loop.start()
    finally:
        left.close()
        right.close()
    assert events_seen[0] & IOLoop.WRITE
    assert received == [b"ping-pong"]


def test_remove_handler_of_an_unwatched_fd_is_harmless(loop: IOLoop) -> None:
    loop.remove_handler(12345)


def test_exceptions_from_callbacks_propagate(loop: IOLoop) -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    loop.call_later(0, boom)
    with pytest.raises(RuntimeError, match="boom"):
        loop.start()


def test_closed_loop_refuses_threadsafe_callbacks_and_start() -> None:
    the_loop = IOLoop()
    the_loop.close()
    the_loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        the_loop.add_callback_threadsafe(lambda: None)
    with pytest.raises(RuntimeError, match="closed"):
        the_loop.start()
