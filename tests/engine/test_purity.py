"""amqp_core stays sans-I/O: no module of it imports I/O, clocks, threads or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import amqp_core

FORBIDDEN = frozenset(
    {"socket", "ssl", "select", "selectors", "asyncio", "threading", "time", "random", "logging"}
)
# logging: the core configures no logging (and today logs nothing); adapters may.
ROOT = Path(amqp_core.__file__).parent
# The only exceptions, module -> names it may import, each with its reason.
ALLOWED: dict[str, frozenset[str]] = {
    # Building the ssl.SSLContext of an amqps:// URL (and checking SSLOptions' type) is
    # configuration, not I/O: no socket is opened; the adapter wraps the stream with it.
    "parameters.py": frozenset({"ssl"}),
    # TLS over memory BIOs: ciphertext in, plaintext out; the adapter owns the socket.
    "tls.py": frozenset({"ssl"}),
    # Only under TYPE_CHECKING, for the ssl.SSLContext annotation of StreamSettings.
    "transport.py": frozenset({"ssl"}),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            found.append((node.lineno, "__import__"))
    return found


def test_core_sources_import_nothing_forbidden() -> None:
    offenders = []
    sources = sorted(ROOT.rglob("*.py"))
    assert sources
    for path in sources:
        allowed = ALLOWED.get(str(path.relative_to(ROOT)), frozenset())
        for lineno, name in _imports(path):
            if name in allowed:
                continue
            if name == "__import__" or name.split(".")[0] in FORBIDDEN or name == "importlib":
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {name}")
    assert not offenders, "amqp_core must stay sans-I/O:\n" + "\n".join(offenders)


def test_the_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import socket\nfrom time import monotonic\n__import__('x')\n")
    assert [name for _, name in _imports(bad)] == ["socket", "time", "__import__"]
