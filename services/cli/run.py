"""Running the platform: `kansrijk migrate`, `serve`, `worker` and `up`."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from typing import Annotated

import typer

from services.cli.common import (
    ServedName,
    ServiceName,
    err,
    migrate_when_reachable,
    refuse_taken_port,
    service_entry,
)
from services.registry import SERVICES, WEB
from shared.settings import ServiceSettings

app = typer.Typer()
# The development login provider beside `kansrijk up` (a tools command): a tester enters a BSN and a level.
LOGIN_PROVIDER_PORT = 8006


@app.command()
def migrate(
    service: Annotated[str | None, typer.Argument(help="one service; all when left out")] = None,
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
    down: Annotated[bool, typer.Option("--down", help="downgrade to --revision (default: base)")] = False,
) -> None:
    """Apply (or undo) the database migrations of one service or all."""
    from shared import migrations
    from shared.crypto import cipher_for

    names = [service_entry(service).name] if service else list(SERVICES)
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
    from shared.server import Server, server_config

    if service in WEB:  # the portal: pages over the services' APIs, no database or workers of its own
        web = WEB[service]
        web_settings: ServiceSettings = web.settings(**{k: v for k, v in {"port": port, "host": host}.items() if v})
        refuse_taken_port(service, web_settings)
        Server(server_config(web.app_factory()(web_settings), web_settings)).run()
        return
    entry = service_entry(service)
    overrides = {k: v for k, v in {"port": port, "host": host}.items() if v is not None}
    settings: ServiceSettings = entry.settings(**overrides)
    refuse_taken_port(entry.name, settings)
    if migrate_first:
        migrate_when_reachable(entry.name, settings)
    application = entry.app_factory()(settings, run_workers=workers)
    Server(server_config(application, settings)).run()


@app.command()
def worker(
    service: ServiceName,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate", help="apply migrations first")] = True,
) -> None:
    """Run only a service's outbox relay and consumers, no API, until SIGTERM or Ctrl-C (scale them apart)."""
    import asyncio

    entry = service_entry(service)
    settings: ServiceSettings = entry.settings()
    if migrate_first:
        migrate_when_reachable(entry.name, settings)
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
        refuse_taken_port(name, service_settings)
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
    # The standard library's plain HTTP, not `httpx.get`: that builds a client, and with it an SSL context
    # loading the CA store, at every call — five times a round while the children start, which took a second
    # of CPU from them on two cores (docs/performance.md, "Start-up").
    import http.client

    connection = http.client.HTTPConnection(settings.host, settings.port, timeout=0.5)
    try:
        connection.request("GET", "/health/live")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
