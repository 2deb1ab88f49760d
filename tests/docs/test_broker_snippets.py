"""The documentation's examples that need RabbitMQ run against the test suite's broker.

Such a block is fenced as ```{.python .broker} (mkdocs renders it as Python; the broker-free
test, tests/docs/test_examples.py, leaves it alone). It finds the broker's URL in the name
``AMQP_URL``. On a page with such blocks, every block, ```python and ```{.python .broker},
runs in page order in one namespace, so a broker block can use what the page defined before it
(the engine page runs its socket transport against RabbitMQ this way).

Each page runs in a child process of its own (``python -m tests.docs.test_broker_snippets PAGE
URL``), the way a reader runs a copied example: Twisted's reactor can run only once per
process, a gevent hub or an event loop left behind by one page cannot disturb the next, and a
page that hangs is killed after ``TIMEOUT`` seconds with what it printed so far.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = sorted([*ROOT.glob("docs/**/*.md"), ROOT / "README.md", *ROOT.glob("packages/*/README.md")])
BROKER_BLOCK = re.compile(r"^```\{\.python \.broker\}\n(.*?)^```", re.MULTILINE | re.DOTALL)
ANY_BLOCK = re.compile(r"^```(python|\{\.python \.broker\})\n(.*?)^```", re.MULTILINE | re.DOTALL)
TIMEOUT = 60.0  # for a whole page; each page should take a few seconds


def _blocks(page: pathlib.Path) -> list[str]:
    return BROKER_BLOCK.findall(page.read_text(encoding="utf-8")) if page.exists() else []


def run_page(page: pathlib.Path, url: str) -> None:
    """Run the page's Python blocks in order, in one namespace (in the child process)."""
    namespace: dict[str, object] = {"__name__": f"docs_broker_{page.stem}", "AMQP_URL": url}
    blocks = ANY_BLOCK.findall(page.read_text(encoding="utf-8"))
    for number, (fence, block) in enumerate(blocks, start=1):
        kind = "example" if fence == "python" else "broker example"
        where = f"{page.relative_to(ROOT)} ({kind} {number})"
        print(f"--- {where}", flush=True)
        exec(compile(block, where, "exec"), namespace)
        sys.stdout.flush()


@pytest.mark.parametrize(
    "page",
    [page for page in PAGES if _blocks(page)],
    ids=lambda page: str(page.relative_to(ROOT)),
)
def test_page_broker_examples_run(page: pathlib.Path, amqp_url: str) -> None:
    command = [sys.executable, "-m", "tests.docs.test_broker_snippets", str(page), amqp_url]
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout.decode() if isinstance(expired.stdout, bytes) else expired.stdout
        pytest.fail(f"the page's examples did not finish in {TIMEOUT} s; printed:\n{output}")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"


def test_some_page_has_broker_examples() -> None:
    assert any(_blocks(page) for page in PAGES)


if __name__ == "__main__":
    run_page(pathlib.Path(sys.argv[1]).resolve(), sys.argv[2])
