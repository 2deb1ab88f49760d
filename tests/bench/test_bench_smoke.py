"""The benchmark suite still runs: tiny sizes, three scenarios, a few clients, one repetition.

Not a measurement (CI machines are too noisy for that, and the real run takes minutes): it
catches a scenario script that no longer works with an adapter's API, a broken raw-socket
ceiling, or a report that no longer renders.
"""

from __future__ import annotations

import io

import pytest

from bench.run import PIKA_BLOCKING, PIKA_SELECT, RAW, Scenario, report, run_suite

pytestmark = pytest.mark.slow

CLIENTS = [
    RAW,
    "amqp-blocking",
    "amqp-select",
    "amqp-asyncio native (trio)",
    "amqp-twisted",
    PIKA_SELECT,
]
SCENARIOS = [
    Scenario("publish64", "publish 64 B, no confirms", "publish", 64, 300, 300),
    Scenario("consume", "consume 64 B, manual acks", "consume", 64, 300, 300),
    Scenario("rpc", "RPC round trip", "rpc", 64, 20, 20, higher_is_better=False),
]


def test_quick_benchmark_runs_and_reports(amqp_url: str) -> None:
    log = io.StringIO()
    results = run_suite(amqp_url, CLIENTS, SCENARIOS, repeat=1, quick=True, log=log)
    for key, per_client in results.items():
        for client, runs in per_client.items():
            (result,) = runs
            assert "error" not in result, (key, client, result, log.getvalue())
            assert result["value"] > 0
            assert result["maxrss_kb"] > 1000
    facts = {"cpu": "test", "python": "test", "rabbitmq": "test", "pika": "test", "os": "test"}
    facts["date"] = "today"
    text, targets = report(facts, results, SCENARIOS, {}, 1)
    assert "| amqp-select |" in text
    assert "x Select" in text
    assert any(what.startswith("consume: amqp-select") for what, _, _ in targets)
    assert PIKA_BLOCKING not in CLIENTS  # its baseline rows show n/a, not a crash
