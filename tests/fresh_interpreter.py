"""Run a snippet in a fresh interpreter: what a program loads, seen from a clean start."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_python(script: str, *args: str, timeout: float = 60) -> str:
    """Run ``script`` with ``python -c`` from the project's root; return what it printed.

    Raises:
        AssertionError: the script failed (its stderr is in the message).
    """
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
