"""`kansrijk token`: a development token."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli.common import err
from shared.contracts.scopes import MAX_TOKEN_LIFETIME_SECONDS, ORG_TYPES, SCOPES
from shared.settings import ServiceSettings

app = typer.Typer()


@app.command()
def token(
    org_id: Annotated[str, typer.Option(help="the organisation (URA number)")],
    org_type: Annotated[str, typer.Option(help=", ".join(sorted(ORG_TYPES)))],
    scope: Annotated[str, typer.Option(help=f"space-separated scopes: {' '.join(SCOPES)}")],
    sub: Annotated[str, typer.Option(help="the acting user or system")] = "dev-user",
    ttl: Annotated[
        int, typer.Option(help="lifetime in seconds (at most 12 hours)", min=1, max=MAX_TOKEN_LIFETIME_SECONDS)
    ] = 3600,
) -> None:
    """Print a signed development JWT that services running with the development settings accept."""
    from shared.auth import DevelopmentOnly, development_token

    if org_type not in ORG_TYPES:
        raise typer.BadParameter(f"org_type must be one of {', '.join(sorted(ORG_TYPES))}", param_hint="--org-type")
    unknown = [s for s in scope.split() if s not in SCOPES]
    if unknown:
        raise typer.BadParameter(f"unknown scope(s) {' '.join(unknown)}", param_hint="--scope")
    try:
        token = development_token(
            ServiceSettings(), org_id=org_id, org_type=org_type, scopes=scope, sub=sub, ttl_seconds=ttl
        )
    except DevelopmentOnly:
        err.print("[red]kansrijk token signs with the development key; production tokens come from the issuer[/]")
        raise typer.Exit(2) from None
    typer.echo(token)
