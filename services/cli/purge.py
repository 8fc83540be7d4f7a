"""`kansrijk purge`: what retention lets go of, now."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from services.cli.common import err, services_or_all, with_database
from services.registry import SERVICES

app = typer.Typer()


@app.command()
def purge(
    services: Annotated[list[str] | None, typer.Argument(help="default: all three")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only count what would be removed")] = False,
) -> None:
    """Remove what retention lets go of now (the workers do this every hour): personal data of meldingen
    past their purpose, old consents, audit records past five years, spent outbox/dedup/idempotency rows."""
    import asyncio

    from shared.retention import prune

    for name in services_or_all(services):
        parts = SERVICES[name].parts

        async def run(database: Any, settings: Any, parts: Any = parts) -> dict[str, int]:
            counts: dict[str, int] = await parts.purge(database, settings, dry_run)
            counts.update(await prune(database, parts.retention_rules(settings), dry_run=dry_run))
            return counts

        counts = asyncio.run(with_database(name, run))
        verb = "would remove" if dry_run else "removed"
        err.print(f"[green]✓[/] {name} {verb}: " + ", ".join(f"{count} {what}" for what, count in counts.items()))
