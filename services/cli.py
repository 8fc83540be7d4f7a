"""`kansrijk`: run, migrate and try the platform (the contract, "Running it")."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from yarl import URL

from services.registry import SERVICES, WEB, ServiceEntry
from shared.contracts.scopes import MAX_TOKEN_LIFETIME_SECONDS, ORG_TYPES, SCOPES
from shared.settings import ServiceSettings

# What a command needs beyond this is imported inside it: `kansrijk up` and `kansrijk token` start in a
# fraction of the time the web and database stack takes to import (docs/performance.md, "Start-up").

app = typer.Typer(
    help="Kansrijke Start meldingen: consent-checked meldingen to JGZ and wijkteams.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True, soft_wrap=True)  # one line per finding, whatever the width: operators grep it

ServiceName = Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVICES)}")]
ServedName = Annotated[str, typer.Argument(help=f"one of: {', '.join([*SERVICES, *WEB])}")]
# The development login provider beside `kansrijk up` (tools/oidc_provider.py): a tester enters a BSN and a level.
LOGIN_PROVIDER_PORT = 8006


def _migrate_when_reachable(name: str, settings: Any) -> None:
    """Apply the migrations, waiting (with backoff) for a database that is not up yet: services may start
    in any order, and one that comes up before its database waits for it instead of crashing."""
    from tenacity import Retrying, retry_if_exception, wait_exponential

    from shared import migrations
    from shared.crypto import cipher_for
    from shared.db import is_database_unavailable

    where = f"{_without_password(settings.database_url)} (KANSRIJK_{name.upper()}_DATABASE_URL)"

    def tell(state: Any) -> None:
        err.print(
            f"[yellow]…[/] {name}: the database at {where} does not answer yet "
            f"({type(state.outcome.exception()).__name__}); retrying in {state.next_action.sleep:.0f}s"
        )

    try:
        for attempt in Retrying(
            retry=retry_if_exception(is_database_unavailable),
            wait=wait_exponential(0.5, max=10),
            before_sleep=tell,
            reraise=True,
        ):
            with attempt:
                migrations.upgrade(name, settings.database_url, cipher=cipher_for(settings))
    except Exception as exc:  # noqa: BLE001 - what waiting cannot fix: a wrong database name, user or password, a bad URL
        reason = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0][:200]
        err.print(f"[red]✗[/] {name}: cannot use the database at {where}: {type(exc).__name__}: {reason}")
        raise typer.Exit(1) from None


def _without_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not even a URL: say so without repeating it
        return "<not a database URL>"


def _entry(name: str) -> ServiceEntry:
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
    from shared import migrations
    from shared.crypto import cipher_for

    names = [_entry(service).name] if service else list(SERVICES)
    for name in names:
        settings = SERVICES[name].settings()
        if down:
            migrations.downgrade(
                name, settings.database_url, "base" if revision == "head" else revision, cipher=cipher_for(settings)
            )
        else:
            migrations.upgrade(name, settings.database_url, revision, cipher=cipher_for(settings))
        err.print(
            f"[green]✓[/] {name}: migrated {'down to' if down else 'to'} "
            f"{revision if not down or revision != 'head' else 'base'}"
        )


@app.command()
def serve(
    service: ServedName,
    port: Annotated[int | None, typer.Option(help="port (default: the service's, or KANSRIJK_<NAME>_PORT)")] = None,
    host: Annotated[str | None, typer.Option(help="interface to listen on (default 127.0.0.1)")] = None,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate", help="apply migrations first")] = True,
    workers: Annotated[
        bool,
        typer.Option(
            "--workers/--no-workers",
            help="also run the relay and consumers (--no-workers: the API alone, with `kansrijk worker` run apart)",
        ),
    ] = True,
) -> None:
    """Run one service — its API, outbox relay and consumers — until SIGTERM or Ctrl-C."""
    import uvicorn

    from shared.server import server_config

    if service in WEB:  # the portal: pages over the services' APIs, no database or workers of its own
        web = WEB[service]
        web_settings: ServiceSettings = web.settings(**{k: v for k, v in {"port": port, "host": host}.items() if v})
        _refuse_taken_port(service, web_settings)
        uvicorn.Server(server_config(web.app_factory()(web_settings), web_settings)).run()
        return
    entry = _entry(service)
    overrides = {k: v for k, v in {"port": port, "host": host}.items() if v is not None}
    settings: ServiceSettings = entry.settings(**overrides)
    _refuse_taken_port(entry.name, settings)
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
    """Run all services — each applies its migrations first, side by side — until Ctrl-C / SIGTERM stops them
    all."""
    settings = {name: entry.settings() for name, entry in SERVICES.items()}
    # The portal signs in through the development login provider unless a real one is configured.
    environment = dict(os.environ)
    with_login_provider = settings["consent"].is_development and not os.environ.get("KANSRIJK_PORTAL_OIDC_ISSUER")
    login_port = int(os.environ.get("KANSRIJK_LOGIN_PROVIDER_PORT", LOGIN_PROVIDER_PORT))
    web_apps = list(WEB)
    if with_login_provider and importlib.util.find_spec("oidc_provider_mock") is None:
        err.print("[yellow]![/] portal not started: its development login provider comes with the dev dependencies")
        with_login_provider, web_apps = False, []
    elif not with_login_provider and not os.environ.get("KANSRIJK_PORTAL_OIDC_ISSUER"):
        web_apps = []  # production without a provider for her: the portal would refuse to start
    if with_login_provider:
        environment["KANSRIJK_PORTAL_OIDC_ISSUER"] = f"http://127.0.0.1:{login_port}"
        # the console's people sign in there too (its form asks for a name, an organisation and roles)
        environment.setdefault("KANSRIJK_CONSOLE_OIDC_ISSUER", f"http://127.0.0.1:{login_port}")
    settings |= {name: WEB[name].settings() for name in web_apps}
    for name, service_settings in settings.items():
        _refuse_taken_port(name, service_settings)
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if with_login_provider:
        children["login-provider"] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "login-provider", "--port", str(login_port)], start_new_session=True
        )
        err.print(f"[green]▶[/] login-provider (development only: any BSN, any level) on http://127.0.0.1:{login_port}")
    for name in [*SERVICES, *web_apps]:
        children[name] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", name],  # it migrates its own database first
            # Own process group: Ctrl-C reaches us, and we stop the children in order.
            start_new_session=True,
            env=environment,
        )
    exit_code = 0
    announced: set[str] = set()
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                err.print(f"[red]✗[/] {name} exited with {child.returncode}; stopping the others")
                stopping, exit_code = True, 1
            elif name in settings and name not in announced and _listening(settings[name]):
                announced.add(name)  # said once it answers, not when it was merely started
                err.print(f"[green]▶[/] {name} on http://{settings[name].host}:{settings[name].port}  (docs: /docs)")
        time.sleep(0.2)
    # Callers stop before what they call, so that their last work still gets its answers: the FHIR facade
    # (it calls melding and consent), then melding and routing (they check consent), then consent.
    # The portal first (it calls all three), the login provider with it.
    first = ["portal", "login-provider", "fhir"]
    for group in (first, [n for n in children if n not in (*first, "consent")], ["consent"]):
        _stop_children({name: children[name] for name in group if name in children})
    err.print("stopped")
    raise typer.Exit(exit_code)


@app.command("login-provider")
def login_provider(
    port: Annotated[
        int, typer.Option(help="port (default 8006, or KANSRIJK_LOGIN_PROVIDER_PORT)")
    ] = LOGIN_PROVIDER_PORT,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
) -> None:
    """Run the development OpenID Connect provider the portal logs in with (`kansrijk up` starts it): a tester
    enters a BSN and a DigiD level. Development and tests only: anyone can be anyone here."""
    from tools.oidc_provider import serve as serve_provider

    serve_provider(host, port)


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
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


def _listening(settings: ServiceSettings) -> bool:
    import httpx

    try:
        return httpx.get(f"http://{settings.host}:{settings.port}/health/live", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _refuse_taken_port(name: str, settings: ServiceSettings) -> None:
    """A port another process holds: say which variable moves the service, rather than uvicorn's errno."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError:
            err.print(
                f"[red]✗[/] {name}: port {settings.port} on {settings.host} is already in use (another "
                f"kansrijk up?): stop that process, or choose another port with KANSRIJK_{name.upper()}_PORT "
                "(or --port)"
            )
            raise typer.Exit(1) from None


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

    from services.routing.api.route_map_file import RouteMapFileError, read_route_maps
    from services.routing.service_layer.directory import load_route_maps
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


