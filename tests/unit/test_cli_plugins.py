"""`kansrijk`'s own commands and its plug-ins (the entry point group `kansrijk.commands`)."""

from __future__ import annotations

from typing import Any

import pytest

import services.cli as cli


def test_the_products_own_commands_are_known_without_the_tools() -> None:
    own = cli.own_commands()
    assert {"up", "serve", "worker", "migrate", "token", "directory", "audit", "purge", "report"} <= own
    assert not own & {"bench", "demo", "consume", "login-provider"}  # the tools' commands are plug-ins


class _Broken:
    name, value = "broken", "nowhere.cli:app"

    def load(self) -> Any:
        raise ModuleNotFoundError("No module named 'nowhere'")


def test_a_plug_in_that_does_not_load_is_named_and_left_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "entry_points", lambda group: [_Broken()] if group == cli.PLUGINS else [])
    before = list(cli.app.registered_groups)
    assert cli.plug_in() == []
    assert cli.app.registered_groups == before
    assert "commands broken (nowhere.cli:app) not loaded: ModuleNotFoundError" in capsys.readouterr().err
