"""TwistedProtocolConnection against a real RabbitMQ.

Twisted's reactor runs once per process, so the scenarios (tests/twisted/scenarios.py) run in
a child process: one for the plain-TCP scenarios together, one for TLS (started from
tests/adapters/test_tls.py, which owns the TLS node). Each scenario is still
its own test here, and reports its own traceback. The conformance suite's callback-style
scenarios do not apply to this adapter as they stand (its API is Deferreds, and Twisted, not
amqp_core, connects the stream), so these are the same scenarios written for Deferreds.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import defer

from amqp_twisted import (
    ClosableDeferredQueue,
    TwistedConnection,
    TwistedProtocolConnection,
    twisted_connection,
)
from tests.adapters.test_rabbitmq import _controllable
from tests.adapters.test_tls import TLSBroker
from tools.broker import RabbitMQNode

ROOT = pathlib.Path(__file__).resolve().parents[2]
TCP_SCENARIOS = (
    "open_and_close",
    "a_lone_write_leaves_before_the_reactor_turns",
    "wrong_password_fails_ready",
    "declare_bind_publish_consume_ack",
    "basic_get_empty_then_message",
    "confirms_and_unroutable",
    "mandatory_return_callback",
    "consumer_cancelled_by_broker",
    "channel_error_then_new_channel",
    "blocked_and_unblocked",
    "bounded_output_while_blocked",
    "tcp_drop_is_a_lost_stream",
    "recovery_reports_unconfirmed_publishes",
    "recovery_mid_publish_batch",
    "recovery_tries_the_other_hosts",
    # These close every connection of the node.
    "recovery_refused_login_is_not_retried",
    "recovery_after_broker_forced_close",
    "broker_forced_close",
)


def _run(config: dict[str, Any], names: tuple[str, ...], timeout: float) -> dict[str, Any]:
    process = subprocess.run(
        [sys.executable, "-m", "tests.twisted.scenarios", json.dumps(config), *names],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    results = {}
    for line in process.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            results[result["name"]] = result
    if not results:
        raise AssertionError(f"the scenario process failed:\n{process.stdout}\n{process.stderr}")
    return results


@pytest.fixture(scope="module")
def tcp_results(rabbitmq: RabbitMQNode | None) -> Iterator[dict[str, Any]]:
    node = _controllable(rabbitmq)
    config = {"url": node.url, "ctl": node.rabbitmqctl_command()}
    try:
        yield _run(config, TCP_SCENARIOS, timeout=160)
    finally:
        node.rabbitmqctl("set_vm_memory_high_watermark", "0.4")


@pytest.mark.parametrize("name", TCP_SCENARIOS)
def test_scenario(tcp_results: dict[str, Any], name: str) -> None:
    result = tcp_results.get(name)
    assert result is not None, f"{name} did not report (the process stopped before it)"
    assert result["ok"], result["error"]


def run_tls_scenario(tls_broker: TLSBroker) -> None:
    """Run the TLS scenario against the TLS node of tests/adapters/test_tls.py (which calls it)."""
    config = {
        "tls": {
            "port": tls_broker.port,
            "ca": str(tls_broker.ca_file),
            "client_cert": str(tls_broker.client_cert),
            "client_key": str(tls_broker.client_key),
        }
    }
    names = ("tls_round_trip_and_external_login", "tls_recovery")
    result = _run(config, names, timeout=90)
    for name in names:
        outcome = result.get(name)
        assert outcome is not None, f"{name} did not report (the process stopped before it)"
        assert outcome["ok"], outcome["error"]


def test_seed_example_runs(amqp_url: str) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "examples.twisted_consumer", "4"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "AMQP_URL": amqp_url},
        cwd=ROOT,
    )
    assert process.returncode == 0, process.stderr
    assert "published 4, each confirmed" in process.stdout
    assert "received b'message 3'" in process.stdout
    assert "ConnectionClosedByClient" in process.stdout


def test_names_and_queue_without_a_reactor_running() -> None:
    assert TwistedConnection is TwistedProtocolConnection
    assert twisted_connection.TwistedProtocolConnection is TwistedProtocolConnection
    queue: ClosableDeferredQueue[int] = ClosableDeferredQueue()
    queue.put(1)
    got: list[Any] = []
    queue.get().addCallback(got.append)
    waiting = queue.get()
    waiting.addErrback(lambda failure: got.append(failure.value))
    reason = RuntimeError("closed")
    queue.close(reason)
    queue.put(2)  # ignored once closed
    assert got == [1, reason]
    assert queue.closed is reason
    late = queue.get()
    late.addErrback(lambda failure: got.append(failure.value))
    assert got == [1, reason, reason]


def test_queue_limits_and_a_cancelled_get() -> None:
    queue: ClosableDeferredQueue[int] = ClosableDeferredQueue(size=1, backlog=1)
    waiting = queue.get()
    with pytest.raises(defer.QueueUnderflow):
        queue.get()
    waiting.cancel()  # no longer waits: the next item is kept
    cancelled: list[Any] = []
    waiting.addErrback(cancelled.append)
    assert cancelled[0].check(defer.CancelledError)
    queue.put(1)
    with pytest.raises(defer.QueueOverflow):
        queue.put(2)
    got: list[int] = []
    queue.get().addCallback(got.append)
    assert got == [1]