@app.command()
def consume(
    org_id: Annotated[str, typer.Option(help="the recipient organisation whose queue to read")],
    org_type: Annotated[str, typer.Option(help="jgz or wijkteam (for the development token)")] = "jgz",
    token: Annotated[
        str | None, typer.Option(envvar="KANSRIJK_TOKEN", help="bearer token (default: a dev token)")
    ] = None,
    routing_url: Annotated[
        str | None,
        typer.Option(
            envvar="KANSRIJK_ROUTING_URL",
            help="the routing service (default: http://127.0.0.1:<KANSRIJK_ROUTING_PORT>)",
        ),
    ] = None,
    count: Annotated[int | None, typer.Option(help="stop after this many messages")] = None,
    idle_timeout: Annotated[float | None, typer.Option(help="stop after this many seconds without a message")] = None,
    full: Annotated[bool, typer.Option("--full", help="print each melding in full, personal data included")] = False,
    close: Annotated[
        str | None,
        typer.Option(
            "--close",
            help="after `received`, report contact made today and close with this outcome "
            "(phb-done, support-started, declined, no-contact, moved, other)",
        ),
    ] = None,
    after_sequence: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="the last sequence number this recipient handled before (0: from the start); a gap after it "
            "is fetched from the routing service. Without it, the first message sets where it starts",
        ),
    ] = None,
    return_reason: Annotated[
        str | None,
        typer.Option(
            "--return",
            help="after `received`, send each melding back with this reason "
            "(wrong-recipient, insufficient-information, no-capacity)",
        ),
    ] = None,
) -> None:
    """A reference recipient: print each delivery on the organisation's queue, ack it, post status `received`
    (and, with --close or --return, the answer that follows)."""
    import asyncio

    from tools.reference_recipient import BrokerRefused, QueueMissing, ReferenceRecipient

    if close and return_reason:
        err.print("[red]✗[/] --close or --return: a melding is closed after contact, or returned before it")
        raise typer.Exit(2)
    settings = SERVICES["routing"].settings()
    token = token or _dev_token(
        settings, org_id=org_id, org_type=org_type, scopes="delivery:read delivery:write", sub="kansrijk-consume"
    )
    base_url = routing_url or f"http://127.0.0.1:{settings.port}"
    known = _recipient_queue(base_url, token, org_id)
    out = Console(soft_wrap=True)  # ids whole on one line, also when the output is a file or a pipe
    answers: list[dict[str, Any]] = []
    if close:
        answers = [{"status": "contact_made"}, {"status": "closed", "outcome": close}]
    elif return_reason:
        answers = [{"status": "returned", "reason": return_reason}]
    recipient = ReferenceRecipient(
        amqp_url=settings.amqp_url,
        org_id=org_id,
        routing_url=base_url,
        token=token,
        show=partial(_show_message, out, full=full),
        answer=lambda _delivery: answers,
        after_sequence=after_sequence,
    )
    broker = URL(settings.amqp_url)
    err.print(
        f"reading queue {known['queue']} ({known['name']}, {known['type']}) on RabbitMQ "
        f"{broker.host}:{broker.port or 5672}, vhost {broker.path[1:] or '/'}; waiting for messages "
        "(Ctrl-C stops)"
    )
    try:
        handled = asyncio.run(recipient.run(count=count, idle_timeout=idle_timeout))
    except KeyboardInterrupt:
        return
    except BrokerRefused as refused:
        err.print(f"[red]✗[/] {refused.problem.cause}\n  fix: {refused.problem.fix}")
        raise typer.Exit(1) from None
    except QueueMissing as missing:
        err.print(
            f"[red]✗[/] the queue {missing.queue} does not exist on this vhost, though the routing service at "
            f"{base_url} knows the organisation: is that routing service using this RabbitMQ vhost "
            "(KANSRIJK_AMQP_URL)? Every terminal needs the same KANSRIJK_* environment."
        )
        raise typer.Exit(1) from None
    err.print(f"{handled} message(s) handled")


