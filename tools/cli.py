"""The tools' commands, plugged into `kansrijk` by the entry point group `kansrijk.commands`
(tools/pyproject.toml): `kansrijk login-provider`, `consume`, `bench` and `demo`. Development only: the
product's wheel ships none of them."""

from __future__ import annotations

import json
import signal
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from yarl import URL

from services.cli.common import err
from services.cli.run import LOGIN_PROVIDER_PORT
from services.registry import SERVICES
from shared.settings import ServiceSettings

app = typer.Typer()


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
