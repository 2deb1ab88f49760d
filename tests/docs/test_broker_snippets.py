"""The documentation's examples that need RabbitMQ run against the test suite's broker.

Such a block is fenced as ```{.python .broker} (mkdocs renders it as Python; the broker-free
test, tests/docs/test_examples.py, leaves it alone). It finds the broker's URL in the name
``AMQP_URL``. Blocks of one page share a namespace and run in order, each in a fresh thread of
this process with a time limit.
"""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = sorted([*ROOT.glob("docs/**/*.md"), ROOT / "README.md", *ROOT.glob("packages/*/README.md")])
BROKER_BLOCK = re.compile(r"^```\{\.python \.broker\}\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(page: pathlib.Path) -> list[str]:
    return BROKER_BLOCK.findall(page.read_text(encoding="utf-8")) if page.exists() else []


@pytest.mark.parametrize(
    "page",
    [page for page in PAGES if _blocks(page)],
    ids=lambda page: str(page.relative_to(ROOT)),
)
def test_page_broker_examples_run(page: pathlib.Path, amqp_url: str) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_broker_{page.stem}", "AMQP_URL": amqp_url}
    for number, block in enumerate(_blocks(page), start=1):
        code = compile(block, f"{page.relative_to(ROOT)} (broker example {number})", "exec")
        exec(code, namespace)


def test_some_page_has_broker_examples() -> None:
    assert any(_blocks(page) for page in PAGES)