def _dev_token(settings: ServiceSettings, **claims: str) -> str:
    from shared.auth import DevelopmentOnly, development_token

    try:
        return development_token(
            settings, org_id=claims["org_id"], org_type=claims["org_type"], scopes=claims["scopes"], sub=claims["sub"]
        )
    except DevelopmentOnly:
        err.print("[red]give --token (or KANSRIJK_TOKEN): development tokens exist only in development[/]")
        raise typer.Exit(2) from None


def _recipient_queue(base_url: str, token: str, org_id: str) -> dict[str, Any]:
    """Ask the routing service whether it knows the organisation (and where its queue is) before consuming:
    a consumer of an organisation the directory does not know would wait forever on an orphan queue."""
    import httpx

    try:
        response = httpx.get(
            f"{base_url}/v1/deliveries/queue", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
    except httpx.HTTPError as exc:
        err.print(
            f"[red]✗[/] the routing service at {base_url} does not answer ({type(exc).__name__}): start it "
            "(kansrijk up), or give --routing-url / KANSRIJK_ROUTING_PORT"
        )
        raise typer.Exit(1) from None
    if response.status_code == 404:
        err.print(
            f"[red]✗[/] organisation {org_id} is not in the routing directory at {base_url}: register it "
            f"first (PUT /v1/organisations/{org_id}, scope routing:admin)"
        )
        raise typer.Exit(1)
    if response.status_code != 200:
        detail = response.json().get("detail", "") if response.headers.get("content-type", "").endswith("json") else ""
        err.print(f"[red]✗[/] the routing service refused ({response.status_code}): {detail}")
        raise typer.Exit(1)
    return dict(response.json())


def _show_message(out: Console, kind: str, body: dict[str, Any], *, full: bool) -> None:
    if kind == "delivered":
        out.print(
            f"[green]melding.delivered[/] delivery {body['delivery_id']} melding {body['melding_id']} "
            f"gemeente {(body.get('gemeente') or {}).get('code')} risk {','.join(body['risk_domains'])} "
            f"urgency {body['urgency']}"
            + (f" related {','.join(body['related_deliveries'])}" if body.get("related_deliveries") else "")
        )
        if full:
            out.print_json(json.dumps(body))
    elif kind == "retracted":
        why = f" (cancelled by the sender: {body['cancel_reason']})" if body.get("cancel_reason") else ""
        out.print(f"[yellow]melding.retracted[/] delivery {body['delivery_id']}: deleted what was held{why}")
    elif kind == "reminder":
        out.print(
            f"[red]melding.reminder[/] delivery {body['delivery_id']}: "
            f"no contact reported, due {body['contact_due_at']}"
        )
    elif kind == "ignored":
        out.print(f"[dim]{body['type']} {body['message_id']}: a message type this version does not know, acked[/]")
    elif kind == "dropped-retracted":
        out.print(f"[yellow]melding.delivered[/] delivery {body['delivery_id']} dropped: retracted before it arrived")
    elif kind == "gap":
        out.print(
            f"[yellow]gap[/] after sequence {body['after_sequence']} (seen up to {body['seen_up_to']}): "
            "fetching what is missing from GET /v1/deliveries/messages"
        )
    elif kind == "duplicate":
        out.print(f"[dim]duplicate {body['message_id']} dropped[/]")
    elif kind == "reported":
        said = body.get("outcome") or body.get("reason")
        out.print(f"  status {body['status']} reported for {body['delivery_id']}" + (f" ({said})" if said else ""))
    else:
        out.print(f"[red]status not reported for {body['delivery_id']} ({body['status']})[/]")


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
    from shared.crypto import cipher_for
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

    from shared.audit import verify

    broken = False
    for name in _services_or_all(services):
        tables = SERVICES[name].parts.audit
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

    from shared.retention import prune

    for name in _services_or_all(services):
        parts = SERVICES[name].parts

        async def run(database: Any, settings: Any, parts: Any = parts) -> dict[str, int]:
            counts: dict[str, int] = await parts.purge(database, settings, dry_run)
            counts.update(await prune(database, parts.retention_rules(settings), dry_run=dry_run))
            return counts

        counts = asyncio.run(_with_database(name, run))
        verb = "would remove" if dry_run else "removed"
        err.print(f"[green]✓[/] {name} {verb}: " + ", ".join(f"{count} {what}" for what, count in counts.items()))


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="the HTML file to write", dir_okay=False)],
    first: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="first day, widened to its period")],
    last: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="last day, widened to its period")],
    gemeente: Annotated[str | None, typer.Option(help="CBS gemeente code, e.g. GM0363; omit for the country")] = None,
    interval: Annotated[str, typer.Option(help="month, quarter or year")] = "month",
    url: Annotated[
        str | None,
        typer.Option(help="ask the melding service at this URL (with --token) instead of reading its database"),
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="KANSRIJK_TOKEN", help="a bearer token with figures:read (with --url)")
    ] = None,
) -> None:
    """Write the programme figures of a gemeente (or the country) as one self-contained HTML page in Dutch,
    for a coalition coordinator to open or mail: charts, a table, small numbers suppressed."""
    import asyncio

    from services.melding.api.report import render_report
    from services.melding.domain.figures import shows_nothing
    from shared.clock import now
    from shared.identifiers import validate_gemeente_code

    try:
        code = validate_gemeente_code(gemeente) if gemeente else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--gemeente") from None
    if interval not in ("month", "quarter", "year"):
        raise typer.BadParameter("one of month, quarter, year", param_hint="--interval")
    if url:
        document = _figures_over_http(url, token, code, first.date(), last.date(), interval)
    else:
        document = asyncio.run(_with_database("melding", partial(_figures_from_database, code, first, last, interval)))
    out.write_text(render_report(document, now()), encoding="utf-8")
    periods = document["periods"]
    err.print(f"[green]✓[/] {out}: {len(periods)} period(s) from {document['from']} to {document['to']}")
    if shows_nothing(periods):
        err.print(
            f"[yellow]![/] nothing to show: no meldingen in these periods, or fewer than "
            f"{document['suppression_threshold']} per period, so every figure is hidden (the page says so). "
            "Try a longer range, --interval year, or the whole country (no --gemeente)."
        )


