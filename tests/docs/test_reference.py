"""The API reference (docs/reference/*.md, rendered by mkdocstrings) covers every public module.

A public module is one under ``packages/*/src`` whose name has no part starting with ``_``. It is
covered when a page names it in a ``::: module`` directive, or when every name of its
``__all__`` is in the ``__all__`` of a module that a page names (its package, usually).
"""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIRECTIVE = re.compile(r"^::: ([\w.]+)\s*$", re.MULTILINE)


def _documented() -> set[str]:
    return {
        name
        for page in (ROOT / "docs" / "reference").glob("*.md")
        for name in DIRECTIVE.findall(page.read_text(encoding="utf-8"))
    }


def _public_modules() -> list[str]:
    modules = []
    for src in sorted(ROOT.glob("packages/*/src")):
        for path in sorted(src.glob("*/**/*.py")):
            names = list(path.relative_to(src).with_suffix("").parts)
            if names[-1] == "__init__":
                names.pop()
            if not any(part.startswith("_") for part in names):
                modules.append(".".join(names))
    return modules


def test_public_modules_are_found() -> None:
    modules = _public_modules()
    assert "amqp_core.engine" in modules
    assert "amqp_blocking" in modules
    assert "amqp_core.testing.strategies" in modules


@pytest.mark.parametrize("module", _public_modules())
def test_every_public_module_is_in_the_reference(module: str) -> None:
    documented = _documented()
    if module in documented:
        return
    rendered = {
        name
        for page_module in documented
        for name in getattr(importlib.import_module(page_module), "__all__", ())
    }
    names = getattr(importlib.import_module(module), "__all__", ())
    missing = [name for name in names if name not in rendered]
    hint = f"{module} is not in the API reference: add `::: {module}` to a page of docs/reference"
    assert names, f"{hint} (the module has no __all__)"
    assert not missing, f"{hint} (names rendered nowhere: {missing})"


def test_every_directive_names_an_importable_module() -> None:
    for name in _documented():
        importlib.import_module(name)
