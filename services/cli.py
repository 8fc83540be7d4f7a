"""`kansrijk`: run, migrate and try the platform (CONTRACT.md, "Running it")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from services.registry import SERVICES
from shared import migrations
from shared.auth import MAX_TOKEN_LIFETIME_SECONDS, ORG_TYPES, SCOPES, issue_token, load_or_create_dev_key
from shared.crypto import cipher_for
from shared.settings import ServiceSettings

app = typer.Typer(help="Kansrijke Start meldingen: consent-checked meldingen to JGZ and wijkteams.",
                  no_args_is_help=True, add_completion=False)
err = Console(stderr=True, soft_wrap=True)  # one line per finding, whatever the width: operators grep it

ServiceName = Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVICES)}")]


def _migrate_when_reachable(name: str, settings: Any) -> None:
    """Apply the migrations, waiting (with backoff) for a database that is not up yet: services may start
    in any order, and one that comes up before its database waits for it instead of crashing."""
    from tenacity import Retrying, retry_if_exception, wait_exponential

    from shared.db import is_database_unavailable

    def tell(state: Any) -> None:
        err.print(f"[yellow]…[/] {name}: database not reachable yet ({type(state.outcome.exception()).__name__}); "
                  f"retrying in {state.next_action.sleep:.0f}s")

    for attempt in Retrying(retry=retry_if_exception(is_database_unavailable), wait=wait_exponential(0.5, max=10),
                            before_sleep=tell, reraise=True):
        with attempt:
            migrations.upgrade(name, settings.database_url, cipher=cipher_for(settings))


def _entry(name: str):  # noqa: ANN202 - typer callback helper
    if name not in SERVICES:
        raise typer.BadParameter(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
    return SERVICES[name]


@app.command()
def migrate(
    service: Annotated[str | None, typer.Argument(help="one service; all when left out")] = None,
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
    down: Annotated[bool, typer.Option("--down", help="downgrade to --revision (default: base)")] = False,
) -> None:
    """Apply (or undo) the database migrations of one service or all."""
    names = [_entry(service).name] if service else list(SERVICES)
    for name in names:
        settings = SERVICES[name].settings()
        if down:
            migrations.downgrade(name, settings.database_url, "base" if revision == "head" else revision,
                                 cipher=cipher_for(settings))
        else:
            migrations.upgrade(name, settings.database_url, revision, cipher=cipher_for(settings))
        err.print(f"[green]✓[/] {name}: migrated {'down to' if down else 'to'} {revision if not down or revision != 'head' else 'base'}")


@app.command()
def serve(
    service: ServiceName,
    port: Annotated[int | None, typer.Option(help="port (default: the service's, or KANSRIJK_<NAME>_PORT)")] = None,
    host: Annotated[str | None, typer.Option(help="interface to listen on (default 127.0.0.1)")] = None,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate", help="apply migrations first")] = True,
    workers: Annotated[bool, typer.Option("--workers/--no-workers",
                                          help="also run the relay and consumers (--no-workers: the API alone, "
                                               "with `kansrijk worker` run apart)")] = True,
) -> None:
    """Run one service — its API, outbox relay and consumers — until SIGTERM or Ctrl-C."""
    import uvicorn

    from shared.server import server_config

    entry = _entry(service)
    overrides = {k: v for k, v in {"port": port, "host": host}.items() if v is not None}
    settings: ServiceSettings = entry.settings(**overrides)
    if migrate_first:
        _migrate_when_reachable(entry.name, settings)
    application = entry.app_factory()(settings, run_workers=workers)
    uvicorn.Server(server_config(application, settings)).run()


@app.command()
def worker(
    service: ServiceName,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate", help="apply migrations first")] = True,
) -> None:
    """Run only a service's outbox relay and consumers, no API, until SIGTERM or Ctrl-C (scale them apart)."""
    import asyncio

    entry = _entry(service)
    settings: ServiceSettings = entry.settings()
    if migrate_first:
        _migrate_when_reachable(entry.name, settings)
    application = entry.app_factory()(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        # The app's lifespan is what starts and (gracefully) stops the workers; no HTTP server around it.
        async with application.router.lifespan_context(application):
            await stop.wait()

    asyncio.run(run())


@app.command()
def up() -> None:
    """Apply every service's migrations, then run all services until Ctrl-C / SIGTERM stops them all."""
    for name, entry in SERVICES.items():
        _migrate_when_reachable(name, entry.settings())
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name in SERVICES:
        children[name] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", name, "--no-migrate"],
            # Own process group: Ctrl-C reaches us, and we stop the children in order.
            start_new_session=True,
        )
        settings = SERVICES[name].settings()
        err.print(f"[green]▶[/] {name} on http://{settings.host}:{settings.port}  (docs: /docs)")
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                err.print(f"[red]✗[/] {name} exited with {child.returncode}; stopping the others")
                stopping, exit_code = True, 1
        time.sleep(0.2)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            err.print(f"[yellow]![/] {name} did not stop in time; killing it")
            child.kill()
            child.wait()
    err.print("stopped")
    raise typer.Exit(exit_code)


