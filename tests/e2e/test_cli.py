"""The commands of the contract "Running it", as a newcomer runs them: real processes, real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from shared.clock import today_nl
from tests.support import CBS_DATA, SERVICES, RunEnvironment, _free_port, scratch_vhost

ROOT = Path(__file__).resolve().parents[2]


def cli_env(environment: RunEnvironment, **extra: str) -> dict[str, str]:
    return {**os.environ, **environment.env(), **extra}


async def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(base_url=base_url) as client:
        while asyncio.get_running_loop().time() < deadline:
            assert process.poll() is None, "the process died while starting"
            try:
                if (await client.get("/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    raise AssertionError(f"{base_url} never became ready")


async def test_kansrijk_up_then_token_then_curl_records_a_consent_and_sigterm_stops_everything(
    environment: RunEnvironment,
) -> None:
    # A vhost of its own: the in-process stack of the other e2e tests must not consume this system's queues.
    async with scratch_vhost(environment, "up") as amqp_url:
        await _kansrijk_up_on(environment, amqp_url)


async def _kansrijk_up_on(environment: RunEnvironment, amqp_url: str) -> None:
    ports = {name: _free_port() for name in SERVICES}
    port = ports["consent"]
    env = cli_env(
        environment,
        KANSRIJK_AMQP_URL=amqp_url,
        # the portal and its development login provider are part of `kansrijk up` too
        KANSRIJK_PORTAL_PORT=str(_free_port()),
        KANSRIJK_LOGIN_PROVIDER_PORT=str(_free_port()),
        **{f"KANSRIJK_{n.upper()}_PORT": str(p) for n, p in ports.items()},
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        for service_port in ports.values():
            await wait_ready(f"http://127.0.0.1:{service_port}", process)
        minted = await run_cli(
            "token",
            "--org-id",
            "12345678",
            "--org-type",
            "verloskundige",
            "--scope",
            "consent:write consent:read",
            env=env,
        )
        assert minted.returncode == 0, minted.stderr
        token = minted.stdout.strip()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            headers = {"Authorization": f"Bearer {token}"}
            created = await client.post(
                "/v1/consents",
                headers=headers,
                json={
                    "patient": {"bsn": "999999990"},
                    "recipient_types": ["jgz", "wijkteam"],
                    "method": "verbal",
                    "given_at": "2026-11-20",
                },
            )
            assert created.status_code == 201, created.text
            read = await client.get(created.headers["location"], headers=headers)
            assert read.json()["status"] == "active"
            docs = await client.get("/docs")
            assert docs.status_code == 200
            metadata = await client.get(f"http://127.0.0.1:{ports['fhir']}/fhir/metadata")
            assert metadata.json()["fhirVersion"] == "4.0.1"  # the FHIR facade is part of `kansrijk up`
            await _the_readme_flow(env, ports, created.json()["id"])
            portal = await client.get(f"http://127.0.0.1:{env['KANSRIJK_PORTAL_PORT']}/inloggen")
            login = f"http://127.0.0.1:{env['KANSRIJK_LOGIN_PROVIDER_PORT']}/oauth2/authorize"
            assert portal.status_code == 302 and portal.headers["location"].startswith(login)  # the portal is up
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=60)
    assert process.returncode == 0, output.decode()
    assert b"stopped" in output
    assert b"999999990" not in output  # no BSN in any log line
    _announced_once_listening_and_stopped_callers_first(output.decode(), ports)
    # nothing is left listening
    async with httpx.AsyncClient() as client:
        for service_port in ports.values():
            try:
                await client.get(f"http://127.0.0.1:{service_port}/health/live", timeout=2)
                raise AssertionError("a service is still running after SIGTERM")
            except httpx.ConnectError:
                pass


def _announced_once_listening_and_stopped_callers_first(output: str, ports: dict[str, int]) -> None:
    """`kansrijk up` names a service's URL once, when it answers (so never before the service started), and
    stops callers before what they call: the FHIR facade first, the consent service last. The children's
    JSON lines and `up`'s own lines share one pipe, so their order is the order they happened in."""
    events: list[tuple[str, str]] = []
    for line in output.splitlines():
        if "\u25b6" in line:  # ▶ consent on http://127.0.0.1:8001
            events.append(("announced", line.split("\u25b6", 1)[1].split()[0]))
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") in ("service_started", "service_stopped"):
            events.append((record["event"], record["service"]))
    for name, port in ports.items():
        assert events.count(("announced", name)) == 1, (name, events)
        assert f"{name} on http://127.0.0.1:{port}" in output
        assert events.index(("service_started", name)) < events.index(("announced", name)), (name, events)
    stopped = [name for event, name in events if event == "service_stopped"]
    assert sorted(stopped) == sorted(ports), events
    assert stopped[0] == "fhir" and stopped[-1] == "consent", stopped


