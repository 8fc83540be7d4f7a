"""`kansrijk report`: the programme figures as one HTML page."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from services.cli.common import err, with_database, without_password

app = typer.Typer()


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="the HTML file to write", dir_okay=False)],
    first: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="first day, widened to its period")],
    last: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="last day, widened to its period")],
    gemeente: Annotated[
        str | None, typer.Option(help="CBS gemeente code, e.g. GM0363; omit (and --region) for the country")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="CBS GGD region code, e.g. GG3406 (not with --gemeente); omit for the country")
    ] = None,
    interval: Annotated[str, typer.Option(help="month, quarter or year")] = "month",
    url: Annotated[
        str | None,
        typer.Option(help="ask the melding service at this URL (with --token) instead of reading its database"),
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="KANSRIJK_TOKEN", help="a bearer token with figures:read (with --url)")
    ] = None,
) -> None:
    """Write the programme figures of a gemeente, a GGD region or the country as one self-contained HTML page in Dutch,
    for a coalition coordinator to open or mail: charts, a table, small numbers suppressed."""
    import asyncio

    from services.melding.service_layer.figures import shows_nothing
    from services.melding.service_layer.report import render_report
    from shared.clock import now
    from shared.identifiers import validate_gemeente_code, validate_ggd_region_code

    try:
        code = validate_gemeente_code(gemeente) if gemeente else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--gemeente") from None
    try:
        region_code = validate_ggd_region_code(region) if region else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--region") from None
    if code and region_code:
        raise typer.BadParameter("ask for a gemeente or a region, not both", param_hint="--region")
    if interval not in ("month", "quarter", "year"):
        raise typer.BadParameter("one of month, quarter, year", param_hint="--interval")
    if url:
        document = _figures_over_http(url, token, code, region_code, first.date(), last.date(), interval)
    else:
        document = asyncio.run(
            with_database("melding", partial(_figures_from_database, code, region_code, first, last, interval))
        )
    out.write_text(render_report(document, now()), encoding="utf-8")
    periods = document["periods"]
    err.print(f"[green]✓[/] {out}: {len(periods)} period(s) from {document['from']} to {document['to']}")
    if shows_nothing(periods):
        err.print(
            f"[yellow]![/] nothing to show: no meldingen in these periods, or fewer than "
            f"{document['suppression_threshold']} per period, so every figure is hidden (the page says so). "
            "Try a longer range, --interval year, or the whole country (no --gemeente or --region)."
        )


async def _figures_from_database(
    code: str | None,
    region_code: str | None,
    first: datetime,
    last: datetime,
    interval: str,
    database: Any,
    settings: Any,
) -> dict[str, Any]:
    from sqlalchemy.exc import DBAPIError

    from services.melding.service_layer.figures import Interval, programme_figures
    from services.melding.service_layer.unit_of_work import unit_of_work_factory
    from shared.auth import Principal
    from shared.errors import ValidationFailed

    reporter = Principal(sub="kansrijk-report", org_id="kansrijk-platform", org_type="operator", scopes=frozenset())
    try:
        return await programme_figures(
            unit_of_work_factory(database),
            principal=reporter,
            gemeente_code=code,
            region_code=region_code,
            first=first.date(),
            last=last.date(),
            interval=Interval(interval),
            request_id=None,
        )
    except ValidationFailed as exc:
        raise typer.BadParameter(exc.detail, param_hint=f"--{exc.field}") from None
    except DBAPIError as exc:  # most often a database `kansrijk up` (which migrates) has not run against yet
        err.print(
            f"[red]✗[/] cannot read the melding database at {without_password(settings.database_url)} "
            f"({type(exc.orig).__name__}): run `kansrijk migrate melding` first, or pass --url to ask the service"
        )
        raise typer.Exit(1) from None


def _figures_over_http(
    url: str, token: str | None, code: str | None, region_code: str | None, first: Any, last: Any, interval: str
) -> dict[str, Any]:
    import httpx

    if not token:
        raise typer.BadParameter(
            "--url needs a token with figures:read (--token or KANSRIJK_TOKEN)", param_hint="--token"
        )
    params = {"from": str(first), "to": str(last), "interval": interval}
    params |= {"gemeente": code} if code else {"region": region_code} if region_code else {}
    try:
        response = httpx.get(
            f"{url.rstrip('/')}/v1/figures", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
    except httpx.HTTPError as exc:
        err.print(f"[red]✗[/] could not reach the melding service at {url}: {type(exc).__name__}")
        raise typer.Exit(1) from None
    if response.status_code != 200:
        detail = response.json().get("detail") if response.headers.get("content-type", "").endswith("json") else ""
        err.print(f"[red]✗[/] the melding service answered {response.status_code}: {detail}")
        raise typer.Exit(1)
    document: dict[str, Any] = response.json()
    return document