@app.command()
def token(
    org_id: Annotated[str, typer.Option(help="the organisation (URA number)")],
    org_type: Annotated[str, typer.Option(help=", ".join(sorted(ORG_TYPES)))],
    scope: Annotated[str, typer.Option(help=f"space-separated scopes: {' '.join(SCOPES)}")],
    sub: Annotated[str, typer.Option(help="the acting user or system")] = "dev-user",
    ttl: Annotated[int, typer.Option(help="lifetime in seconds (at most 12 hours)", min=1,
                                     max=MAX_TOKEN_LIFETIME_SECONDS)] = 3600,
) -> None:
    """Print a signed development JWT that services running with the development settings accept."""
    if org_type not in ORG_TYPES:
        raise typer.BadParameter(f"org_type must be one of {', '.join(sorted(ORG_TYPES))}", param_hint="--org-type")
    unknown = [s for s in scope.split() if s not in SCOPES]
    if unknown:
        raise typer.BadParameter(f"unknown scope(s) {' '.join(unknown)}", param_hint="--scope")
    settings = ServiceSettings()
    if not settings.is_development:
        err.print("[red]kansrijk token signs with the development key; production tokens come from the issuer[/]")
        raise typer.Exit(2)
    key = load_or_create_dev_key(settings.dev_key_dir)
    typer.echo(issue_token(key, issuer=settings.jwt_issuer, audience=settings.jwt_audience, org_id=org_id,
                           org_type=org_type, scopes=scope, sub=sub, ttl_seconds=ttl))


directory_app = typer.Typer(help="The routing directory: reference data and organisations.", no_args_is_help=True)
app.add_typer(directory_app, name="directory")


@directory_app.command("load")
def directory_load(
    gemeenten: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="CBS gemeenten.csv (code,name,province)")],
    postcodes: Annotated[Path, typer.Option(exists=True, dir_okay=False,
                                            help="CBS pc4_gemeente.csv (pc4,gemeente_code,address_count,share)")],
    edition: Annotated[str | None, typer.Option(help="label of this edition (default: the file's name and date)")] = None,
) -> None:
    """Load (or update to) an edition of the CBS gemeenten and postcode areas. Bron: CBS (CC BY 4.0)."""
    import asyncio

    from services.routing.service_layer.directory import load_cbs
    from shared.db import Database

    settings = SERVICES["routing"].settings()
    migrations.upgrade("routing", settings.database_url, cipher=cipher_for(settings))
    label = edition or f"{gemeenten.name} {time.strftime('%Y-%m-%d', time.localtime(gemeenten.stat().st_mtime))}"

    async def load() -> None:
        database = Database(settings.database_url, cipher=cipher_for(settings))
        try:
            report = await load_cbs(database, gemeenten_file=gemeenten, postcodes_file=postcodes, edition=label)
        finally:
            await database.dispose()
        err.print(f"[green]✓[/] {report.gemeenten} gemeenten, {report.postcode_areas} postcode areas "
                  f"({report.straddling} straddle a border: routed to the largest share), {report.ended} ended")

    try:
        asyncio.run(load())
    except ValueError as exc:
        err.print(f"[red]✗[/] {exc}")
        raise typer.Exit(1) from None


