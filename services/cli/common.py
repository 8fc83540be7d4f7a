"""What the commands share: the console findings go to, and the steps several commands take (the
service by name, its database once it answers, a port that is free)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from services.registry import SERVICES, WEB, ServiceEntry
from shared.settings import ServiceSettings

err = Console(stderr=True, soft_wrap=True)  # one line per finding, whatever the width: operators grep it

ServiceName = Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVICES)}")]
ServedName = Annotated[str, typer.Argument(help=f"one of: {', '.join([*SERVICES, *WEB])}")]


def migrate_when_reachable(name: str, settings: Any) -> None:
    """Apply the migrations, waiting (with backoff) for a database that is not up yet: services may start
    in any order, and one that comes up before its database waits for it instead of crashing."""
    from tenacity import Retrying, retry_if_exception, wait_exponential

    from shared import migrations
    from shared.crypto import cipher_for
    from shared.db import is_database_unavailable

    where = f"{without_password(settings.database_url)} (KANSRIJK_{name.upper()}_DATABASE_URL)"

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


def without_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not even a URL: say so without repeating it
        return "<not a database URL>"


def service_entry(name: str) -> ServiceEntry:
    if name not in SERVICES:
        raise typer.BadParameter(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
    return SERVICES[name]


def refuse_taken_port(name: str, settings: ServiceSettings) -> None:
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


def services_or_all(names: list[str] | None) -> list[str]:
    chosen = names or list(SERVICES)
    unknown = [n for n in chosen if n not in SERVICES]
    if unknown:
        err.print(f"[red]✗[/] unknown service(s): {', '.join(unknown)}; one of: {', '.join(SERVICES)}")
        raise typer.Exit(2)
    return chosen


async def with_database(name: str, work: Any) -> Any:
    from shared.crypto import cipher_for
    from shared.db import Database

    settings = SERVICES[name].settings()
    database = Database(settings.database_url, cipher=cipher_for(settings))
    try:
        return await work(database, settings)
    finally:
        await database.dispose()