async def _figures_from_database(
    code: str | None, first: datetime, last: datetime, interval: str, database: Any, settings: Any
) -> dict[str, Any]:
    from sqlalchemy.exc import DBAPIError

    from services.melding.domain.figures import Interval
    from services.melding.service_layer.figures import programme_figures
    from services.melding.service_layer.unit_of_work import unit_of_work_factory
    from shared.auth import Principal
    from shared.errors import ValidationFailed

    reporter = Principal(sub="kansrijk-report", org_id="kansrijk-platform", org_type="operator", scopes=frozenset())
    try:
        return await programme_figures(
            unit_of_work_factory(database),
            principal=reporter,
            gemeente_code=code,
            first=first.date(),
            last=last.date(),
            interval=Interval(interval),
            request_id=None,
        )
    except ValidationFailed as exc:
        raise typer.BadParameter(exc.detail, param_hint=f"--{exc.field}") from None
    except DBAPIError as exc:  # most often a database `kansrijk up` (which migrates) has not run against yet
        err.print(
            f"[red]✗[/] cannot read the melding database at {_without_password(settings.database_url)} "
            f"({type(exc.orig).__name__}): run `kansrijk migrate melding` first, or pass --url to ask the service"
        )
        raise typer.Exit(1) from None


def _figures_over_http(
    url: str, token: str | None, code: str | None, first: Any, last: Any, interval: str
) -> dict[str, Any]:
    import httpx

    if not token:
        raise typer.BadParameter(
            "--url needs a token with figures:read (--token or KANSRIJK_TOKEN)", param_hint="--token"
        )
    params = {"from": str(first), "to": str(last), "interval": interval, **({"gemeente": code} if code else {})}
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


