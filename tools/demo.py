"""`kansrijk demo`: one melding from consent to the recipient's queue and back, every step shown."""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from services.registry import SERVICES
from services.routing.config import public_broker
from services.routing.service_layer.directory import load_cbs, load_route_maps
from services.routing.service_layer.route_map_file import read_route_maps
from services.routing.service_layer.unit_of_work import unit_of_work_factory
from shared.auth import development_token
from shared.clock import today_nl
from shared.crypto import cipher_for
from shared.db import Database
from shared.settings import ServiceSettings
from tools.reference_recipient import ReferenceRecipient
from tools.stack import run_stack

SAMPLE = Path(__file__).resolve().parents[1] / "services" / "routing" / "sample"
SENDER_ORG = "12345678"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoRefused(Exception):
    """The demo cannot run here; the message says why and what to do."""


def own_vhost(amqp_url: str) -> str:
    """The commands that make the demo a vhost of its own on the same RabbitMQ, and the URL to set then
    (the password shown only if it is RabbitMQ's well-known guest one)."""
    broker = public_broker(amqp_url)
    parts = urlsplit(amqp_url)
    user, password = (parts.username, parts.password) if parts.username else ("guest", "guest")
    vhost = "kansrijk-demo-2" if broker.vhost == "kansrijk-demo" else "kansrijk-demo"
    shown = password if (user, password) == ("guest", "guest") else "<password>"
    return (
        f"  rabbitmqctl add_vhost {vhost}\n"
        f"  rabbitmqctl set_permissions -p {vhost} {user} '.*' '.*' '.*'\n"
        f"  export KANSRIJK_AMQP_URL={broker.protocol}://{user}:{shown}@{broker.host}:{broker.port}/{vhost}"
    )


