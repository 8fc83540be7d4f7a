"""`kansrijk audit`: the audit log (NEN 7513) of every service."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli.common import err, services_or_all, with_database
from services.registry import SERVICES

app = typer.Typer()
audit_app = typer.Typer(help="The audit log (NEN 7513) of every service.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(services: Annotated[list[str] | None, typer.Argument(help="default: all three")] = None) -> None:
    """Walk each service's audit hash chain; exit 1 if a record was changed, removed or reordered."""
    import asyncio

    from shared.audit import verify

    broken = False
    for name in services_or_all(services):
        tables = SERVICES[name].parts.audit
        report = asyncio.run(with_database(name, lambda db, _s, t=tables, n=name: verify(db, t, n)))
        if report.intact:
            span = ", ".join(f"chain {chain}: {first}..{last}" for chain, (first, last) in sorted(report.spans.items()))
            span = span or "no records yet"
            err.print(f"[green]✓[/] {name}: chain intact, {report.records} record(s) ({span})")
        else:
            broken = True
            err.print(f"[red]✗[/] {name}: {len(report.problems)} problem(s) in {report.records} record(s)")
            for problem in report.problems[:50]:
                err.print(f"    {problem}")
    if broken:
        raise typer.Exit(1)