@app.command()
def bench(
    json_file: Annotated[Path | None, typer.Option("--json", help="also write every figure to this JSON file")] = None,
    duration: Annotated[float, typer.Option(help="seconds per measured phase", min=1)] = 10.0,
    rate: Annotated[float, typer.Option(help="meldingen per second of the end-to-end latency phase", min=0.5)] = 10.0,
    postgres_url: Annotated[
        str,
        typer.Option(
            envvar="KANSRIJK_BENCH_POSTGRES_URL",
            help="PostgreSQL server (the benchmark creates and drops its own databases there)",
        ),
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    keep: Annotated[Path | None, typer.Option(help="keep the services' logs and data in this folder")] = None,
    check: Annotated[bool, typer.Option("--check", help="exit 1 if a target is missed")] = False,
    figures_meldingen: Annotated[
        int, typer.Option(help="meldingen for the programme figures phase (a year of national volume)", min=100)
    ] = 50_000,
    against: Annotated[
        str | None,
        typer.Option(help="bench this commit first (a scratch worktree), then the work tree: both, and ratios"),
    ] = None,
) -> None:
    """Measure the system against its own infrastructure on this machine (PostgreSQL, RabbitMQ): baselines,
    end-to-end throughput, API and end-to-end latency, peak memory. Prints one table (docs/performance.md)."""
    import asyncio
    from functools import partial

    from rich.table import Table

    from tools.bench import (
        BenchOptions,
        BenchUnavailable,
        report_tables,
        run_bench,
        run_bench_against,
        timestamp,
        write_json,
    )

    options = BenchOptions(
        duration=duration,
        rate=rate,
        postgres_url=postgres_url,
        amqp_url=ServiceSettings().amqp_url,
        work_dir=keep,
        figures_meldingen=figures_meldingen,
    )
    try:
        progress = partial(err.print, "[dim]…[/]")
        bench = run_bench(options, progress) if against is None else run_bench_against(against, options, progress)
        result = asyncio.run(bench)
    except BenchUnavailable as exc:
        err.print(f"[red]✗[/] {exc}")
        raise typer.Exit(2) from None
    result["measured_at"] = timestamp()
    for title, columns, rows in report_tables(result):
        table = Table(title=title or f"kansrijk bench — {result['measured_at']}, {duration:g} s per phase")
        for column in columns:
            table.add_column(column)
        for row in rows:
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

    from tools.demo import DemoRefused, run_demo

    try:
        asyncio.run(_until_interrupted(run_demo(Console(soft_wrap=True))))
    except DemoRefused as exc:
        err.print(f"[red]✗[/] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("demo stopped")
        raise typer.Exit(130) from None


async def _until_interrupted(work: Any) -> Any:
    """Run `work` until it ends or Ctrl-C / SIGTERM: then cancel it and give it 10 s to stop its services.

    (A cancellation that lands while in-process servers start or stop can be absorbed by them; this makes
    the interrupt win regardless.)"""
    import asyncio

    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    interrupted = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupted.set)
    waiter = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait({task}, timeout=10)
    raise KeyboardInterrupt


def main() -> None:
    app()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
