"""The product as it is shipped: the wheel holds `shared/` and `services/` (the CLI among them) and none of
the development tools, and declares no command of theirs; in the checkout the tools plug theirs in."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from configparser import ConfigParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS_COMMANDS = ("bench", "demo", "consume", "login-provider")


def test_the_wheel_ships_the_product_and_no_tools(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH (the README's setup installs it)")
    subprocess.run([uv, "build", "--wheel", "--out-dir", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("kansrijk-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = ConfigParser()
        entry_points.read_string(archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode())
    assert not [n for n in names if n.startswith("tools/")]
    assert "services/cli/__init__.py" in names and "services/registry.py" in names and "shared/db.py" in names
    assert entry_points.sections() == ["console_scripts"]
    assert dict(entry_points["console_scripts"]) == {"kansrijk": "services.cli:main"}


def test_the_tools_plug_their_commands_into_kansrijk_in_the_checkout() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "services.cli", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    for command in ("up", "serve", "token", "directory", "report", *TOOLS_COMMANDS):
        assert f" {command} " in shown.stdout, command
    assert "not loaded" not in shown.stderr