async def _the_readme_flow(env: dict[str, str], ports: dict[str, int], consent_id: str) -> None:
    """README: directory, melding, `kansrijk consume` shows it, and the sender sees `received`."""

    async def token(org_id: str, org_type: str, scope: str) -> dict[str, str]:
        minted = await run_cli("token", "--org-id", org_id, "--org-type", org_type, "--scope", scope, env=env)
        return {"Authorization": f"Bearer {minted.stdout.strip()}"}

    jgz = str(uuid.uuid4().int)[:8]  # a URA
    admin = await token("ops", "operator", "routing:admin")
    ehr = await token("12345678", "verloskundige", "melding:write melding:read")
    async with httpx.AsyncClient(timeout=15) as client:
        routing, melding = f"http://127.0.0.1:{ports['routing']}", f"http://127.0.0.1:{ports['melding']}"
        assert (
            await client.put(
                f"{routing}/v1/gemeenten/GM0363",
                headers=admin,
                json={"name": "Amsterdam", "postcode_ranges": [{"from": "1011", "to": "1109"}]},
            )
        ).status_code in (200, 201)
        assert (
            await client.put(
                f"{routing}/v1/organisations/{jgz}",
                headers=admin,
                json={"name": "GGD Amsterdam JGZ", "type": "jgz", "gemeenten": ["GM0363"]},
            )
        ).status_code in (200, 201)
        sent = await client.post(
            f"{melding}/v1/meldingen",
            headers=ehr,
            json={
                "consent_id": consent_id,
                "patient": {
                    "bsn": "999999990",
                    "name": {"given": "Sanne", "family": "de Vries"},
                    "birth_date": "1998-03-14",
                    "address": {"postcode": "1011AB", "house_number": "12"},
                },
                "pregnancy": {"expected_due_date": (today_nl() + timedelta(days=120)).isoformat()},
                "risk_domains": ["verslaving"],
                "recipient_types": ["jgz"],
            },
        )
        assert sent.status_code == 202, sent.text
        consumed = await run_cli("consume", "--org-id", jgz, "--count", "1", "--idle-timeout", "30", env=env)
        assert consumed.returncode == 0, consumed.stderr
        assert "melding.delivered" in consumed.stdout and sent.json()["id"] in consumed.stdout
        # Piped, not a terminal: the line stays one line (ids whole, greppable), not wrapped at 80 columns.
        delivered = next(line for line in consumed.stdout.splitlines() if "melding.delivered" in line)
        assert len(delivered) > 80 and sent.json()["id"] in delivered and "urgency" in delivered, consumed.stdout
        assert "status received reported" in consumed.stdout
        assert "999999990" not in consumed.stdout  # personal data only with --full
        for _ in range(50):
            view = (await client.get(f"{melding}/v1/meldingen/{sent.json()['id']}", headers=ehr)).json()
            if view["deliveries"] and view["deliveries"][0]["status"] == "received":
                break
            await asyncio.sleep(0.2)
        assert view["status"] == "delivered" and view["deliveries"][0]["status"] == "received"


async def test_kansrijk_serve_runs_one_service_on_the_given_port(environment: RunEnvironment) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "consent", "--port", str(port)],
        env=cli_env(environment),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}", process)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=60)
    # uvicorn re-raises SIGTERM once its graceful shutdown is done; what matters is that it was graceful.
    assert process.returncode in (0, -signal.SIGTERM), output.decode()
    assert b'"service_stopped"' in output


async def test_kansrijk_token_refuses_unknown_scopes_and_org_types(environment: RunEnvironment) -> None:
    env = cli_env(environment)
    bad_scope = await run_cli("token", "--org-id", "1", "--org-type", "huisarts", "--scope", "everything", env=env)
    bad_type = await run_cli("token", "--org-id", "1", "--org-type", "apotheek", "--scope", "melding:read", env=env)
    assert bad_scope.returncode != 0 and "unknown scope" in bad_scope.stderr
    assert bad_type.returncode != 0 and "org_type" in bad_type.stderr


