"""The melding flow end to end (the contract: melding, routing, the recipient's queue): real HTTP between the
services, real RabbitMQ, the run's real databases."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import aio_pika
import httpx
import pytest

from shared.db import Database
from tests.e2e.flow import (
    BSN,
    SENDER,
    RecipientQueue,
    body_of,
    consented_patient,
    eventually,
    melding_body,
    melding_status,
    new_org_id,
    put_gemeente,
    put_organisation,
    recipient,
    record_consent,
    send,
)
from tests.support import RunEnvironment, Tokens

Clients = dict[str, httpx.AsyncClient]


@pytest.fixture
async def amsterdam(system: Clients, tokens: Tokens) -> dict[str, str]:
    """Amsterdam with a JGZ for the whole gemeente, a wijkteam for the gemeente and one for 1011-1012."""
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109"), ("1381", "1384")])
    orgs = {"jgz": new_org_id(), "wijkteam_gemeente": new_org_id(), "wijkteam_centrum": new_org_id()}
    await put_organisation(system, tokens, orgs["jgz"], "jgz", gemeenten=["GM0363"], name="GGD Amsterdam JGZ")
    await put_organisation(system, tokens, orgs["wijkteam_gemeente"], "wijkteam", gemeenten=["GM0363"])
    await put_organisation(
        system, tokens, orgs["wijkteam_centrum"], "wijkteam", ranges=[("1011", "1012")], name="Buurtteam Centrum"
    )
    return orgs


async def test_a_melding_reaches_the_right_jgz_and_wijkteam_with_the_contract_message(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, amsterdam: dict[str, str]
) -> None:
    consent_id = await record_consent(system, tokens)
    headers = {**_sender(tokens), "Idempotency-Key": "flow-1", "X-Request-ID": "ehr-trace-77"}
    response = await system["melding"].post("/v1/meldingen", headers=headers, json=melding_body(consent_id))
    assert response.status_code == 202, response.text
    melding = response.json()
    assert response.headers["location"] == f"/v1/meldingen/{melding['id']}"
    assert melding["status"] == "accepted"
    assert melding["patient"]["address"]["postcode"] == "1011AB"
    assert melding["sender"] == {"org_id": SENDER, "org_type": "verloskundige", "sub": "test-user"}

    jgz = await RecipientQueue(amqp, amsterdam["jgz"]).next()
    wijkteam = await RecipientQueue(amqp, amsterdam["wijkteam_centrum"]).next()  # the range beats the gemeente
    assert await RecipientQueue(amqp, amsterdam["wijkteam_gemeente"]).empty()
    for message, org_id, recipient_type in (
        (jgz, amsterdam["jgz"], "jgz"),
        (wijkteam, amsterdam["wijkteam_centrum"], "wijkteam"),
    ):
        body = body_of(message)
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.type == "melding.delivered"
        assert message.message_id == body["delivery_id"]
        assert message.correlation_id == melding["id"]
        assert message.headers["x-request-id"] == "ehr-trace-77"  # the EHR's request id, across services
        assert body["melding_id"] == melding["id"] and body["sent_at"]
        assert body["recipient"] == {"org_id": org_id, "type": recipient_type}
        assert body["gemeente"] == {"code": "GM0363", "name": "Amsterdam"}
        assert body["patient"] == melding["patient"]
        assert body["pregnancy"] == melding["pregnancy"]
        assert body["risk_domains"] == ["verslaving", "financien-schulden"]
        assert body["urgency"] == "regular" and body["note"] == melding["note"]
        assert body["sender"] == {"org_id": SENDER, "org_type": "verloskundige", "contact": melding["contact"]}
        assert body["consent"]["id"] == consent_id and body["consent"]["recipient_types"] == ["jgz", "wijkteam"]
        assert body["consent"]["valid_until"]

    delivered = await eventually(lambda: _with_status(system, tokens, melding["id"], "delivered"))
    assert delivered["gemeente"] == {"code": "GM0363", "name": "Amsterdam"}
    assert {(d["org_id"], d["recipient_type"], d["status"]) for d in delivered["deliveries"]} == {
        (amsterdam["jgz"], "jgz", "queued"),
        (amsterdam["wijkteam_centrum"], "wijkteam", "queued"),
    }
    assert delivered["unroutable_types"] == []
    assert [h["event"] for h in delivered["history"]][:2] == ["accepted", "routed"]

    # the recipient fetches it again by API: the same body as the queue message (less its queue's number)
    again = await system["routing"].get(
        f"/v1/deliveries/{body_of(jgz)['delivery_id']}", headers=recipient(tokens, amsterdam["jgz"])
    )
    assert again.status_code == 200
    assert {**{k: v for k, v in again.json().items() if k != "status"}, "sequence": 1} == body_of(jgz)
    assert again.json()["status"] == "queued"


async def _with_status(system: Clients, tokens: Tokens, melding_id: str, status: str) -> dict[str, Any] | None:
    melding = await melding_status(system, tokens, melding_id)
    return melding if melding["status"] == status else None


# --- consent ------------------------------------------------------------------------------------------


async def test_nothing_is_delivered_without_valid_consent_in_each_way_it_can_be_missing(
    system: Clients,
    tokens: Tokens,
    amqp: aio_pika.abc.AbstractChannel,
    amsterdam: dict[str, str],
    stack_databases: dict[str, str],
    environment: RunEnvironment,
) -> None:
    jgz_only = await record_consent(system, tokens, types=["jgz"])
    other_org = await record_consent(system, tokens, org_id="10000002")
    other_patient = await record_consent(system, tokens, bsn="123456782")
    withdrawn = await record_consent(system, tokens)
    await system["consent"].post(f"/v1/consents/{withdrawn}/withdraw", headers=_sender(tokens))
    expired = await _expired_consent(environment.database(stack_databases["consent"]))
    cases = {
        "not-found": melding_body("00000000-0000-0000-0000-000000000000"),
        "other-organisation": melding_body(other_org),
        "other-patient": melding_body(other_patient),
        "withdrawn": melding_body(withdrawn),
        "expired": melding_body(expired),
        "out-of-scope": melding_body(jgz_only),  # asks for jgz and wijkteam
    }
    details = {}
    for reason, body in cases.items():
        response = await send(system, tokens, body)
        assert response.status_code == 403, (reason, response.text)
        problem = response.json()
        assert problem["type"] == "urn:kansrijk:problem:consent-required", reason
        assert BSN not in response.text
        details[reason] = problem["detail"]
    # Another organisation's consent is answered as an unknown id: its existence is not revealed.
    assert details["other-organisation"] == details["not-found"]
    listed = await system["melding"].get("/v1/meldingen", headers=_sender(tokens))
    assert listed.json()["items"] == []  # nothing stored
    for org_id in amsterdam.values():
        assert await RecipientQueue(amqp, org_id).empty(wait=0.3)


async def _expired_consent(database: Database) -> str:
    from datetime import timedelta

    from services.consent.domain.model import Consent
    from services.consent.service_layer.unit_of_work import ConsentUnitOfWork
    from shared.clock import now, today_nl

    long_ago = today_nl() - timedelta(days=400)
    consent = Consent.record(
        bsn=BSN,
        recipient_types=["jgz", "wijkteam"],
        purpose="kansrijke-start-melding",
        method="written",
        given_at=long_ago,
        valid_until=None,
        org_id=SENDER,
        org_type="verloskundige",
        sub="u",
        today=long_ago,
        now=now() - timedelta(days=400),
    )
    async with ConsentUnitOfWork(database) as uow:
        await uow.consents.add(consent)
        await uow.commit()
    await database.dispose()
    return consent.id


def _sender(tokens: Tokens, org_id: str = SENDER) -> dict[str, str]:
    from tests.e2e.flow import sender

    return sender(tokens, org_id)


async def test_the_consent_service_unreachable_is_503_and_nothing_is_stored(
    environment: RunEnvironment, tokens: Tokens, stack_databases: dict[str, str]
) -> None:
    from services.melding.main import create_app
    from tests.conftest import service_settings
    from tests.support import _free_port, running

    settings = service_settings(
        environment,
        "melding",
        stack_databases["melding"],
        consent_url=f"http://127.0.0.1:{_free_port()}",
        consent_timeout_seconds=2,
    )
    app = create_app(settings, run_workers=False)
    async with running(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as client:
        response = await client.post(
            "/v1/meldingen",
            headers={**_sender(tokens), "Idempotency-Key": "down-1"},
            json=melding_body("6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10"),
        )
        assert response.status_code == 503
        assert response.json()["type"] == "urn:kansrijk:problem:unavailable"
        assert (await client.get("/v1/meldingen", headers=_sender(tokens))).json()["items"] == []


# --- validation ---------------------------------------------------------------------------------------

INVALID: dict[str, dict[str, Any]] = {
    "patient.bsn": {"patient": {**melding_body("c")["patient"], "bsn": "999999991"}},
    "patient.address.postcode": {
        "patient": {**melding_body("c")["patient"], "address": {"postcode": "1011 SA", "house_number": "1"}}
    },
    "patient.birth_date": {"patient": {**melding_body("c")["patient"], "birth_date": "2099-01-01"}},
    "pregnancy.expected_due_date": {"pregnancy": {"expected_due_date": "2020-01-01"}},
    "risk_domains": {"risk_domains": []},
    "risk_domains.0": {"risk_domains": ["astrologie"]},
    "recipient_types": {"recipient_types": ["jgz", "jgz"]},
    "recipient_types.0": {"recipient_types": ["ggd"]},
    "urgency": {"urgency": "asap"},
    "note": {"note": "x" * 2001},
    "patient.phone": {"patient": {**melding_body("c")["patient"], "phone": "call me"}},
}


@pytest.mark.parametrize("field", list(INVALID))
async def test_each_validation_rule_is_a_422_and_stores_nothing(system: Clients, tokens: Tokens, field: str) -> None:
    consent_id = await record_consent(system, tokens)
    body = {**melding_body(consent_id), **INVALID[field]}
    response = await send(system, tokens, body, key=f"invalid-{field}")
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
    assert "999999991" not in response.text and BSN not in response.text
    assert (await system["melding"].get("/v1/meldingen", headers=_sender(tokens))).json()["items"] == []


async def test_due_date_bounds_are_30_days_back_and_300_ahead(system: Clients, tokens: Tokens) -> None:
    from datetime import timedelta

    from shared.clock import today_nl

    for days, expected in ((-30, 202), (-31, 422), (300, 202), (301, 422)):
        consent_id, bsn = await consented_patient(system, tokens)
        day = (today_nl() + timedelta(days=days)).isoformat()
        response = await send(system, tokens, melding_body(consent_id, bsn, pregnancy={"expected_due_date": day}))
        assert response.status_code == expected, (days, response.text)


# --- idempotency, cross-organisation -----------------------------------------------------------------


async def test_an_idempotent_retry_delivers_once(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, amsterdam: dict[str, str]
) -> None:
    consent_id = await record_consent(system, tokens, types=["jgz"])
    body = melding_body(consent_id, recipient_types=["jgz"])
    first = await send(system, tokens, body, key="retry-once")
    second = await send(system, tokens, body, key="retry-once")
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    conflict = await send(system, tokens, {**body, "urgency": "urgent"}, key="retry-once")
    assert conflict.status_code == 409 and conflict.json()["type"] == "urn:kansrijk:problem:idempotency-conflict"
    queue = RecipientQueue(amqp, amsterdam["jgz"])
    assert body_of(await queue.next())["melding_id"] == first.json()["id"]
    assert await queue.empty()
    assert len((await system["melding"].get("/v1/meldingen", headers=_sender(tokens))).json()["items"]) == 1


async def test_other_organisations_get_404(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, amsterdam: dict[str, str]
) -> None:
    consent_id = await record_consent(system, tokens, types=["jgz"])
    melding = (await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]))).json()
    delivery = body_of(await RecipientQueue(amqp, amsterdam["jgz"]).next())
    other_sender = await system["melding"].get(f"/v1/meldingen/{melding['id']}", headers=_sender(tokens, "10000002"))
    assert other_sender.status_code == 404
    other_recipient = recipient(tokens, new_org_id())
    for response in (
        await system["routing"].get(f"/v1/deliveries/{delivery['delivery_id']}", headers=other_recipient),
        await system["routing"].post(
            f"/v1/deliveries/{delivery['delivery_id']}/status", headers=other_recipient, json={"status": "received"}
        ),
    ):
        assert response.status_code == 404
        assert response.json()["type"] == "urn:kansrijk:problem:not-found"
    listing = await system["routing"].get("/v1/deliveries", headers=other_recipient)
    assert listing.json() == {"items": [], "next_cursor": None}


async def test_a_sender_token_cannot_act_as_recipient_nor_a_recipient_as_sender(
    system: Clients, tokens: Tokens, amsterdam: dict[str, str]
) -> None:
    as_recipient = tokens.bearer(org_id=SENDER, org_type="verloskundige", scopes="delivery:read")
    assert (await system["routing"].get("/v1/deliveries", headers=as_recipient)).status_code == 403
    consent_id = await record_consent(system, tokens)
    as_sender = tokens.bearer(org_id=amsterdam["jgz"], org_type="jgz", scopes="melding:write")
    assert (
        await system["melding"].post("/v1/meldingen", headers=as_sender, json=melding_body(consent_id))
    ).status_code == 403


# --- status back, pagination ----------------------------------------------------------------------


async def test_status_flows_back_to_the_sender_forward_only(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, amsterdam: dict[str, str]
) -> None:
    consent_id = await record_consent(system, tokens, types=["jgz"])
    melding = (await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]))).json()
    delivery_id = body_of(await RecipientQueue(amqp, amsterdam["jgz"]).next())["delivery_id"]
    headers = recipient(tokens, amsterdam["jgz"])
    url = f"/v1/deliveries/{delivery_id}/status"
    for status in ("received", "received", "contact_made"):
        response = await system["routing"].post(url, headers=headers, json={"status": status})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
    back = await system["routing"].post(url, headers=headers, json={"status": "received"})
    assert back.status_code == 409 and back.json()["type"] == "urn:kansrijk:problem:conflict"
    bad = await system["routing"].post(url, headers=headers, json={"status": "queued"})
    assert bad.status_code == 422

    async def contact_made() -> dict[str, Any] | None:
        view = await melding_status(system, tokens, melding["id"])
        return view if view["deliveries"] and view["deliveries"][0]["status"] == "contact_made" else None

    view = await eventually(contact_made, timeout=10)
    assert view["status"] == "delivered"
    assert "delivery_contact_made" in [h["event"] for h in view["history"]]


async def test_lists_are_newest_first_with_cursors_and_a_status_filter(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, amsterdam: dict[str, str]
) -> None:
    sent = []
    for _ in range(5):  # five patients: one open melding per patient and type
        consent_id, bsn = await consented_patient(system, tokens, types=["jgz"])
        sent.append((await send(system, tokens, melding_body(consent_id, bsn, recipient_types=["jgz"]))).json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await system["melding"].get("/v1/meldingen", headers=_sender(tokens), params=params)).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(sent))
    for _ in sent:
        await RecipientQueue(amqp, amsterdam["jgz"]).next()
    delivered = await eventually(lambda: _count(system, tokens, "delivered", 5))
    assert delivered
    recipient_page = (
        await system["routing"].get("/v1/deliveries", headers=recipient(tokens, amsterdam["jgz"]), params={"limit": 3})
    ).json()
    assert len(recipient_page["items"]) == 3 and recipient_page["next_cursor"]
    bad_cursor = await system["melding"].get("/v1/meldingen", headers=_sender(tokens), params={"cursor": "nonsense"})
    assert bad_cursor.status_code == 422


async def _count(system: Clients, tokens: Tokens, status: str, expected: int) -> bool:
    page = (
        await system["melding"].get("/v1/meldingen", headers=_sender(tokens), params={"status": status, "limit": 100})
    ).json()
    return len(page["items"]) == expected


# --- unroutable, withdrawal -------------------------------------------------------------------------


async def test_an_unroutable_melding_waits_and_is_delivered_after_a_directory_change(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, amsterdam: dict[str, str]
) -> None:
    await put_gemeente(system, tokens, "GM0599", "Rotterdam", [("3011", "3089")])
    consent_id = await record_consent(system, tokens, types=["jgz"])
    address = {"postcode": "3011AA", "house_number": "1", "city": "Rotterdam"}
    body = melding_body(
        consent_id, recipient_types=["jgz"], patient={**melding_body(consent_id)["patient"], "address": address}
    )
    melding = (await send(system, tokens, body)).json()
    unroutable = await eventually(lambda: _with_status(system, tokens, melding["id"], "unroutable"))
    assert unroutable["unroutable_types"] == ["jgz"]
    assert unroutable["gemeente"] == {"code": "GM0599", "name": "Rotterdam"}
    waiting = (await system["routing"].get("/v1/unroutable", headers=_admin(tokens))).json()["items"]
    assert [w["melding_id"] for w in waiting] == [melding["id"]]
    assert (waiting[0]["gemeente_code"], waiting[0]["gemeente_name"]) == ("GM0599", "Rotterdam")
    again = await system["routing"].post(f"/v1/unroutable/{melding['id']}/reroute", headers=_admin(tokens))
    assert again.status_code == 200 and again.json()["status"] == "waiting", again.text
    assert again.json()["reason"].startswith("no active jgz organisation serves gemeente Rotterdam (GM0599)")
    assert again.json()["waiting"] == [{"recipient_type": "jgz", "reason": "no-organisation"}]

    rotterdam_jgz = new_org_id()
    await put_organisation(system, tokens, rotterdam_jgz, "jgz", gemeenten=["GM0599"], name="CJG Rijnmond")
    message = await RecipientQueue(amqp, rotterdam_jgz).next(timeout=12)  # rerouted within 10 s
    assert body_of(message)["melding_id"] == melding["id"]
    delivered = await eventually(lambda: _with_status(system, tokens, melding["id"], "delivered"))
    assert delivered["unroutable_types"] == []
    assert (await system["routing"].get("/v1/unroutable", headers=_admin(tokens))).json()["items"] == []


async def test_a_waiting_melding_past_its_purpose_is_purged_and_holds_up_no_other(
    system: Clients,
    tokens: Tokens,
    stack_databases: dict[str, str],
    environment: RunEnvironment,
    amqp: aio_pika.abc.AbstractChannel,
) -> None:
    from services.registry import SERVICES
    from shared.clock import today_nl

    # Two meldingen for Utrecht, which no JGZ serves yet: the older one long past its due date.
    await put_gemeente(system, tokens, "GM0344", "Utrecht", [("3500", "3585")])
    address = {"postcode": "3511AB", "house_number": "7", "city": "Utrecht"}
    waiting = {}
    for name, due_in_days in (("old", -20), ("current", 100)):
        consent_id, bsn = await consented_patient(system, tokens, types=["jgz"])
        body = melding_body(
            consent_id,
            bsn,
            recipient_types=["jgz"],
            patient={**melding_body(consent_id, bsn)["patient"], "address": address},
        )
        body["pregnancy"]["expected_due_date"] = (today_nl() + timedelta(days=due_in_days)).isoformat()
        sent = await send(system, tokens, body)
        assert sent.status_code == 202, sent.text
        waiting[name] = sent.json()["id"]
        await eventually(partial(_with_status, system, tokens, waiting[name], "unroutable"))

    database = environment.database(stack_databases["routing"])
    try:
        settings = SERVICES["routing"].settings(personal_data_retention_days=10)
        assert (await SERVICES["routing"].parts.purge(database, settings, False))[
            "routed meldingen (personal data)"
        ] == 1
    finally:
        await database.dispose()
    listed = (await system["routing"].get("/v1/unroutable", headers=_admin(tokens))).json()["items"]
    assert waiting["old"] not in [item["melding_id"] for item in listed]  # it can never go out now
    again = await system["routing"].post(f"/v1/unroutable/{waiting['old']}/reroute", headers=_admin(tokens))
    assert again.status_code == 404, again.text

    # A JGZ for Utrecht: the current melding is routed within a reroute round, the purged one is not.
    utrecht_jgz = new_org_id()
    await put_organisation(system, tokens, utrecht_jgz, "jgz", gemeenten=["GM0344"])
    queue = RecipientQueue(amqp, utrecht_jgz)
    assert body_of(await queue.next(timeout=12))["melding_id"] == waiting["current"]
    assert await queue.empty(wait=3.0)


def _admin(tokens: Tokens) -> dict[str, str]:
    from tests.e2e.flow import admin

    return admin(tokens)


async def test_withdrawal_after_delivery_retracts_and_before_delivery_stops(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, amsterdam: dict[str, str]
) -> None:
    # after delivery: a retraction on the recipient's queue, the delivery retracted, the melding withdrawn
    delivered_consent = await record_consent(system, tokens, types=["jgz"])
    melding = (await send(system, tokens, melding_body(delivered_consent, recipient_types=["jgz"]))).json()
    queue = RecipientQueue(amqp, amsterdam["jgz"])
    delivery = body_of(await queue.next())
    await system["consent"].post(f"/v1/consents/{delivered_consent}/withdraw", headers=_sender(tokens))
    retraction = await queue.next()
    assert retraction.type == "melding.retracted"
    assert retraction.correlation_id == melding["id"]
    assert body_of(retraction)["delivery_id"] == delivery["delivery_id"]
    assert body_of(retraction)["reason"] == "consent-withdrawn" and body_of(retraction)["retracted_at"]
    assert BSN not in retraction.body.decode()
    view = await eventually(lambda: _with_status(system, tokens, melding["id"], "withdrawn"))
    await eventually(lambda: _delivery_retracted(system, tokens, melding["id"]))
    fetched = await system["routing"].get(
        f"/v1/deliveries/{delivery['delivery_id']}", headers=recipient(tokens, amsterdam["jgz"])
    )
    assert fetched.json()["status"] == "retracted" and "patient" not in fetched.json()  # personal data gone
    late = await system["routing"].post(
        f"/v1/deliveries/{delivery['delivery_id']}/status",
        headers=recipient(tokens, amsterdam["jgz"]),
        json={"status": "received"},
    )
    assert late.status_code == 409
    assert view["status"] == "withdrawn"

    # before delivery: a waiting melding is never delivered once its consent is withdrawn
    await put_gemeente(system, tokens, "GM0518", "'s-Gravenhage", [("2491", "2599")])
    waiting_consent = await record_consent(system, tokens, types=["jgz"])
    address = {"postcode": "2511AB", "house_number": "3"}
    waiting = (
        await send(
            system,
            tokens,
            melding_body(
                waiting_consent,
                recipient_types=["jgz"],
                patient={**melding_body(waiting_consent)["patient"], "address": address},
            ),
        )
    ).json()
    await eventually(lambda: _with_status(system, tokens, waiting["id"], "unroutable"))
    await system["consent"].post(f"/v1/consents/{waiting_consent}/withdraw", headers=_sender(tokens))
    await eventually(lambda: _with_status(system, tokens, waiting["id"], "withdrawn"))
    hague_jgz = new_org_id()
    await put_organisation(system, tokens, hague_jgz, "jgz", gemeenten=["GM0518"])
    assert await RecipientQueue(amqp, hague_jgz).empty(wait=3.0)  # three reroute rounds


async def _delivery_retracted(system: Clients, tokens: Tokens, melding_id: str) -> bool:
    view = await melding_status(system, tokens, melding_id)
    return bool(view["deliveries"]) and view["deliveries"][0]["status"] == "retracted"


async def test_the_reference_recipient_drops_transport_duplicates_by_message_id(
    system: Clients,
    tokens: Tokens,
    amqp: aio_pika.abc.AbstractChannel,
    amsterdam: dict[str, str],
    environment: RunEnvironment,
) -> None:
    from tools.reference_recipient import ReferenceRecipient

    consent_id = await record_consent(system, tokens, types=["jgz"])
    await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]))
    original = await RecipientQueue(amqp, amsterdam["jgz"]).next()
    # the broker may hand the same message over twice (a redelivery after a lost ack): put it back twice
    exchange = await amqp.get_exchange("kansrijk.deliveries", ensure=False)
    for _ in range(2):
        await exchange.publish(
            aio_pika.Message(
                original.body,
                message_id=original.message_id,
                type=original.type,
                correlation_id=original.correlation_id,
            ),
            routing_key=amsterdam["jgz"],
        )
    seen: list[str] = []
    recipient_token = recipient(tokens, amsterdam["jgz"])["Authorization"].split()[1]
    consumer = ReferenceRecipient(
        amqp_url=environment.amqp_url,
        org_id=amsterdam["jgz"],
        routing_url=str(system["routing"].base_url),
        token=recipient_token,
        show=lambda kind, body: seen.append(kind),
    )
    assert await consumer.run(count=2, idle_timeout=10) == 2
    assert seen.count("delivered") == 1 and seen.count("duplicate") == 1 and "reported" in seen
