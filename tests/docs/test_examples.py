"""Every ```python example in the docs and the READMEs runs, in order, file by file.

Blocks of one file share a namespace, so a page can build an example up step by step. A block
that must not run (a sketch with placeholders) is fenced as ```text instead.
"""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = sorted([*ROOT.glob("docs/**/*.md"), ROOT / "README.md", *ROOT.glob("packages/*/README.md")])
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _examples(page: pathlib.Path) -> list[str]:
    return PYTHON_BLOCK.findall(page.read_text(encoding="utf-8")) if page.exists() else []


@pytest.mark.parametrize(
    "page",
    [page for page in PAGES if _examples(page)],
    ids=lambda page: str(page.relative_to(ROOT)),
)
def test_page_examples_run(page: pathlib.Path) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_example_{page.stem}"}
    for number, block in enumerate(_examples(page), start=1):
        code = compile(block, f"{page.relative_to(ROOT)} (example {number})", "exec")
        exec(code, namespace)


def test_some_page_has_examples() -> None:
    assert any(_examples(page) for page in PAGES)
