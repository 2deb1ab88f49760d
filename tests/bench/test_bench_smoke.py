"""The benchmark suite still runs: tiny sizes, three scenarios, a few clients, one repetition.

Not a measurement (CI machines are too noisy for that, and the real run takes minutes): it
catches a scenario script that no longer works with an adapter's API, a broken raw-socket
ceiling, or a report that no longer renders.
"""

from __future__ import annotations

import io
import json

import pytest

from amqp_core import spec
from bench import raw
from bench.run import PIKA_BLOCKING, PIKA_SELECT, RAW, Admin, Scenario, report, run_suite
from tests.fresh_interpreter import run_python

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


def test_the_consume_row_runs_more_often_and_the_report_says_so() -> None:
    consume = Scenario("consume", "consume", "consume", 64, 10, 10, extra_repeats=2)
    assert consume.repetitions(3, quick=False) == 5
    assert consume.repetitions(1, quick=True) == 1
    rpc = SCENARIOS[2]
    assert rpc.repetitions(3, quick=False) == 3
    run = {"value": 1.0, "unit": "msg/s", "seconds": 1.0, "maxrss_kb": 2000, "n": 10}
    results = {"consume": {RAW: [run] * 5}, "rpc": {RAW: [run] * 3}}
    facts = dict.fromkeys(("cpu", "python", "rabbitmq", "pika", "os", "date"), "x")
    text, _targets = report(facts, results, [consume, rpc], {}, 3)
    assert "Medians of 3 run(s) per cell (5 for consume);" in text


def test_the_worker_loads_nothing_a_client_does_not() -> None:
    # Every module the worker imports counts in the peak RSS of the client it measures: a pika
    # client's figure must not carry amqp_core (the raw codec's), nor statistics' imports.
    script = "import json, sys\nimport bench.clients\nprint(json.dumps(sorted(sys.modules)))\n"
    loaded = set(json.loads(run_python(script)))
    assert "bench.clients" in loaded
    assert not {m for m in loaded if m.split(".")[0] in {"amqp_core", "pika", "anyio"}}
    assert not loaded & {"statistics", "decimal", "fractions", "random", "bench.raw"}


def test_a_reset_queue_is_a_new_queue_not_a_purged_one(amqp_url: str) -> None:
    # A purged queue keeps its Erlang process, and with it the heap of every earlier fill,
    # which threw the consume row into the broker's slow mode; a reset must start afresh.
    # A queue declared with an argument tells the two apart: a plain declare of the same name
    # is refused (406) unless the old queue is gone.
    queue = "bench.test.reset"
    setup = raw.RawConnection(amqp_url)
    try:
        setup.rpc(spec.Queue.Delete(queue=queue), spec.Queue.DeleteOk)
        setup.rpc(
            spec.Queue.Declare(queue=queue, arguments={"x-max-length": 5}), spec.Queue.DeclareOk
        )
        raw.publish_frames(setup, raw.encode_publishes(queue, b"x", 3, setup.frame_max))
    finally:
        setup.close()
    admin = Admin(amqp_url)
    try:
        admin.reset(queue)
        declared = admin.connection.rpc(
            spec.Queue.Declare(queue=queue, passive=True), spec.Queue.DeclareOk
        )
        assert isinstance(declared, spec.Queue.DeclareOk)
        assert declared.message_count == 0
        admin.delete(queue)
    finally:
        admin.close()
