"""`kansrijk directory`: routing's reference data, route maps and organisations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.cli.common import err
from services.registry import SERVICES

app = typer.Typer()
directory_app = typer.Typer(
    help="The routing directory: reference data, route maps and organisations.", no_args_is_help=True
)
app.add_typer(directory_app, name="directory")


@directory_app.command("load")
def directory_load(
    gemeenten: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="CBS gemeenten.csv (code,name,province); default: the shipped edition"
        ),
    ] = None,
    postcodes: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="CBS pc4_gemeente.csv (pc4,gemeente_code,address_count,share); default: the shipped edition",
        ),
    ] = None,
    edition: Annotated[
        str | None,
        typer.Option(help="the CBS edition, e.g. 2025 (default: read from the file name or a SOURCES.md beside it)"),
    ] = None,
) -> None:
    """Load (or update to) an edition of the CBS gemeenten and postcode areas; without options the edition
    shipped in services/routing/reference_data. Bron: CBS (CC BY 4.0)."""
    import asyncio

    from services.routing.service_layer.directory import (
        SHIPPED_GEMEENTEN,
        SHIPPED_POSTCODES,
        cbs_edition,
        load_cbs,
    )
    from services.routing.service_layer.unit_of_work import unit_of_work_factory
    from shared import migrations
    from shared.crypto import cipher_for
    from shared.db import Database

    if (gemeenten is None) != (postcodes is None):
        raise typer.BadParameter(
            "give both --gemeenten and --postcodes (one edition), or neither for the shipped one",
            param_hint="--gemeenten/--postcodes",
        )
    gemeenten_file = gemeenten or SHIPPED_GEMEENTEN
    postcodes_file = postcodes or SHIPPED_POSTCODES
    settings = SERVICES["routing"].settings()
    label = edition or cbs_edition(gemeenten_file)
    if label is None:
        err.print(
            f"[red]✗[/] which CBS edition is {gemeenten_file.name}? Neither its name nor a SOURCES.md beside it says: "
            "give --edition (e.g. --edition 2025)"
        )
        raise typer.Exit(2)
    migrations.upgrade("routing", settings.database_url, cipher=cipher_for(settings))

    async def load() -> None:
        database = Database(settings.database_url, cipher=cipher_for(settings))
        try:
            report = await load_cbs(
                unit_of_work_factory(database),
                gemeenten_file=gemeenten_file,
                postcodes_file=postcodes_file,
                edition=label,
            )
        finally:
            await database.dispose()
        err.print(
            f"[green]✓[/] CBS {label}: {report.gemeenten} gemeenten, {report.postcode_areas} postcode areas "
            f"({report.straddling} straddle a border: routed to the largest share), {report.ended} ended. Bron: CBS"
        )

    try:
        asyncio.run(load())
    except ValueError as exc:
        err.print(f"[red]✗[/] {exc}")
        raise typer.Exit(1) from None


@directory_app.command("route-maps")
def directory_route_maps(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="JSON {gemeente: route map(s)} or CSV (see docs: route maps)"),
    ],
) -> None:
    """Load route maps (routekaarten) for many gemeenten at once: every version is checked as the API checks
    it, and all are saved in one transaction or none."""
    import asyncio

    from rich.markup import escape

    from services.routing.service_layer.directory import load_route_maps
    from services.routing.service_layer.route_map_file import RouteMapFileError, read_route_maps
    from services.routing.service_layer.unit_of_work import unit_of_work_factory
    from shared import migrations
    from shared.crypto import cipher_for
    from shared.db import Database
    from shared.errors import ValidationFailed

    settings = SERVICES["routing"].settings()
    migrations.upgrade("routing", settings.database_url, cipher=cipher_for(settings))
    try:
        maps = read_route_maps(file)
    except RouteMapFileError as exc:
        err.print(f"[red]✗[/] {escape(str(exc))}")  # the file's own text, shown as written
        raise typer.Exit(1) from None

    async def load() -> int:
        database = Database(settings.database_url, cipher=cipher_for(settings))
        try:
            return await load_route_maps(unit_of_work_factory(database), maps)
        finally:
            await database.dispose()

    try:
        saved = asyncio.run(load())
    except ValidationFailed as exc:
        err.print(f"[red]✗[/] {exc}")
        raise typer.Exit(1) from None
    err.print(f"[green]✓[/] {saved} route map version(s) for {len(maps)} gemeente(n)")
