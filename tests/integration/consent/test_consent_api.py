"""Every consent endpoint of the contract, on the run's real database."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Table, func, select

from services.consent.adapters.orm import audit, consents, idempotency_keys, outbox
from services.consent.domain.model import Consent
from services.consent.service_layer.unit_of_work import ConsentUnitOfWork
from shared.clock import now, today_nl
from shared.contracts.events import CONSENT_RECORDED, CONSENT_WITHDRAWN
from shared.db import Database
from tests.support import Tokens

BSN = "999999990"
OTHER_BSN = "123456782"
SENDER = "12345678"
OTHER_ORG = "87654321"
WRITE = "consent:write consent:read"


def consent_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "patient": {"bsn": BSN},
        "recipient_types": ["jgz", "wijkteam"],
        "purpose": "kansrijke-start-melding",
        "method": "verbal",
        "given_at": (today_nl() - timedelta(days=3)).isoformat(),
    }
    body.update(overrides)
    return body


async def count(database: Database, table: Table) -> int:
    async with database.unit_of_work() as uow:
        return (await uow.session.execute(select(func.count()).select_from(table))).scalar_one()


async def withdrawals(database: Database) -> int:
    """`consent.withdrawn` events staged in the outbox (each recorded consent stages its `consent.recorded`)."""
    async with database.unit_of_work() as uow:
        query = select(func.count()).select_from(outbox).where(outbox.c.message_type == CONSENT_WITHDRAWN)
        return (await uow.session.execute(query)).scalar_one()


async def record(
    client: httpx.AsyncClient, tokens: Tokens, org_id: str = SENDER, **overrides: object
) -> dict[str, Any]:
    response = await client.post(
        "/v1/consents", json=consent_body(**overrides), headers=tokens.bearer(org_id=org_id, scopes=WRITE)
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# --- record ----------------------------------------------------------------------------------------


async def test_recording_a_consent_returns_201_location_and_the_consent(
    consent_client: httpx.AsyncClient, tokens: Tokens
) -> None:
    given = today_nl() - timedelta(days=3)
    response = await consent_client.post(
        "/v1/consents",
        json=consent_body(),
        headers=tokens.bearer(scopes=WRITE, org_type="verloskundige", sub="m.jansen"),
    )
    assert response.status_code == 201
    consent = response.json()
    assert response.headers["location"] == f"/v1/consents/{consent['id']}"
    assert consent["status"] == "active"
    assert consent["patient"] == {"bsn": BSN}
    assert consent["recipient_types"] == ["jgz", "wijkteam"]
    assert consent["purpose"] == "kansrijke-start-melding"
    assert consent["given_at"] == given.isoformat()
    assert consent["valid_until"] == given.replace(year=given.year + 1).isoformat()
    assert consent["recorded_by"] == {"org_id": SENDER, "org_type": "verloskundige", "sub": "m.jansen"}
    assert consent["withdrawn_at"] is None and consent["created_at"]


async def test_purpose_defaults_and_valid_until_is_kept(consent_client: httpx.AsyncClient, tokens: Tokens) -> None:
    body = consent_body(valid_until=(today_nl() + timedelta(days=30)).isoformat())
    del body["purpose"]
    response = await consent_client.post("/v1/consents", json=body, headers=tokens.bearer(scopes=WRITE))
    assert response.status_code == 201
    assert response.json()["purpose"] == "kansrijke-start-melding"
    assert response.json()["valid_until"] == (today_nl() + timedelta(days=30)).isoformat()


def _future(days: int) -> str:
    return (today_nl() + timedelta(days=days)).isoformat()


INVALID: list[tuple[str, dict[str, Any]]] = [
    ("patient.bsn", {"patient": {"bsn": "999999991"}}),
    ("patient.bsn", {"patient": {"bsn": "12345678"}}),
    ("patient", {"patient": None}),
    ("recipient_types", {"recipient_types": []}),
    ("recipient_types.0", {"recipient_types": ["ggd"]}),
    ("recipient_types", {"recipient_types": ["jgz", "jgz"]}),
    ("purpose", {"purpose": "marketing"}),
    ("method", {"method": "telepathic"}),
    ("method", {"method": None}),
    ("given_at", {"given_at": "20-11-2026"}),
    ("given_at", {"given_at": _future(1)}),
    ("valid_until", {"given_at": "2026-11-20", "valid_until": "2026-11-20"}),
    ("valid_until", {"given_at": "2026-01-01", "valid_until": "2026-06-01"}),
    ("unexpected", {"unexpected": "field"}),
]


@pytest.mark.parametrize(("field", "change"), INVALID, ids=[f"{f}:{list(c.values())[-1]}" for f, c in INVALID])
async def test_each_validation_rule_is_a_422_naming_the_field_and_stores_nothing(
    consent_client: httpx.AsyncClient, tokens: Tokens, consent_db: Database, field: str, change: dict[str, Any]
) -> None:
    response = await consent_client.post(
        "/v1/consents", json=consent_body(**change), headers={**tokens.bearer(scopes=WRITE), "Idempotency-Key": "k1"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:kansrijk:problem:validation"
    assert problem["status"] == 422 and problem["title"] and problem["detail"]
    assert field in [e["field"] for e in problem["errors"]]
    assert "999999991" not in response.text and BSN not in response.text
    for table in (consents, outbox, idempotency_keys, audit.log):
        assert await count(consent_db, table) == 0


async def test_a_body_sent_as_another_media_type_is_a_415_naming_json_and_stores_nothing(
    consent_client: httpx.AsyncClient, tokens: Tokens, consent_db: Database
) -> None:
    for media_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        response = await consent_client.post(
            "/v1/consents",
            content=json.dumps(consent_body()).encode(),
            headers={**tokens.bearer(scopes=WRITE), "Content-Type": media_type},
        )
        assert response.status_code == 415, response.text
        problem = response.json()
        assert problem["type"] == "urn:kansrijk:problem:unsupported-media-type"
        assert "Content-Type: application/json" in problem["detail"]
    assert await count(consent_db, consents) == 0


async def test_a_body_that_is_not_json_is_a_422(consent_client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await consent_client.post(
        "/v1/consents",
        content=b"{not json",
        headers={**tokens.bearer(scopes=WRITE), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["type"] == "urn:kansrijk:problem:validation"


async def test_a_body_that_is_not_even_text_is_a_422_not_an_undocumented_400(
    consent_client: httpx.AsyncClient, tokens: Tokens, consent_db: Database
) -> None:
    response = await consent_client.post(
        "/v1/consents",
        content=b'{"method": "\xff"}',
        headers={**tokens.bearer(scopes=WRITE), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {"field": "body", "message": "the body is not valid JSON", "code": "json_invalid"}
    ]
    assert await count(consent_db, consents) == 0


async def test_an_unknown_query_parameter_is_a_422_naming_it(consent_client: httpx.AsyncClient, tokens: Tokens) -> None:
    # A misspelt filter must not silently answer everything.
    auditor = tokens.bearer(org_id="ops", org_type="operator", scopes="audit:read")
    response = await consent_client.get("/v1/audit", headers=auditor, params={"actoin": "read", "limit": 5})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["actoin"]
    assert (await consent_client.get("/v1/audit", headers=auditor, params={"action": "read"})).status_code == 200


async def test_an_audit_cursor_it_did_not_give_out_is_a_422_not_a_500(
    consent_client: httpx.AsyncClient, tokens: Tokens
) -> None:
    auditor = tokens.bearer(org_id="ops", org_type="operator", scopes="audit:read")
    response = await consent_client.get("/v1/audit", headers=auditor, params={"cursor": str(10**28)})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["cursor"]


# --- idempotency -----------------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_returns_the_first_consent_and_creates_nothing(
    consent_client: httpx.AsyncClient, tokens: Tokens, consent_db: Database
) -> None:
    headers = {**tokens.bearer(scopes=WRITE), "Idempotency-Key": "ehr-retry-1"}
    first = await consent_client.post("/v1/consents", json=consent_body(), headers=headers)
    # same body, other formatting and key order
    again = await consent_client.post(
        "/v1/consents", json=dict(reversed(list(consent_body().items()))), headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert await count(consent_db, consents) == 1


async def test_the_same_key_with_another_body_is_409(
    consent_client: httpx.AsyncClient, tokens: Tokens, consent_db: Database
) -> None:
    headers = {**tokens.bearer(scopes=WRITE), "Idempotency-Key": "ehr-retry-2"}
    assert (await consent_client.post("/v1/consents", json=consent_body(), headers=headers)).status_code == 201
    response = await consent_client.post("/v1/consents", json=consent_body(method="written"), headers=headers)
    assert response.status_code == 409
    assert response.json()["type"] == "urn:kansrijk:problem:idempotency-conflict"
    assert BSN not in response.text
    assert await count(consent_db, consents) == 1


async def test_keys_belong_to_one_organisation(consent_client: httpx.AsyncClient, tokens: Tokens) -> None:
    first = await consent_client.post(
        "/v1/consents", json=consent_body(), headers={**tokens.bearer(scopes=WRITE), "Idempotency-Key": "shared-key"}
    )
    other = await consent_client.post(
        "/v1/consents",
        json=consent_body(),
        headers={**tokens.bearer(org_id=OTHER_ORG, scopes=WRITE), "Idempotency-Key": "shared-key"},
    )
    assert first.status_code == other.status_code == 201
    assert first.json()["id"] != other.json()["id"]


async def test_concurrent_retries_with_one_key_create_one_consent(
    consent_client: httpx.AsyncClient, tokens: Tokens, consent_db: Database
) -> None:
    headers = {**tokens.bearer(scopes=WRITE), "Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(consent_client.post("/v1/consents", json=consent_body(), headers=headers) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count(consent_db, consents) == 1


@pytest.mark.parametrize("key", ["", "x" * 201, "tab\there", "ünïcode"])
async def test_a_malformed_idempotency_key_is_a_422(
    consent_client: httpx.AsyncClient, tokens: Tokens, key: str
) -> None:
    response = await consent_client.post(
        "/v1/consents",
        json=consent_body(),
        headers=[
            *((k.encode(), v.encode()) for k, v in tokens.bearer(scopes=WRITE).items()),
            (b"Idempotency-Key", key.encode()),
        ],
    )
    assert response.status_code == 422
    assert "Idempotency-Key" in [e["field"] for e in response.json()["errors"]]


# --- read, search ------------------------------------------------------------------------------------


async def test_the_recording_organisation_reads_its_consent(consent_client: httpx.AsyncClient, tokens: Tokens) -> None:
    created = await record(consent_client, tokens)
    response = await consent_client.get(f"/v1/consents/{created['id']}", headers=tokens.bearer(scopes="consent:read"))
    assert response.status_code == 200
    assert response.json() == created


async def test_another_organisation_gets_404_for_read_and_withdraw(
    consent_client: httpx.AsyncClient, tokens: Tokens, consent_db: Database
) -> None:
    created = await record(consent_client, tokens)
    other = tokens.bearer(org_id=OTHER_ORG, scopes=WRITE)
    unknown = await consent_client.get("/v1/consents/00000000-0000-0000-0000-000000000000", headers=other)
    read = await consent_client.get(f"/v1/consents/{created['id']}", headers=other)
    withdraw = await consent_client.post(f"/v1/consents/{created['id']}/withdraw", headers=other)
    for response in (read, withdraw):
        assert response.status_code == 404
        assert response.json()["type"] == "urn:kansrijk:problem:not-found"
        # indistinguishable from a consent that does not exist
        assert response.json()["detail"] == unknown.json()["detail"]
    assert await withdrawals(consent_db) == 0
    mine = await consent_client.get(f"/v1/consents/{created['id']}", headers=tokens.bearer(scopes="consent:read"))
    assert mine.json()["status"] == "active"


async def test_search_by_bsn_returns_only_the_callers_consents_for_that_patient(
    consent_client: httpx.AsyncClient, tokens: Tokens
) -> None:
    mine_1 = await record(consent_client, tokens)
    mine_2 = await record(consent_client, tokens, recipient_types=["jgz"])
    await record(consent_client, tokens, patient={"bsn": OTHER_BSN})
    await record(consent_client, tokens, org_id=OTHER_ORG)
    response = await consent_client.post(
        "/v1/consents/_search", json={"bsn": BSN}, headers=tokens.bearer(scopes="consent:read")
    )
    assert response.status_code == 200
    assert {c["id"] for c in response.json()["items"]} == {mine_1["id"], mine_2["id"]}
    nobody = await consent_client.post(
        "/v1/consents/_search", json={"bsn": "111222333"}, headers=tokens.bearer(scopes="consent:read")
    )
    assert nobody.json() == {"items": []}


async def test_search_with_an_invalid_bsn_is_a_422_without_the_bsn(
    consent_client: httpx.AsyncClient, tokens: Tokens
) -> None:
    response = await consent_client.post(
        "/v1/consents/_search", json={"bsn": "999999991"}, headers=tokens.bearer(scopes="consent:read")
    )
    assert response.status_code == 422
    assert "999999991" not in response.text


async def test_an_expired_consent_reads_as_expired(
    consent_client: httpx.AsyncClient, tokens: Tokens, consent_db: Database
) -> None:
    """Recorded a year ago with the default validity, it expired yesterday."""
    old = Consent.record(
        bsn=BSN,
        recipient_types=["jgz"],
        purpose="kansrijke-start-melding",
        method="written",
        given_at=today_nl() - timedelta(days=400),
        valid_until=None,
        org_id=SENDER,
        org_type="huisarts",
        sub="u",
        today=today_nl() - timedelta(days=400),
        now=now() - timedelta(days=400),
    )
    async with ConsentUnitOfWork(consent_db) as uow:
        await uow.consents.add(old)
        await uow.commit()
    response = await consent_client.get(f"/v1/consents/{old.id}", headers=tokens.bearer(scopes="consent:read"))
    assert response.json()["status"] == "expired"
    check = await consent_client.post(
        "/v1/consents/check",
        json={"consent_id": old.id, "bsn": BSN, "org_id": SENDER, "recipient_types": ["jgz"]},
        headers=tokens.bearer(org_id="platform", org_type="service", scopes="consent:check"),
    )
    assert check.json() == {"allowed": False, "consent": None, "reason": "expired"}


async def test_a_recorded_consent_stages_one_consent_recorded_with_her_keyed_bsn_not_her_bsn(
    consent_client: httpx.AsyncClient, tokens: Tokens, consent_db: Database
) -> None:
    created = await record(consent_client, tokens, risk_domains=["verslaving"])
    async with consent_db.unit_of_work() as uow:
        rows = (await uow.session.execute(select(outbox.c.message_type, outbox.c.id, outbox.c.body))).all()
    [(message_type, message_id, body)] = rows
    assert (message_type, message_id) == (CONSENT_RECORDED, f"recorded:{created['id']}")
    assert BSN not in body
    event = json.loads(body)
    assert event["consent_id"] == created["id"] and event["org_id"] == SENDER
    assert len(event["patient_ref"]) == 64 and event["patient_ref"] != BSN
    assert (event["recipient_types"], event["risk_domains"]) == (["jgz", "wijkteam"], ["verslaving"])


# --- withdraw --------------------------------------------------------------------------------------


async def test_withdrawal_sets_status_and_stages_one_event(
    consent_client: httpx.AsyncClient, tokens: Tokens, consent_db: Database
) -> None:
    created = await record(consent_client, tokens)
    headers = tokens.bearer(scopes=WRITE)
    first = await consent_client.post(
        f"/v1/consents/{created['id']}/withdraw", json={"reason": "cliënte wil niet"}, headers=headers
    )
    assert first.status_code == 200
    assert first.json()["status"] == "withdrawn" and first.json()["withdrawn_at"]
    again = await consent_client.post(f"/v1/consents/{created['id']}/withdraw", headers=headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert await withdrawals(consent_db) == 1


async def test_withdrawal_reason_is_bounded(
    consent_client: httpx.AsyncClient, tokens: Tokens, consent_db: Database
) -> None:
    created = await record(consent_client, tokens)
    response = await consent_client.post(
        f"/v1/consents/{created['id']}/withdraw", json={"reason": "x" * 501}, headers=tokens.bearer(scopes=WRITE)
    )
    assert response.status_code == 422
    assert await withdrawals(consent_db) == 0


# --- check -------------------------------------------------------------------------------------------


async def test_check_answers_every_reason(consent_client: httpx.AsyncClient, tokens: Tokens) -> None:
    jgz_only = await record(consent_client, tokens, recipient_types=["jgz"])
    withdrawn = await record(consent_client, tokens)
    await consent_client.post(f"/v1/consents/{withdrawn['id']}/withdraw", headers=tokens.bearer(scopes=WRITE))
    service = tokens.bearer(org_id="platform", org_type="service", scopes="consent:check")

    async def check(
        consent_id: str, *, bsn: str = BSN, org_id: str = SENDER, types: list[str] | None = None
    ) -> dict[str, Any]:
        response = await consent_client.post(
            "/v1/consents/check",
            headers=service,
            json={"consent_id": consent_id, "bsn": bsn, "org_id": org_id, "recipient_types": types or ["jgz"]},
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    assert await check(jgz_only["id"]) == {
        "allowed": True,
        "reason": None,
        "consent": {
            "id": jgz_only["id"],
            "recipient_types": ["jgz"],
            "risk_domains": None,
            "informed_about": [],
            "valid_until": jgz_only["valid_until"],
        },
    }
    assert await check("00000000-0000-0000-0000-000000000000") == {
        "allowed": False,
        "consent": None,
        "reason": "not-found",
    }
    assert await check(jgz_only["id"], bsn=OTHER_BSN) == {"allowed": False, "consent": None, "reason": "other-patient"}
    assert await check(jgz_only["id"], org_id=OTHER_ORG) == {
        "allowed": False,
        "consent": None,
        "reason": "other-organisation",
    }
    assert await check(withdrawn["id"]) == {"allowed": False, "consent": None, "reason": "withdrawn"}
    assert await check(jgz_only["id"], types=["jgz", "wijkteam"]) == {
        "allowed": False,
        "consent": None,
        "reason": "out-of-scope",
    }


async def test_check_needs_the_check_scope(consent_client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await consent_client.post(
        "/v1/consents/check",
        headers=tokens.bearer(scopes="consent:read consent:write"),
        json={
            "consent_id": "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10",
            "bsn": BSN,
            "org_id": SENDER,
            "recipient_types": ["jgz"],
        },
    )
    assert response.status_code == 403


# --- audit -------------------------------------------------------------------------------------------


async def test_every_access_to_personal_data_is_audited(consent_client: httpx.AsyncClient, tokens: Tokens) -> None:
    created = await record(consent_client, tokens)
    await consent_client.get(f"/v1/consents/{created['id']}", headers=tokens.bearer(scopes="consent:read"))
    await consent_client.post("/v1/consents/_search", json={"bsn": BSN}, headers=tokens.bearer(scopes="consent:read"))
    await consent_client.post(f"/v1/consents/{created['id']}/withdraw", headers=tokens.bearer(scopes=WRITE))
    response = await consent_client.get("/v1/audit", headers=tokens.bearer(org_type="operator", scopes="audit:read"))
    assert response.status_code == 200
    records = response.json()["items"]
    assert [r["action"] for r in records] == ["create", "read", "search", "withdraw"]
    assert all(r["patient_bsn"] == BSN and r["actor_org_id"] == SENDER and r["request_id"] for r in records)
    denied = await consent_client.get("/v1/audit", headers=tokens.bearer(scopes=WRITE))
    assert denied.status_code == 403


async def test_dates_use_the_dutch_calendar() -> None:
    assert abs((today_nl() - date.today()).days) <= 1
