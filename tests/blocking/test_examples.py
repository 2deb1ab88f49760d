"""The runnable blocking examples in ``examples/`` work against a real RabbitMQ."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("blocking_confirmed_publish.py", "batch: 1000 confirmed, 0 failed"),
        ("blocking_consume.py", "acknowledged 5 messages"),
    ],
)
def test_example_runs(amqp_url: str, script: str, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), amqp_url],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