@app.command()
def consume(
    org_id: Annotated[str, typer.Option(help="the recipient organisation whose queue to read")],
    org_type: Annotated[str, typer.Option(help="jgz or wijkteam (for the development token)")] = "jgz",
    token: Annotated[str | None, typer.Option(envvar="KANSRIJK_TOKEN", help="bearer token (default: a dev token)")] = None,
    count: Annotated[int | None, typer.Option(help="stop after this many messages")] = None,
    idle_timeout: Annotated[float | None, typer.Option(help="stop after this many seconds without a message")] = None,
    full: Annotated[bool, typer.Option("--full", help="print each melding in full, personal data included")] = False,
) -> None:
    """A reference recipient: print each delivery on the organisation's queue, ack it, post status `received`."""
    import asyncio
    import json as jsonlib

    from services.reference_recipient import ReferenceRecipient

    settings = SERVICES["routing"].settings()
    if token is None:
        if not settings.is_development:
            err.print("[red]give --token (or KANSRIJK_TOKEN): development tokens exist only in development[/]")
            raise typer.Exit(2)
        key = load_or_create_dev_key(settings.dev_key_dir)
        token = issue_token(key, issuer=settings.jwt_issuer, audience=settings.jwt_audience, org_id=org_id,
                            org_type=org_type, scopes="delivery:read delivery:write", sub="kansrijk-consume")
    out = Console()

    def show(kind: str, body: dict) -> None:
        if kind == "delivered":
            out.print(f"[green]melding.delivered[/] delivery {body['delivery_id']} melding {body['melding_id']} "
                      f"gemeente {(body.get('gemeente') or {}).get('code')} risk {','.join(body['risk_domains'])} "
                      f"urgency {body['urgency']}")
            if full:
                out.print_json(jsonlib.dumps(body))
        elif kind == "retracted":
            out.print(f"[yellow]melding.retracted[/] delivery {body['delivery_id']}: deleted what was held")
        elif kind == "duplicate":
            out.print(f"[dim]duplicate {body['message_id']} dropped[/]")
        elif kind == "reported":
            out.print(f"  status received reported for {body['delivery_id']}")
        else:
            out.print(f"[red]status not reported for {body['delivery_id']} ({body['status']})[/]")

    recipient = ReferenceRecipient(amqp_url=settings.amqp_url, org_id=org_id,
                                   routing_url=f"http://127.0.0.1:{settings.port}", token=token, show=show)
    try:
        handled = asyncio.run(recipient.run(count=count, idle_timeout=idle_timeout))
    except KeyboardInterrupt:
        return
    err.print(f"{handled} message(s) handled")


