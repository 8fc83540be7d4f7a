"""The melding flow end to end (CONTRACT.md: melding, routing, the recipient's queue): real HTTP between the
services, real RabbitMQ, the run's real databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import httpx
import pytest

from tests.e2e.flow import (
    BSN,
    SENDER,
    RecipientQueue,
    body_of,
    eventually,
    melding_body,
    melding_status,
    new_org_id,
    put_gemeente,
    put_organisation,
    record_consent,
    recipient,
    send,
)
from tests.support import RunEnvironment, Tokens

Clients = dict[str, httpx.AsyncClient]


@pytest.fixture
async def amqp(environment: RunEnvironment) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect_robust(environment.amqp_url)
    yield await connection.channel()
    await connection.close()


@pytest.fixture
async def amsterdam(system: Clients, tokens: Tokens) -> dict[str, str]:
    """Amsterdam with a JGZ for the whole gemeente, a wijkteam for the gemeente and one for 1011-1012."""
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109"), ("1381", "1384")])
    orgs = {"jgz": new_org_id(), "wijkteam_gemeente": new_org_id(), "wijkteam_centrum": new_org_id()}
    await put_organisation(system, tokens, orgs["jgz"], "jgz", gemeenten=["GM0363"], name="GGD Amsterdam JGZ")
    await put_organisation(system, tokens, orgs["wijkteam_gemeente"], "wijkteam", gemeenten=["GM0363"])
    await put_organisation(system, tokens, orgs["wijkteam_centrum"], "wijkteam", ranges=[("1011", "1012")],
                           name="Buurtteam Centrum")
    return orgs


async def test_a_melding_reaches_the_right_jgz_and_wijkteam_with_the_contract_message(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, amsterdam: dict[str, str]
) -> None:
    consent_id = await record_consent(system, tokens)
    response = await send(system, tokens, melding_body(consent_id), key="flow-1")
    assert response.status_code == 202, response.text
    melding = response.json()
    assert response.headers["location"] == f"/v1/meldingen/{melding['id']}"
    assert melding["status"] == "accepted"
    assert melding["patient"]["address"]["postcode"] == "1011AB"
    assert melding["sender"] == {"org_id": SENDER, "org_type": "verloskundige", "sub": "test-user"}

    jgz = await RecipientQueue(amqp, amsterdam["jgz"]).next()
    wijkteam = await RecipientQueue(amqp, amsterdam["wijkteam_centrum"]).next()  # the range beats the gemeente
    assert await RecipientQueue(amqp, amsterdam["wijkteam_gemeente"]).empty()
    for message, org_id, recipient_type in ((jgz, amsterdam["jgz"], "jgz"),
                                            (wijkteam, amsterdam["wijkteam_centrum"], "wijkteam")):
        body = body_of(message)
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.type == "melding.delivered"
        assert message.message_id == body["delivery_id"]
        assert message.correlation_id == melding["id"]
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
        (amsterdam["jgz"], "jgz", "queued"), (amsterdam["wijkteam_centrum"], "wijkteam", "queued")}
    assert delivered["unroutable_types"] == []
    assert [h["event"] for h in delivered["history"]][:2] == ["accepted", "routed"]

    # the recipient fetches it again by API: the same body as the queue message
    again = await system["routing"].get(f"/v1/deliveries/{body_of(jgz)['delivery_id']}",
                                        headers=recipient(tokens, amsterdam["jgz"]))
    assert again.status_code == 200
    assert {k: v for k, v in again.json().items() if k != "status"} == body_of(jgz)
    assert again.json()["status"] == "queued"


async def _with_status(system: Clients, tokens: Tokens, melding_id: str, status: str) -> dict | None:
    melding = await melding_status(system, tokens, melding_id)
    return melding if melding["status"] == status else None
