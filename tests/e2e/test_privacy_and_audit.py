"""Issue 5 end to end: every access audited across the three services and answerable by BSN, personal
data encrypted at rest, removed when its purpose is over."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text

from shared.clock import today_nl
from shared.identifiers import sample_bsns
from tests.e2e.flow import (
    BSN,
    SENDER,
    admin,
    eventually,
    melding_body,
    new_org_id,
    put_gemeente,
    put_organisation,
    recipient,
    record_consent,
    send,
    sender,
)
from tests.support import RunEnvironment, Tokens

Clients = dict[str, httpx.AsyncClient]
PERSONAL = (BSN, "Sanne", "de Vries", "methadon", "1998-03-14", "0201234567", "1011AB")


async def _delivered(
    system: Clients, tokens: Tokens, *, due_in_days: int = 120, jgz: str | None = None, bsn: str = BSN
) -> dict[str, str]:
    """A melding for `bsn` delivered to a JGZ serving Amsterdam (`jgz`, or a new one registered for it)."""
    if jgz is None:
        await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
        jgz = new_org_id()
        await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"])
    consent_id = await record_consent(system, tokens, types=["jgz"], bsn=bsn)
    body = melding_body(consent_id, bsn, recipient_types=["jgz"])
    body["pregnancy"]["expected_due_date"] = (today_nl() + timedelta(days=due_in_days)).isoformat()
    sent = await send(system, tokens, body)
    assert sent.status_code == 202, sent.text

    async def delivery() -> str | None:
        page = (await system["routing"].get("/v1/deliveries", headers=recipient(tokens, jgz))).json()
        return page["items"][0]["delivery_id"] if page.get("items") else None

    delivery_id = await eventually(delivery)
    return {"jgz": jgz, "consent_id": consent_id, "melding_id": sent.json()["id"], "delivery_id": delivery_id}


async def test_who_looked_at_my_data_is_answered_across_all_three_services(system: Clients, tokens: Tokens) -> None:
    ids = await _delivered(system, tokens)
    jgz = recipient(tokens, ids["jgz"])
    assert (await system["routing"].get(f"/v1/deliveries/{ids['delivery_id']}", headers=jgz)).status_code == 200
    reported = await system["routing"].post(
        f"/v1/deliveries/{ids['delivery_id']}/status", headers=jgz, json={"status": "received"}
    )
    assert reported.status_code == 200
    prying = await system["melding"].get(f"/v1/meldingen/{ids['melding_id']}", headers=sender(tokens, "10000009"))
    assert prying.status_code == 404

    auditor = admin(tokens)
    for service in ("consent", "melding", "routing"):  # any service answers for all three
        found = await system[service].post("/v1/audit/_search", headers=auditor, json={"bsn": BSN})
        assert found.status_code == 200, found.text
        assert found.json()["services"] == ["consent", "melding", "routing"]
        seen = {(r["service"], r["action"], r["actor_org_id"]) for r in found.json()["items"]}
        # The consent was checked once, and audited where it was: by the melding service on its own record of
        # consents once `consent.recorded` reached it, else by the consent service it asked (decision 6).
        # Routing re-checked it against its own record (the melding came straight from intake).
        checks = {(service, actor) for service, action, actor in seen if action == "check"}
        assert checks in ({("consent", "kansrijk-melding")}, {("melding", SENDER)}), checks
        assert {
            ("consent", "create", SENDER),
            ("melding", "create", SENDER),
            ("routing", "deliver", "kansrijk-platform"),
            ("routing", "read", ids["jgz"]),
            ("routing", "status-change", ids["jgz"]),
        } <= seen, seen
        assert all(r["patient_bsn"] == BSN for r in found.json()["items"])
    created = next(r for r in found.json()["items"] if r["service"] == "melding" and r["action"] == "create")
    assert created["consent_checked"] is True and created["actor_org_type"] == "verloskundige"
    assert created["resource_id"] == ids["melding_id"] and created["request_id"] and created["hash"]
    delivered = next(r for r in found.json()["items"] if r["service"] == "routing" and r["action"] == "deliver")
    assert delivered["consent_checked"] is True and delivered["resource_id"] == ids["delivery_id"]

    # The attempt on another organisation's melding is on record too, without revealing whose it is.
    refused = (
        await system["melding"].get("/v1/audit", headers=auditor, params={"org_id": "10000009", "action": "read"})
    ).json()["items"]
    assert [(r["resource_id"], r["outcome"], r["patient_bsn"]) for r in refused] == [
        (ids["melding_id"], "not-found", None)
    ]
    # Reading the audit log is itself audited.
    reads = (await system["melding"].get("/v1/audit", headers=auditor, params={"org_id": "ops"})).json()["items"]
    assert any(r["resource_type"] == "audit_log" for r in reads)
    assert (
        await system["melding"].post("/v1/audit/_search", headers=sender(tokens), json={"bsn": BSN})
    ).status_code == 403


async def test_a_search_that_cannot_reach_every_log_says_so_instead_of_answering_half(
    environment: RunEnvironment, tokens: Tokens, consent_db: object
) -> None:
    from services.consent.main import create_app
    from tests.conftest import consent_settings
    from tests.support import _free_port, running

    closed = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    app = create_app(consent_settings(environment, audit_peers={"melding": closed, "routing": closed}))
    async with running(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c") as client:
        everywhere = await client.post("/v1/audit/_search", headers=admin(tokens), json={"bsn": BSN})
        assert everywhere.status_code == 503, everywhere.text
        assert everywhere.headers["content-type"] == "application/problem+json"
        assert "melding" in everywhere.json()["detail"] and BSN not in everywhere.text
        own = await client.post("/v1/audit/_search", headers=admin(tokens), json={"bsn": BSN, "services": ["consent"]})
        assert own.status_code == 200 and own.json()["services"] == ["consent"]


async def test_personal_data_is_encrypted_at_rest_in_every_table_that_holds_it(
    system: Clients, tokens: Tokens, stack_databases: dict[str, str], environment: RunEnvironment
) -> None:
    await _delivered(system, tokens)
    # (consent's outbox carries no personal data: `consent.withdrawn` names only ids)
    where = {
        "consent": ["consents", "audit_log"],
        "melding": ["meldingen", "outbox", "audit_log"],
        "routing": ["routed_meldingen", "deliveries", "outbox", "audit_log"],
    }
    for service, tables in where.items():
        database = environment.database(stack_databases[service])
        try:
            async with database.engine.connect() as connection:
                for table in tables:
                    rows = [
                        json.dumps([str(v) for v in row])
                        for row in await connection.execute(text(f"SELECT * FROM {table}"))
                    ]
                    assert rows, f"{service}.{table} is empty: the test proves nothing"
                    for value in PERSONAL:
                        assert not any(value in row for row in rows), f"{value!r} in plain in {service}.{table}"
        finally:
            await database.dispose()


async def test_a_melding_past_its_purpose_keeps_only_an_anonymous_skeleton(
    system: Clients, tokens: Tokens, stack_databases: dict[str, str], environment: RunEnvironment
) -> None:
    from services.registry import SERVICES

    ids = await _delivered(system, tokens, due_in_days=-20)  # born 20 days ago
    other = next(iter(sample_bsns(1, seed=7)))  # another patient: one open melding per patient and type
    kept = await _delivered(system, tokens, due_in_days=100, jgz=ids["jgz"], bsn=other)
    short = {"personal_data_retention_days": 10}
    settings = {name: SERVICES[name].settings(**short) for name in ("melding", "routing")}
    databases = {name: environment.database(stack_databases[name]) for name in ("melding", "routing")}
    try:
        dry = await SERVICES["melding"].parts.purge(databases["melding"], settings["melding"], True)
        assert dry == {"meldingen (personal data)": 1}
        assert await SERVICES["melding"].parts.purge(databases["melding"], settings["melding"], False) == dry
        purged = await SERVICES["routing"].parts.purge(databases["routing"], settings["routing"], False)
        assert purged["routed meldingen (personal data)"] == 1
        assert await SERVICES["melding"].parts.purge(databases["melding"], settings["melding"], True) == {
            "meldingen (personal data)": 0
        }
    finally:
        for database in databases.values():
            await database.dispose()

    view = (await system["melding"].get(f"/v1/meldingen/{ids['melding_id']}", headers=sender(tokens))).json()
    assert view["patient"] is None and view["note"] is None and view["contact"] is None and view["purged_at"]
    assert view["risk_domains"] and view["recipient_types"] == ["jgz"] and view["pregnancy"]["expected_due_date"]
    assert view["history"][-1]["event"] == "purged"
    delivery = (
        await system["routing"].get(f"/v1/deliveries/{ids['delivery_id']}", headers=recipient(tokens, ids["jgz"]))
    ).json()
    assert delivery["purged_at"] and not any(value in json.dumps(delivery) for value in PERSONAL)
    untouched = (await system["melding"].get(f"/v1/meldingen/{kept['melding_id']}", headers=sender(tokens))).json()
    assert untouched["patient"]["bsn"] == other and untouched["purged_at"] is None


async def test_a_withdrawn_meldings_personal_data_goes_at_once(
    system: Clients, tokens: Tokens, stack_databases: dict[str, str], environment: RunEnvironment
) -> None:
    """contract v1.1: removed in the transaction that records the withdrawal, not at the next purge."""
    from services.registry import SERVICES

    ids = await _delivered(system, tokens)
    withdrawn = await system["consent"].post(f"/v1/consents/{ids['consent_id']}/withdraw", headers=sender(tokens))
    assert withdrawn.status_code == 200

    async def withdrawn_view() -> dict[str, Any] | None:
        view = (await system["melding"].get(f"/v1/meldingen/{ids['melding_id']}", headers=sender(tokens))).json()
        return view if view["status"] == "withdrawn" else None

    view = await eventually(withdrawn_view)
    # The first read that shows it withdrawn shows it without personal data: no purge has run.
    assert view["patient"] is None and view["note"] is None and view["contact"] is None and view["purged_at"]
    assert view["risk_domains"] and view["pregnancy"]["expected_due_date"]
    events = [h["event"] for h in view["history"]]  # (a retraction may be reported after them)
    assert events[events.index("withdrawn") + 1] == "purged"
    database = environment.database(stack_databases["melding"])
    try:  # nothing is left for the scheduled purge
        assert await SERVICES["melding"].parts.purge(database, SERVICES["melding"].settings(), True) == {
            "meldingen (personal data)": 0
        }
    finally:
        await database.dispose()
    audit = (
        await system["melding"].post(
            "/v1/audit/_search",
            json={"bsn": BSN, "services": ["melding"]},
            headers=tokens.bearer(org_id="ops", org_type="operator", scopes="audit:read"),
        )
    ).json()["items"]
    assert any(r["resource_id"] == ids["melding_id"] and r["outcome"] == "purged:consent-withdrawn" for r in audit)


def test_the_log_check_recognises_personal_data() -> None:
    from tests.e2e.conftest import personal_data_in

    assert personal_data_in('{"event": "x", "bsn": "999999990"}') == ["999999990"]
    assert personal_data_in("address 1011 AB, 12") and personal_data_in("1011AB 12")
    assert not personal_data_in('{"event": "http_request", "status": 202, "duration_ms": 12.5}')


async def test_metrics_carry_no_personal_data(system: Clients, tokens: Tokens) -> None:
    from tests.e2e.conftest import personal_data_in

    await _delivered(system, tokens)
    for service, client in system.items():
        metrics = (await client.get("/metrics")).text
        assert "kansrijk" in metrics or "http" in metrics, f"{service}: no metrics to check"
        assert not personal_data_in(metrics), f"{service}: {personal_data_in(metrics)}"
