"""The README's second command: the demo publishes and consumes through every adapter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools import demo

ROOT = Path(__file__).resolve().parents[2]


def _check_output(out: str, count: int) -> None:
    for adapter in demo.ADAPTERS:
        published = re.search(
            rf"^{adapter}\b.*: published {count} messages of \d+ bytes with confirms in "
            rf"[\d.]+ s \([\d,]+ msg/s\), {count} confirmed$",
            out,
            re.MULTILINE,
        )
        consumed = re.search(
            rf"^{adapter}\b.*: consumed and acked {count} messages in [\d.]+ s", out, re.MULTILINE
        )
        assert published, out
        assert consumed, out
    assert out.rstrip().endswith("demo finished: all adapters OK")


def test_demo_against_the_session_broker(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AMQP_URL", amqp_url)
    assert demo.main(["--count", "300", "--size", "10"]) == 0
    out = capsys.readouterr().out
    assert "using the broker at $AMQP_URL" in out
    _check_output(out, 300)


def test_demo_reports_a_failing_adapter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2F?socket_timeout=2")
    assert demo.main(["--count", "1", "--adapter", "select"]) == 1
    out = capsys.readouterr().out
    assert "select: FAILED: AMQPConnectionError" in out
    assert "with 1 failure(s)" in out


@pytest.mark.slow
def test_demo_starts_its_own_broker_without_amqp_url() -> None:
    env = {key: value for key, value in os.environ.items() if key != "AMQP_URL"}
    completed = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--count", "200"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert "starting a throwaway RabbitMQ" in out
    assert "RabbitMQ stopped and removed" in out
    _check_output(out, 200)