async def test_kansrijk_migrate_down_and_up(environment: RunEnvironment, tmp_path: Path) -> None:
    env = cli_env(environment, KANSRIJK_CONSENT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    assert (await run_cli("migrate", env=env)).returncode == 0
    down = await run_cli("migrate", "consent", "--down", env=env)
    assert down.returncode == 0, down.stderr
    assert (await run_cli("migrate", "consent", env=env)).returncode == 0


async def test_kansrijk_demo_walks_a_melding_to_the_recipient_and_back(environment: RunEnvironment) -> None:
    async with scratch_vhost(environment, "demo") as amqp_url:
        result = await run_cli("demo", env=cli_env(environment, KANSRIJK_AMQP_URL=amqp_url))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Melding sent" in result.stdout and "On the jgz's queue" in result.stdout
    assert "The sender sees melding status 'delivered'" in result.stdout
    assert result.stdout.count("received") >= 2
    assert "999999990" not in result.stdout + result.stderr


async def test_directory_load_reads_the_cbs_files_and_a_newer_edition_keeps_history(
    environment: RunEnvironment, tmp_path: Path
) -> None:
    import csv

    from sqlalchemy import select

    from services.routing.adapters.orm import directory_loads, gemeenten
    from shared.db import Database

    database_url = f"sqlite+aiosqlite:///{tmp_path / 'routing.db'}"
    env = cli_env(environment, KANSRIJK_ROUTING_DATABASE_URL=database_url)
    first = await run_cli(
        "directory",
        "load",
        "--gemeenten",
        str(CBS_DATA / "gemeenten.csv"),
        "--postcodes",
        str(CBS_DATA / "pc4_gemeente.csv"),
        "--edition",
        "2025",
        env=env,
    )
    assert first.returncode == 0, first.stderr
    assert "342 gemeenten" in first.stderr and "4072 postcode areas" in first.stderr and "20 straddle" in first.stderr

    # a newer edition in which Weesp's old code is gone (as after a merger)
    newer_gemeenten = tmp_path / "gemeenten-next.csv"
    rows = list(csv.DictReader((CBS_DATA / "gemeenten.csv").open()))
    with newer_gemeenten.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["code", "name", "province"])
        writer.writeheader()
        writer.writerows(r for r in rows if r["code"] != "GM0014")
    newer_pc4 = tmp_path / "pc4-next.csv"
    pc_rows = list(csv.DictReader((CBS_DATA / "pc4_gemeente.csv").open()))
    with newer_pc4.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["pc4", "gemeente_code", "address_count", "share"])
        writer.writeheader()
        writer.writerows({**r, "gemeente_code": "GM0037"} if r["gemeente_code"] == "GM0014" else r for r in pc_rows)
    second = await run_cli(
        "directory",
        "load",
        "--gemeenten",
        str(newer_gemeenten),
        "--postcodes",
        str(newer_pc4),
        "--edition",
        "2026",
        env=env,
    )
    assert second.returncode == 0, second.stderr
    assert "1 ended" in second.stderr

    database = Database(database_url)
    async with database.unit_of_work() as uow:
        groningen = (await uow.session.execute(select(gemeenten).where(gemeenten.c.code == "GM0014"))).one()
        loads = (await uow.session.execute(select(directory_loads.c.edition))).scalars().all()
    await database.dispose()
    assert groningen.name == "Groningen" and groningen.ended_at is not None  # kept, marked ended
    assert loads == ["2025", "2026"]

    broken = tmp_path / "broken.csv"
    broken.write_text("code,name,province\nXX01,Nowhere,None\n")
    bad = await run_cli(
        "directory", "load", "--gemeenten", str(broken), "--postcodes", str(newer_pc4), "--edition", "2027", env=env
    )
    assert bad.returncode == 1 and "line 2" in bad.stderr


SAMPLE_ROUTE_MAPS = Path(__file__).resolve().parents[2] / "services" / "routing" / "sample" / "route_maps.csv"


