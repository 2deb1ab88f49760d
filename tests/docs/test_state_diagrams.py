from __future__ import annotations

import pathlib

import pytest

from amqp_core._state import CHANNEL_TRANSITIONS, CONNECTION_TRANSITIONS
from tools import state_diagrams


def test_committed_diagrams_match_the_state_tables() -> None:
    page = state_diagrams.PAGE.read_text(encoding="utf-8")
    assert state_diagrams.render(page) == page, (
        "docs/engine.md's state diagrams differ from amqp_core/_state.py: "
        "run `hatch run python -m tools.state_diagrams`"
    )
    assert state_diagrams.main(["--check"]) == 0


def test_every_transition_is_drawn() -> None:
    section = state_diagrams.section()
    for table in (CONNECTION_TRANSITIONS, CHANNEL_TRANSITIONS):
        for (state, cause), target in table.items():
            edge = next(
                line
                for line in section.splitlines()
                if line.strip().startswith(f"{state.name} --> {target.name}:")
            )
            assert cause.name in edge.split(": ", 1)[1].split(", ")


def test_a_stale_page_is_reported(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = state_diagrams.PAGE.read_text(encoding="utf-8")
    stale = tmp_path / "engine.md"
    stale.write_text(page.replace("RECV_OPEN_OK", "RECV_SOMETHING", 1), encoding="utf-8")
    monkeypatch.setattr(state_diagrams, "PAGE", stale)
    assert state_diagrams.main(["--check"]) == 1
    assert state_diagrams.main([]) == 0
    assert stale.read_text(encoding="utf-8") == page
