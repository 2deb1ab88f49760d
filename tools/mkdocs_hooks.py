"""MkDocs hooks for the documentation site (named in ``mkdocs.yml``).

The guides link to the runnable programs in ``examples/`` beside ``docs/`` (so the links work on
a plain repository view too). This hook publishes each program as a page of its own,
``examples/<name>.md`` with the source in a code block, and points those links at it; links to
anything else outside ``docs/`` are left for mkdocs to report.
"""

from __future__ import annotations

import ast
import pathlib
import posixpath
import re
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# Sphinx roles in docstrings (":class:`~amqp_core.Engine`"), as mkdocstrings renders them.
_ROLE = re.compile(r":(?:class|func|meth|attr|mod|exc|data|obj|const):<code>(~?)([^<]*)</code>")
# Sphinx's "paragraph::" that introduces a literal block (rendered as a code block anyway).
_LITERAL_MARKER = re.compile(r"(\w)::</p>")
# A Markdown link target that climbs out of docs/ into examples/: ](../examples/x.py) or deeper.
_EXAMPLE_LINK = re.compile(r"\]\(((?:\.\./)+)examples/(\w+)\.py\)")


def _programs() -> list[pathlib.Path]:
    return sorted(path for path in EXAMPLES.glob("*.py") if not path.name.startswith("_"))


def _summary(source: str) -> str:
    docstring = ast.get_docstring(ast.parse(source)) or ""
    return docstring.strip().split("\n\n")[0].replace("\n", " ")


def _example_page(path: pathlib.Path) -> str:
    source = path.read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source)) or ""
    return (
        f"# `examples/{path.name}`\n\n{docstring}\n\n"
        f"Run it: `hatch run python examples/{path.name}` (see each program's docstring for its"
        " arguments).\n\n"
        f"```{{.python .no-test}}\n{source}```\n"
    )


def _index_page(programs: list[pathlib.Path]) -> str:
    rows = "\n".join(
        f"| [`{path.name}`]({path.stem}.md) | {_summary(path.read_text(encoding='utf-8'))} |"
        for path in programs
    )
    return (
        "# Examples\n\n"
        "Runnable programs, one per common task per adapter, in the repository's `examples/`"
        " folder. The test suite runs every one of them against a throwaway RabbitMQ and checks"
        " what it printed.\n\n"
        f"| program | what it does |\n|---|---|\n{rows}\n"
    )


def on_config(config: MkDocsConfig, **_: Any) -> MkDocsConfig:
    """Put ``performance.md`` (the benchmark results) in the navigation once it exists."""
    if (pathlib.Path(config["docs_dir"]) / "performance.md").exists():
        for index, entry in enumerate(config["nav"]):
            if isinstance(entry, dict) and entry.get("Performance") == "benchmarks.md":
                config["nav"][index] = {
                    "Performance": [
                        {"Results": "performance.md"},
                        {"Running the benchmarks": "benchmarks.md"},
                    ]
                }
    return config


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    """Add one generated page per example program, and their index."""
    programs = _programs()
    files.append(File.generated(config, "examples/index.md", content=_index_page(programs)))
    for path in programs:
        files.append(
            File.generated(config, f"examples/{path.stem}.md", content=_example_page(path))
        )
    return files


def on_page_markdown(markdown: str, page: Page, **_: Any) -> str:
    """Point links at ``examples/*.py`` outside ``docs/`` to the generated example pages."""
    here = posixpath.dirname(page.file.src_uri)

    def relink(match: re.Match[str]) -> str:
        target = posixpath.relpath(f"examples/{match.group(2)}.md", here or ".")
        return f"]({target})"

    return _EXAMPLE_LINK.sub(relink, markdown)


def _role(match: re.Match[str]) -> str:
    name = match.group(2).rsplit(".", 1)[-1] if match.group(1) else match.group(2)
    return f"<code>{name}</code>"


def on_page_content(html: str, **_: Any) -> str:
    """Show the docstrings' Sphinx roles as plain code: ``:class:`~a.B``` becomes ``B``."""
    return _LITERAL_MARKER.sub(r"\1:</p>", _ROLE.sub(_role, html))