async def _load_directory(env: dict[str, str], gemeenten: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`kansrijk directory load` of a gemeenten file with the shipped postcode areas."""
    return await run_cli(
        "directory",
        "load",
        "--gemeenten",
        str(gemeenten),
        "--postcodes",
        str(CBS_DATA / "pc4_gemeente.csv"),
        *options,
        env=env,
    )


async def test_directory_route_maps_loads_many_gemeenten_all_or_nothing(
    environment: RunEnvironment, tmp_path: Path
) -> None:
    from services.routing.domain.route_map import in_force
    from services.routing.service_layer.unit_of_work import RoutingUnitOfWork
    from shared.clock import today_nl
    from shared.db import Database

    database_url = f"sqlite+aiosqlite:///{tmp_path / 'routing.db'}"
    env = cli_env(environment, KANSRIJK_ROUTING_DATABASE_URL=database_url)
    assert (await _load_directory(env, CBS_DATA / "gemeenten.csv")).returncode == 0
    loaded = await run_cli("directory", "route-maps", str(SAMPLE_ROUTE_MAPS), env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert "1 route map version(s) for 1 gemeente(n)" in loaded.stderr
    as_json = tmp_path / "route_maps.json"
    as_json.write_text(
        '{"GM0599": [{"effective_from": "2026-01-01", "recipients": {"jgz": {"risk_domains": "all"}}},'
        ' {"effective_from": "2099-01-01", "recipients": {"wijkteam": {"risk_domains": ["huisvesting"]}}}]}'
    )
    assert (await run_cli("directory", "route-maps", str(as_json), env=env)).returncode == 0
    broken = tmp_path / "broken.json"
    broken.write_text(
        '{"GM0344": {"effective_from": "2026-01-01", "recipients": {"jgz": {"risk_domains": "all"}}},'
        ' "GM0855": {"effective_from": "2026-01-01", "recipients": {"jgz": {"risk_domains": ["astrologie"]}}}}'
    )
    refused = await run_cli("directory", "route-maps", str(broken), env=env)
    assert refused.returncode == 1 and "GM0855" in refused.stderr and "risk_domains" in refused.stderr
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"GM9999": {"effective_from": "2026-01-01", "recipients": {}}}')
    assert (await run_cli("directory", "route-maps", str(unknown), env=env)).returncode == 1
    as_written = tmp_path / "markup.csv"  # the file's own text is shown as written, brackets and all
    as_written.write_text("gemeente,effective_from,recipient_type,risk_domains,note\nGM0363,2026-01-01,jgz,[/],true\n")
    shown = await run_cli("directory", "route-maps", str(as_written), env=env)
    assert shown.returncode == 1 and 'line 2, column risk_domains: "[/]" is not a risk domain' in shown.stderr

    database = Database(database_url)
    try:
        async with RoutingUnitOfWork(database) as uow:
            amsterdam = in_force(await uow.directory.route_maps("GM0363"), today_nl())
            rotterdam = await uow.directory.route_maps("GM0599")
            utrecht = await uow.directory.route_maps("GM0344")
    finally:
        await database.dispose()
    wijkteam = amsterdam.rule_for("wijkteam")
    assert wijkteam is not None and not wijkteam.note and "verslaving" not in (wijkteam.risk_domains or ())
    assert [v.effective_from.isoformat() for v in rotterdam if v.effective_from] == ["2026-01-01", "2099-01-01"]
    assert utrecht == []  # the broken file saved nothing, not even its valid part


async def test_directory_load_labels_an_edition_by_cbs_never_by_the_files_date(
    environment: RunEnvironment, tmp_path: Path
) -> None:
    import shutil

    from sqlalchemy import select

    from services.routing.adapters.orm import directory_loads
    from shared.db import Database

    database_url = f"sqlite+aiosqlite:///{tmp_path / 'routing.db'}"
    env = cli_env(environment, KANSRIJK_ROUTING_DATABASE_URL=database_url)
    # no options: the CBS files the repository ships, labelled with the edition their SOURCES.md names
    shipped = await run_cli("directory", "load", env=env)
    assert shipped.returncode == 0, shipped.stderr
    assert "342 gemeenten" in shipped.stderr and "4072 postcode areas" in shipped.stderr
    assert "Wijk- en Buurtkaart 2025" in shipped.stderr
    named, unnamed = tmp_path / "gemeenten_2024.csv", tmp_path / "gemeenten.csv"
    for copy in (named, unnamed):
        shutil.copy(CBS_DATA / "gemeenten.csv", copy)
    by_name = await _load_directory(env, named)
    assert by_name.returncode == 0, by_name.stderr
    unknown = await _load_directory(env, unnamed)
    assert unknown.returncode == 2 and "--edition" in unknown.stderr
    database = Database(database_url)
    async with database.unit_of_work() as uow:
        loads = (await uow.session.execute(select(directory_loads.c.edition))).scalars().all()
    await database.dispose()
    assert loads == ["Wijk- en Buurtkaart 2025", "2024"]


async def test_kansrijk_demo_refuses_a_vhost_where_another_system_runs(
    environment: RunEnvironment, stack: dict[str, str]
) -> None:
    result = await run_cli("demo", env=cli_env(environment))
    assert result.returncode == 1
    assert "another Kansrijk system is consuming on this RabbitMQ vhost" in result.stderr
    assert "rabbitmqctl add_vhost kansrijk-demo" in result.stderr  # and how to give the demo a vhost of its own
    assert "export KANSRIJK_AMQP_URL=amqp://" in result.stderr and "/kansrijk-demo" in result.stderr


async def test_a_service_started_before_its_broker_and_database_waits_for_them(environment: RunEnvironment) -> None:
    """Start-up in any order: RabbitMQ (and, on PostgreSQL, the database) come up after the service."""
    from tests.support import BACKEND, TcpProxy, create_database, drop_database

    broker_link = TcpProxy()  # not listening yet: the broker is "not up"
    database_link = TcpProxy(target_port=5432)
    url = await create_database(environment, "consent", suffix=f"_order_{uuid.uuid4().hex[:6]}")
    served_url = url
    if BACKEND == "postgresql":  # the database too is "not up" until its proxy opens
        served_url = url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{database_link.port}/")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "consent", "--port", str(port)],
        env=cli_env(
            environment,
            KANSRIJK_AMQP_URL=environment.amqp_url_via(broker_link.port),
            KANSRIJK_CONSENT_DATABASE_URL=served_url,
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.sleep(6)
        assert process.poll() is None, "the service gave up instead of waiting"
        if BACKEND == "postgresql":
            await database_link.open()
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            for _ in range(200):  # the API serves while the broker is still away, and says it is not ready
                assert process.poll() is None, "the service gave up instead of waiting"
                try:
                    ready = await client.get("/health/ready")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.3)
            # ready (it takes meldingen into its outbox), and says the broker is not there yet
            assert ready.status_code == 200 and ready.json()["checks"]["broker"] == "unavailable", ready.text
            await broker_link.open()
            for _ in range(200):
                if (await client.get("/health/ready")).json()["checks"]["broker"] == "ok":
                    break
                await asyncio.sleep(0.3)
            else:
                raise AssertionError("the service never connected to the broker once it was up")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=60)
        await broker_link.close()
        await database_link.close()
        await drop_database(environment, url)
    assert process.returncode in (0, -signal.SIGTERM), output.decode()
    if BACKEND == "postgresql":
        assert b"does not answer yet" in output and b"KANSRIJK_CONSENT_DATABASE_URL" in output
    assert b"broker_unavailable" in output


async def test_kansrijk_audit_verify_says_intact_then_names_the_tampered_record(
    environment: RunEnvironment, consent_client: httpx.AsyncClient, consent_db: Any, tokens: Any
) -> None:
    from sqlalchemy import update

    from services.consent.adapters.orm import audit
    from tests.integration.shared.test_audit_chain import _accesses, triggers_off

    await _accesses(consent_client, tokens, n=2)  # 4 records: two creates, two reads
    env = cli_env(environment)
    intact = await run_cli("audit", "verify", "consent", env=env)
    assert intact.returncode == 0, intact.stderr
    assert "consent: chain intact, 4 record(s)" in intact.stderr

    async with triggers_off(consent_db), consent_db.unit_of_work() as uow:
        await uow.session.execute(update(audit.log).where(audit.log.c.seq == 2).values(action="search"))
        await uow.commit()
    broken = await run_cli("audit", "verify", "consent", env=env)
    assert broken.returncode == 1
    assert "record 2" in broken.stderr and "was changed after it was written" in broken.stderr


async def test_kansrijk_purge_dry_run_counts_and_removes_nothing(environment: RunEnvironment, consent_db: Any) -> None:
    from sqlalchemy import func, select

    from services.consent.adapters.orm import outbox
    from shared.clock import now

    async with consent_db.unit_of_work() as uow:  # a message sent long ago: spent, to be pruned
        await uow.session.execute(
            outbox.insert().values(
                id=str(uuid.uuid4()),
                exchange="kansrijk.events",
                routing_key="consent.withdrawn",
                message_type="x",
                body="{}",
                mandatory=False,
                attempts=1,
                created_at=now() - timedelta(days=30),
                sent_at=now() - timedelta(days=30),
            )
        )
        await uow.commit()
    env = cli_env(environment)
    dry = await run_cli("purge", "consent", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "consent would remove" in dry.stderr and "1 outbox" in dry.stderr, dry.stderr
    async with consent_db.unit_of_work() as uow:
        assert (await uow.session.execute(select(func.count()).select_from(outbox))).scalar() == 1
    done = await run_cli("purge", "consent", env=env)
    assert done.returncode == 0 and "consent removed" in done.stderr and "1 outbox" in done.stderr, done.stderr
    async with consent_db.unit_of_work() as uow:
        assert (await uow.session.execute(select(func.count()).select_from(outbox))).scalar() == 0


# --- errors that say what to do -------------------------------------------------------------------------


async def _registered_jgz(stack: dict[str, str], environment: RunEnvironment) -> str:
    from tests.support import Tokens

    jgz = str(uuid.uuid4().int)[:8]
    admin = Tokens(environment.data_dir).bearer(org_id="ops", org_type="operator", scopes="routing:admin")
    async with httpx.AsyncClient(base_url=stack["routing"]) as client:
        await client.put("/v1/gemeenten/GM0363", headers=admin, json={"name": "Amsterdam"})
        made = await client.put(
            f"/v1/organisations/{jgz}", headers=admin, json={"name": "GGD Amsterdam JGZ", "type": "jgz"}
        )
        assert made.status_code == 201, made.text
    return jgz


async def test_consume_says_where_it_reads_and_refuses_an_organisation_the_directory_does_not_know(
    environment: RunEnvironment, stack: dict[str, str]
) -> None:
    import aio_pika

    jgz = await _registered_jgz(stack, environment)
    env = cli_env(environment)
    reading = await run_cli(
        "consume", "--org-id", jgz, "--routing-url", stack["routing"], "--idle-timeout", "1", env=env
    )
    assert reading.returncode == 0, reading.stderr
    assert f"reading queue kansrijk.deliveries.{jgz} (GGD Amsterdam JGZ, jgz)" in reading.stderr
    assert f"vhost {environment.vhost}" in reading.stderr and "waiting for messages" in reading.stderr

    stranger = str(uuid.uuid4().int)[:8]
    refused = await run_cli(
        "consume", "--org-id", stranger, "--routing-url", stack["routing"], "--idle-timeout", "1", env=env
    )
    assert refused.returncode == 1 and "not in the routing directory" in refused.stderr
    connection = await aio_pika.connect_robust(environment.amqp_url)
    try:  # no orphan queue was made for it
        channel = await connection.channel()
        try:
            await channel.declare_queue(f"kansrijk.deliveries.{stranger}", passive=True)
            raise AssertionError("consume created a queue for an organisation the platform does not know")
        except aio_pika.exceptions.ChannelNotFoundEntity:
            pass
    finally:
        await connection.close()
    nowhere = await run_cli("consume", "--org-id", jgz, "--routing-url", f"http://127.0.0.1:{_free_port()}", env=env)
    assert nowhere.returncode == 1 and "--routing-url" in nowhere.stderr


async def test_a_refused_vhost_or_login_is_named_with_its_fix_not_retried_in_silence(
    environment: RunEnvironment, stack: dict[str, str]
) -> None:
    jgz = await _registered_jgz(stack, environment)
    base = environment.amqp_url.rsplit("/", 1)[0]
    no_vhost = await run_cli(
        "consume",
        "--org-id",
        jgz,
        "--routing-url",
        stack["routing"],
        "--idle-timeout",
        "1",
        env=cli_env(environment, KANSRIJK_AMQP_URL=f"{base}/no-such-vhost-{uuid.uuid4().hex[:6]}"),
    )
    assert no_vhost.returncode == 1
    assert "refused to open vhost" in no_vhost.stderr and "rabbitmqctl add_vhost" in no_vhost.stderr
    bad_login = await run_cli(
        "consume",
        "--org-id",
        jgz,
        "--routing-url",
        stack["routing"],
        "--idle-timeout",
        "1",
        env=cli_env(
            environment,
            KANSRIJK_AMQP_URL=base.replace("guest:guest", "guest:wrong") + "/" + environment.amqp_url.rsplit("/", 1)[1],
        ),
    )
    assert bad_login.returncode == 1 and "refused the login" in bad_login.stderr
    assert "wrong" not in bad_login.stderr  # the password is never repeated


async def test_a_taken_port_and_an_unusable_database_are_named_with_the_variable_to_change(
    environment: RunEnvironment, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = await run_cli("serve", "consent", "--port", str(port), "--no-migrate", env=cli_env(environment))
    assert busy.returncode == 1 and f"port {port}" in busy.stderr and "KANSRIJK_CONSENT_PORT" in busy.stderr
    unusable = await run_cli(
        "serve",
        "consent",
        "--port",
        str(_free_port()),
        env=cli_env(
            environment,
            KANSRIJK_CONSENT_DATABASE_URL="postgresql+asyncpg://postgres:s3cret@127.0.0.1:5432/kansrijk_absent",
        ),
    )
    assert unusable.returncode == 1, unusable.stderr
    assert "KANSRIJK_CONSENT_DATABASE_URL" in unusable.stderr and "kansrijk_absent" in unusable.stderr
    assert "s3cret" not in unusable.stderr


async def test_kansrijk_demo_stops_on_ctrl_c(environment: RunEnvironment) -> None:
    async with scratch_vhost(environment, "demo-interrupted") as amqp_url:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "demo"],
            cwd=ROOT,
            text=True,
            env=cli_env(environment, KANSRIJK_AMQP_URL=amqp_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            line = await asyncio.to_thread(_line_with, process, "Services started")
            assert line, "the demo did not get as far as starting its services"
            process.send_signal(signal.SIGINT)  # what Ctrl-C sends
            code = await asyncio.to_thread(process.wait, 20)
            assert code == 130 and "demo stopped" in process.stderr.read()  # type: ignore[union-attr]
        finally:
            if process.poll() is None:
                process.kill()


def _line_with(process: subprocess.Popen[str], text: str) -> str | None:
    for line in process.stdout:  # type: ignore[union-attr]
        if text in line:
            return line
    return None


async def _jgz_serving_amsterdam(
    stack: dict[str, str],
    environment: RunEnvironment,
    system: dict[str, httpx.AsyncClient],
    tokens: Any,
    *,
    delivery_mode: str = "full",
) -> str:
    """A registered JGZ that serves Amsterdam (whose postcode areas the directory then knows)."""
    from tests.e2e.flow import admin

    jgz = await _registered_jgz(stack, environment)
    await system["routing"].put(
        "/v1/gemeenten/GM0363",
        headers=admin(tokens),
        json={"name": "Amsterdam", "postcode_ranges": [{"from": "1011", "to": "1109"}]},
    )
    made = await system["routing"].put(
        f"/v1/organisations/{jgz}",
        headers=admin(tokens),
        json={"name": "GGD Amsterdam JGZ", "type": "jgz", "gemeenten": ["GM0363"], "delivery_mode": delivery_mode},
    )
    assert made.status_code == 200, made.text
    return jgz


async def test_consume_can_close_with_an_outcome_or_return_a_melding(
    environment: RunEnvironment, stack: dict[str, str], system: dict[str, httpx.AsyncClient], tokens: Any
) -> None:
    from tests.e2e.flow import consented_patient, eventually, melding_body, melding_status, send

    jgz = await _jgz_serving_amsterdam(stack, environment, system, tokens)
    env = cli_env(environment)
    sent = {}
    for answer in ("close", "return"):
        consent_id, bsn = await consented_patient(system, tokens, types=["jgz"])
        sent[answer] = (await send(system, tokens, melding_body(consent_id, bsn, recipient_types=["jgz"]))).json()["id"]
        option = ["--close", "phb-done"] if answer == "close" else ["--return", "wrong-recipient"]
        consumed = await run_cli(
            "consume", "--org-id", jgz, "--routing-url", stack["routing"], "--count", "1", *option, env=env
        )
        assert consumed.returncode == 0, consumed.stderr
    assert "status closed reported" in consumed.stdout or "status returned reported" in consumed.stdout

    async def answered() -> bool:
        closed = (await melding_status(system, tokens, sent["close"]))["deliveries"]
        returned = (await melding_status(system, tokens, sent["return"]))["deliveries"]
        return bool(closed and returned) and (closed[0]["outcome"], returned[0]["returned_reason"]) == (
            "phb-done",
            "wrong-recipient",
        )

    assert await eventually(answered, timeout=20)
    both = await run_cli("consume", "--org-id", jgz, "--close", "other", "--return", "no-capacity", env=env)
    assert both.returncode == 2


async def test_consume_fetches_a_thin_delivery_and_fills_a_gap_in_the_sequence(
    environment: RunEnvironment,
    stack: dict[str, str],
    system: dict[str, httpx.AsyncClient],
    tokens: Any,
    amqp: Any,
) -> None:
    import aio_pika

    from tests.e2e.flow import (
        RecipientQueue,
        body_of,
        consented_patient,
        eventually,
        melding_body,
        recipient,
        send,
    )

    jgz = await _jgz_serving_amsterdam(stack, environment, system, tokens, delivery_mode="thin")
    bsns = []
    for _ in range(3):
        consent_id, bsn = await consented_patient(system, tokens, types=["jgz"])
        sent = await send(system, tokens, melding_body(consent_id, bsn, recipient_types=["jgz"]))
        assert sent.status_code == 202, sent.text
        bsns.append(bsn)
    # The recipient misses number 2: the queue gets back only 1 and 3.
    queue = RecipientQueue(amqp, jgz)
    taken = {body_of(m)["sequence"]: m for m in [await queue.next() for _ in range(3)]}
    for sequence in (1, 3):
        m = taken[sequence]
        again = aio_pika.Message(m.body, message_id=m.message_id, type=m.type, correlation_id=m.correlation_id)
        await amqp.default_exchange.publish(again, routing_key=f"kansrijk.deliveries.{jgz}")
    missed = body_of(taken[2])["delivery_id"]

    env = cli_env(environment)
    consumed = await run_cli(
        "consume", "--org-id", jgz, "--routing-url", stack["routing"], "--count", "2", "--after-sequence", "0",
        env=env,
    )  # fmt: skip
    assert consumed.returncode == 0, consumed.stderr
    # Messages are handled concurrently: the gap is seen after 1, or after 0 if 3 is handled first.
    assert "gap after sequence" in consumed.stdout and "(seen up to 3)" in consumed.stdout, consumed.stdout
    assert consumed.stdout.count("melding.delivered") == 3 and missed in consumed.stdout
    assert consumed.stdout.count("status received reported") == 3

    async def all_received() -> bool:
        for m in taken.values():
            delivery_id = body_of(m)["delivery_id"]
            got = await system["routing"].get(f"/v1/deliveries/{delivery_id}", headers=recipient(tokens, jgz))
            if got.json()["status"] != "received":
                return False
        return True

    assert await eventually(all_received, timeout=20)
    assert not any(bsn in consumed.stdout for bsn in bsns)  # fetched, but personal data shown only with --full


async def test_kansrijk_report_of_a_period_with_nothing_shown_warns_and_the_page_says_so(
    environment: RunEnvironment, tmp_path: Path
) -> None:
    env = cli_env(environment, KANSRIJK_MELDING_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'melding.db'}")
    assert (await run_cli("migrate", "melding", env=env)).returncode == 0
    page = tmp_path / "amsterdam.html"
    period = ("--from", "2027-01-01", "--to", "2027-12-31", "--interval", "quarter")
    made = await run_cli("report", "--gemeente", "GM0363", *period, "--out", str(page), env=env)
    assert made.returncode == 0, made.stderr
    assert "nothing to show" in made.stderr and "--interval year" in made.stderr, made.stderr
    assert "Er is in deze periode niets te tonen" in page.read_text(encoding="utf-8")
