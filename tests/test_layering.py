"""The layering of the design: adapter packages move bytes and hold no AMQP protocol logic.

Every adapter package's sources are scanned for references to spec method classes
(``spec.Basic.Ack`` ...) and to frame-type constants (``FRAME_METHOD`` ...), and the
callback-style adapters for imports of the engine: each means AMQP semantics leaked out of
amqp_core. (``amqp_core.frame.Method`` as a callback argument type is fine: it carries no logic.)
"""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
ADAPTERS = (
    "amqp-blocking",
    "amqp-select",
    "amqp-asyncio",
    "amqp-tornado",
    "amqp-twisted",
    "amqp-gevent",
)
# The blocking adapter drives the engine itself (DESIGN.md), so the engine import is allowed
# there; the callback-style adapters only hand amqp_core's Connection their loop.
FORBIDDEN = {
    "a spec method class": re.compile(
        r"\bspec\.(Connection|Channel|Access|Exchange|Queue|Basic|Confirm|Tx)\."
    ),
    "a frame-type constant": re.compile(r"\bFRAME_[A-Z_]+\b"),
    "an import of the spec's method classes": re.compile(
        r"from\s+amqp_core\.spec\s+import\s+.*\b(Connection|Channel|Access|Exchange|Queue|Basic|"
        r"Confirm|Tx)\b"
    ),
}
CALLBACK_ADAPTERS = ("amqp-select", "amqp-asyncio", "amqp-tornado", "amqp-twisted", "amqp-gevent")
ENGINE_IMPORT = re.compile(r"\bamqp_core\.engine\b|from amqp_core import.*\bEngine\b")


def _sources(distribution: str) -> list[pathlib.Path]:
    return sorted((ROOT / "packages" / distribution / "src").rglob("*.py"))


@pytest.mark.parametrize("distribution", ADAPTERS)
def test_no_protocol_logic_in_adapter(distribution: str) -> None:
    sources = _sources(distribution)
    assert sources, f"no sources found for {distribution}"
    found = []
    for path in sources:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for what, pattern in FORBIDDEN.items():
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()}")
            if distribution in CALLBACK_ADAPTERS and ENGINE_IMPORT.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: the engine: {line.strip()}")
    assert not found, "AMQP logic outside amqp_core:\n" + "\n".join(found)


def test_the_scan_catches_what_it_looks_for() -> None:
    leaks = [
        "if isinstance(method, spec.Basic.Nack):",
        "kind = frame_type == FRAME_METHOD",
        "from amqp_core.spec import Basic",
    ]
    for leak in leaks:
        assert any(pattern.search(leak) for pattern in FORBIDDEN.values()), leak
    assert ENGINE_IMPORT.search("from amqp_core.engine import Engine")
