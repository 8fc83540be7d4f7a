"""`kansrijk`: run, migrate and try the platform (the contract, "Running it").

One small module per group of commands, each reaching the services through `services/registry.py` and their
service layers only (import-linter, pyproject.toml). Commands of other distributions plug in through the entry
point group `kansrijk.commands` (a `typer.Typer` whose commands join these): the development tools' `bench`,
`demo`, `consume` and `login-provider` (tools/pyproject.toml); the product itself never imports them.

What a command needs beyond typer, rich and the settings is imported inside it: `kansrijk up` and `kansrijk
token` start in a fraction of the time the web and database stack takes to import (docs/performance.md,
"Start-up").
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from services.cli import audit, directory, purge, report, run, token
from services.cli.common import err

PLUGINS = "kansrijk.commands"
_plugged_in: list[str] = []

app = typer.Typer(
    help="Kansrijke Start meldingen: consent-checked meldingen to JGZ and wijkteams.",
    no_args_is_help=True,
    add_completion=False,
)
OWN = (run.app, token.app, directory.app, audit.app, purge.app, report.app)
for commands in OWN:
    app.add_typer(commands)


def own_commands() -> set[str]:
    """The product's command names (typer's default: the function's name with dashes)."""
    names = set()
    for group in OWN:
        names |= {
            c.name or (c.callback.__name__.replace("_", "-") if c.callback else "") for c in group.registered_commands
        }
        names |= {g.name or "" for g in group.registered_groups}
    return names - {""}


def plug_in() -> list[str]:
    """Add the installed distributions' command groups (`kansrijk.commands`) to `app`; their names. One that
    fails to load is named on stderr and left out, so that the product's own commands still run. Asked again,
    it adds nothing twice."""
    loaded = []
    for point in entry_points(group=PLUGINS):
        if point.name in _plugged_in:
            loaded.append(point.name)
            continue
        try:
            commands = point.load()
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not take `kansrijk --help` down with it
            err.print(f"[yellow]![/] commands {point.name} ({point.value}) not loaded: {type(exc).__name__}: {exc}")
            continue
        app.add_typer(commands)
        _plugged_in.append(point.name)
        loaded.append(point.name)
    return loaded


def main() -> None:
    # The product's own commands start without looking for plug-ins (`kansrijk up` starts five of them; reading
    # every installed distribution's entry points costs a tenth of a second or more); --help and the rest look.
    if sys.argv[1:2] == [] or sys.argv[1] not in own_commands():
        plug_in()
    app()
