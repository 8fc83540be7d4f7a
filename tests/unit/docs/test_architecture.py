"""docs/architecture.md walks a melding through the code by file name: every file it names must exist, so a
file that moves takes its line in the walk with it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ROOTS = ("services/", "shared/", "tools/", "tests/", "deploy/", "docs/")


def named_paths(text: str) -> set[str]:
    """The repository paths written in backticks (placeholders such as `<service>` left out)."""
    quoted = re.findall(r"`([^`\s]+)`", text)
    return {q for q in quoted if q.startswith(ROOTS) and "<" not in q}


def test_the_walk_names_only_files_that_exist() -> None:
    named = named_paths((ROOT / "docs" / "architecture.md").read_text())
    assert len(named) >= 20
    assert sorted(p for p in named if not (ROOT / p).exists()) == []


def test_a_path_that_is_gone_is_seen() -> None:
    named = named_paths("from `services/melding/api/routes.py` to `services/melding/api/gone.py`, `<service>/x`")
    assert named == {"services/melding/api/routes.py", "services/melding/api/gone.py"}
    assert [p for p in named if not (ROOT / p).exists()] == ["services/melding/api/gone.py"]
