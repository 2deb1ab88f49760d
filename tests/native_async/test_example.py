"""examples/native_async.py runs against the broker, on asyncio and on trio."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "native_async.py"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_example_runs(amqp_url: str, backend: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), amqp_url, backend],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("unroutable, as expected")
    assert lines[1:] == sorted(f"message {n}" for n in range(10))