audit_app = typer.Typer(help="The audit log (NEN 7513) of every service.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def _services_or_all(names: list[str] | None) -> list[str]:
    chosen = names or list(SERVICES)
    unknown = [n for n in chosen if n not in SERVICES]
    if unknown:
        err.print(f"[red]✗[/] unknown service(s): {', '.join(unknown)}; one of: {', '.join(SERVICES)}")
        raise typer.Exit(2)
    return chosen


async def _with_database(name: str, work: Any) -> Any:
    from shared.db import Database

    settings = SERVICES[name].settings()
    database = Database(settings.database_url, cipher=cipher_for(settings))
    try:
        return await work(database, settings)
    finally:
        await database.dispose()


@audit_app.command("verify")
def audit_verify(services: Annotated[list[str] | None, typer.Argument(help="default: all three")] = None) -> None:
    """Walk each service's audit hash chain; exit 1 if a record was changed, removed or reordered."""
    import asyncio
    from importlib import import_module

    from shared.audit import verify

    broken = False
    for name in _services_or_all(services):
        tables = import_module(f"services.{name}.adapters.orm").audit
        report = asyncio.run(_with_database(name, lambda db, _s, t=tables, n=name: verify(db, t, n)))
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


@app.command()
def purge(
    services: Annotated[list[str] | None, typer.Argument(help="default: all three")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only count what would be removed")] = False,
) -> None:
    """Remove what retention lets go of now (the workers do this every hour): personal data of meldingen
    past their purpose, old consents, audit records past five years, spent outbox/dedup/idempotency rows."""
    import asyncio
    from importlib import import_module

    from shared.retention import prune

    for name in _services_or_all(services):
        worker = import_module(f"services.{name}.worker")
        retention = import_module(f"services.{name}.service_layer.retention")

        async def run(database: Any, settings: Any, worker: Any = worker, retention: Any = retention) -> dict[str, int]:
            counts = await retention.purge(database, settings, dry_run=dry_run)
            counts.update(await prune(database, worker.rules(settings), dry_run=dry_run))
            return counts

        counts = asyncio.run(_with_database(name, run))
        verb = "would remove" if dry_run else "removed"
        err.print(f"[green]✓[/] {name} {verb}: " + ", ".join(f"{count} {what}" for what, count in counts.items()))


@app.command()
def bench(
    json_file: Annotated[Path | None, typer.Option("--json", help="also write every figure to this JSON file")] = None,
    duration: Annotated[float, typer.Option(help="seconds per measured phase", min=1)] = 10.0,
    rate: Annotated[float, typer.Option(help="meldingen per second of the end-to-end latency phase", min=0.5)] = 10.0,
    postgres_url: Annotated[str, typer.Option(envvar="KANSRIJK_BENCH_POSTGRES_URL",
                                              help="PostgreSQL server (the benchmark creates and drops its own "
                                                   "databases there)")] = "postgresql://postgres@127.0.0.1:5432/postgres",
    keep: Annotated[Path | None, typer.Option(help="keep the services' logs and data in this folder")] = None,
    check: Annotated[bool, typer.Option("--check", help="exit 1 if a target is missed")] = False,
) -> None:
    """Measure the system against its own infrastructure on this machine (PostgreSQL, RabbitMQ): baselines,
    end-to-end throughput, API and end-to-end latency, peak memory. Prints one table (docs/performance.md)."""
    import asyncio

    from rich.table import Table

    from services.bench import BenchOptions, BenchUnavailable, run_bench, table_rows, timestamp, write_json

    options = BenchOptions(duration=duration, rate=rate, postgres_url=postgres_url,
                           amqp_url=ServiceSettings().amqp_url, work_dir=keep)
    try:
        result = asyncio.run(run_bench(options, progress=lambda line: err.print(f"[dim]…[/] {line}")))
    except BenchUnavailable as exc:
        err.print(f"[red]✗[/] {exc}")
        raise typer.Exit(2) from None
    result["measured_at"] = timestamp()
    table = Table(title=f"kansrijk bench — {result['measured_at']}, {duration:g} s per phase")
    for column in ("figure", "value", "ratio to the baselines", "target"):
        table.add_column(column)
    for row in table_rows(result):
        table.add_row(*row)
    Console(width=160).print(table)
    if json_file is not None:
        write_json(result, json_file)
    if check and not all(result["verdicts"].values()):
        raise typer.Exit(1)


@app.command()
def demo() -> None:
    """Walk one melding from consent to the recipient's queue, with every step shown (needs RabbitMQ)."""
    import asyncio

    from services.demo import DemoRefused, run_demo

    try:
        asyncio.run(run_demo(Console()))
    except DemoRefused as exc:
        err.print(f"[red]✗[/] {exc}")
        raise typer.Exit(1) from None


def main() -> None:
    app()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