async def _refuse_if_shared(amqp_url: str) -> None:
    """Two systems on one vhost would take each other's messages: the demo needs the vhost to itself."""
    connection = await aio_pika.connect_robust(amqp_url, timeout=10)
    try:
        for queue_name in ("kansrijk.melding.events", "kansrijk.routing.events"):
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(queue_name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                continue  # not there: nobody runs here
            if queue.declaration_result.consumer_count:
                raise DemoRefused(
                    f"another Kansrijk system is consuming on this RabbitMQ vhost ({queue_name}); stop it "
                    f"(kansrijk up), or give the demo a vhost of its own:\n{own_vhost(amqp_url)}"
                )
    finally:
        await connection.close()


async def run_demo(console: Console) -> None:
    base = ServiceSettings()
    await _refuse_if_shared(base.amqp_url)
    demo_dir = base.data_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)  # a fresh, self-contained run each time
    ports = {name: _free_port() for name in SERVICES}
    consent_url = f"http://127.0.0.1:{ports['consent']}"
    common: dict[str, Any] = {"data_dir": base.data_dir, "log_level": "WARNING", "outbox_sweep_seconds": 0.2}
    settings = {
        name: SERVICES[name].settings(
            **common,
            port=ports[name],
            database_url=f"sqlite+aiosqlite:///{demo_dir / (name + '.db')}",
            **({"consent_url": consent_url} if name != "consent" else {}),
            **({"melding_url": f"http://127.0.0.1:{ports['melding']}"} if name == "fhir" else {}),
        )
        for name in SERVICES
    }

    def token(org_id: str, org_type: str, scopes: str) -> dict[str, str]:
        jwt = development_token(base, org_id=org_id, org_type=org_type, scopes=scopes, sub="demo")
        return {"Authorization": f"Bearer {jwt}"}

    suffix = uuid.uuid4().hex[:6]
    # The JGZ by a URA, the wijkteam (run by the gemeente, without a URA) by the documented wijkteam-<name> form.
    jgz_id, wijkteam_id = f"9{int(suffix, 16) % 10**7:07d}", f"wijkteam-demo-{suffix}"
    step = 0

    def say(title: str, detail: str = "") -> None:
        nonlocal step
        step += 1
        console.print(f"[bold cyan]{step}.[/] [bold]{title}[/]" + (f"\n   {detail}" if detail else ""))

    console.print(Panel("Kansrijke Start — one melding from consent to the JGZ's queue", style="bold"))
    async with run_stack(settings) as urls:
        say("Services started", ", ".join(f"{n} {u}" for n, u in urls.items()))
        directory_db = Database(settings["routing"].database_url, cipher=cipher_for(settings["routing"]))
        try:
            directory = unit_of_work_factory(directory_db)
            report = await load_cbs(
                directory,
                gemeenten_file=SAMPLE / "gemeenten.csv",
                postcodes_file=SAMPLE / "pc4_gemeente.csv",
                edition="sample",
            )
            await load_route_maps(directory, read_route_maps(SAMPLE / "route_maps.csv"))
        finally:
            await directory_db.dispose()
        say("Directory loaded (Bron: CBS)", f"{report.gemeenten} gemeenten, {report.postcode_areas} postcode areas")
        say(
            "Route map for Amsterdam (sample)",
            "the JGZ receives every risk domain and the note; the wijkteam only the social domains, no note",
        )
        admin = token("platform", "operator", "routing:admin")
        async with httpx.AsyncClient(timeout=15) as http:
            routing, consent, melding = urls["routing"], urls["consent"], urls["melding"]
            await _ok(
                http.put(
                    f"{routing}/v1/organisations/{jgz_id}",
                    headers=admin,
                    json={"name": "GGD Amsterdam JGZ (demo)", "type": "jgz", "gemeenten": ["GM0363"]},
                )
            )
            await _ok(
                http.put(
                    f"{routing}/v1/organisations/{wijkteam_id}",
                    headers=admin,
                    json={
                        "name": "Buurtteam Centrum (demo)",
                        "type": "wijkteam",
                        "postcode_ranges": [{"from": "1011", "to": "1018"}],
                    },
                )
            )
            say("Recipients registered", f"JGZ for all of Amsterdam ({jgz_id}); wijkteam for 1011-1018 ({wijkteam_id})")
            domains = ",".join(_demo_melding("")["risk_domains"])
            query = {"postcode": "1011AB", "risk_domains": domains}
            route = (await _ok(http.get(f"{routing}/v1/route", headers=admin, params=query))).json()
            say(
                f"Route for 1011AB with {domains}",
                f"gemeente {route['gemeente']['name']}: "
                + "; ".join(
                    f"{kind} → {r['name']} ({', '.join(r['risk_domains'])}{', with the note' if r['note'] else ''})"
                    for kind, r in route["recipients"].items()
                ),
            )

            ehr = token(SENDER_ORG, "verloskundige", "consent:write consent:read melding:write melding:read")
            recorded = (
                await _ok(
                    http.post(
                        f"{consent}/v1/consents",
                        headers=ehr,
                        json={
                            "patient": {"bsn": "999999990"},
                            "recipient_types": ["jgz", "wijkteam"],
                            "method": "verbal",
                            "given_at": today_nl().isoformat(),
                        },
                    )
                )
            ).json()
            say(
                "Consent recorded by the verloskundige",
                f"consent {recorded['id']}, valid until {recorded['valid_until']}",
            )
            sent = (
                await _ok(
                    http.post(
                        f"{melding}/v1/meldingen",
                        headers={**ehr, "Idempotency-Key": f"demo-{suffix}"},
                        json=_demo_melding(recorded["id"]),
                    )
                )
            ).json()
            say("Melding sent", f"melding {sent['id']}: {sent['status']}")

            for org_id, org_type in ((jgz_id, "jgz"), (wijkteam_id, "wijkteam")):
                shown: list[dict[str, Any]] = []
                recipient = ReferenceRecipient(
                    amqp_url=base.amqp_url,
                    org_id=org_id,
                    routing_url=routing,
                    token=token(org_id, org_type, "delivery:read delivery:write")["Authorization"].split()[1],
                    show=partial(_keep, shown),
                )
                await asyncio.wait_for(recipient.run(count=1), timeout=30)
                delivered = next(s for s in shown if s["kind"] == "delivered")
                say(
                    f"On the {org_type}'s queue kansrijk.deliveries.{org_id}",
                    f"delivery {delivered['delivery_id']}: gemeente {delivered['gemeente']['name']}, "
                    f"risk domains {', '.join(delivered['risk_domains'])}, urgency {delivered['urgency']}, "
                    f"{'with' if delivered.get('note') else 'without'} the note — acked, status 'received' reported",
                )

            view = await _wait_for_received(http, f"{melding}/v1/meldingen/{sent['id']}", ehr)
            table = Table("recipient", "type", "status")
            for d in view["deliveries"]:
                table.add_row(d["org_name"], d["recipient_type"], d["status"])
            say(f"The sender sees melding status '{view['status']}'")
            console.print(table)
        await _delete_queues(base.amqp_url, [jgz_id, wijkteam_id])
    console.print("[green]Done.[/] Try it yourself: README.md, 'Try the API'.")


def _demo_melding(consent_id: str) -> dict[str, Any]:
    return {
        "consent_id": consent_id,
        "patient": {
            "bsn": "999999990",
            "name": {"given": "Sanne", "family": "de Vries"},
            "birth_date": "1998-03-14",
            "address": {"postcode": "1011AB", "house_number": "12", "city": "Amsterdam"},
        },
        "pregnancy": {"expected_due_date": (today_nl() + timedelta(days=150)).isoformat()},
        "risk_domains": ["verslaving", "financien-schulden"],
        "recipient_types": ["jgz", "wijkteam"],
        "note": "Demo: cliënte gebruikt methadon; schulden.",
        "contact": {"name": "M. Jansen, verloskundige"},
    }


async def _ok(request: Any) -> httpx.Response:
    response: httpx.Response = await request
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} "
            f"{response.json().get('detail')}"
        )
    return response


def _keep(shown: list[dict[str, Any]], kind: str, body: dict[str, Any]) -> None:
    shown.append({"kind": kind, **body})


async def _wait_for_received(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    for _ in range(100):
        view = (await _ok(http.get(url, headers=headers))).json()
        if view["deliveries"] and all(d["status"] == "received" for d in view["deliveries"]):
            return dict(view)
        await asyncio.sleep(0.2)
    raise RuntimeError("the sender did not see 'received' within 20 seconds")


async def _delete_queues(amqp_url: str, org_ids: list[str]) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        for org_id in org_ids:
            await channel.queue_delete(f"kansrijk.deliveries.{org_id}")
    finally:
        await connection.close()
