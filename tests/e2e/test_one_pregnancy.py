"""One pregnancy, not duplicates (contract v1.1, "Sender cancellation and repeated meldingen")."""

from __future__ import annotations

import aio_pika
import httpx

from tests.e2e.flow import (
    SENDER,
    RecipientQueue,
    body_of,
    melding_body,
    new_org_id,
    put_gemeente,
    put_organisation,
    record_consent,
    send,
    sender,
)
from tests.support import Tokens

Clients = dict[str, httpx.AsyncClient]
HUISARTS = "10000002"


async def test_a_second_open_melding_from_one_organisation_is_a_conflict_naming_the_first(
    system: Clients, tokens: Tokens
) -> None:
    consent_id = await record_consent(system, tokens)
    first = await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]), key="first")
    assert first.status_code == 202, first.text
    replay = await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]), key="first")
    assert replay.status_code == 202 and replay.json()["id"] == first.json()["id"]  # the key is looked at first
    again = await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]), key="second")
    assert again.status_code == 409, again.text
    assert again.json()["existing"] == f"/v1/meldingen/{first.json()['id']}"
    assert "999999990" not in again.text and "Sanne" not in again.text
    wijkteam = await send(system, tokens, melding_body(consent_id, recipient_types=["wijkteam"]), key="third")
    assert wijkteam.status_code == 202, wijkteam.text  # the wijkteam added later, alone
    await system["melding"].post(
        f"/v1/meldingen/{first.json()['id']}/cancel", headers=sender(tokens), json={"reason": "sent-in-error"}
    )
    after = await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]), key="fourth")
    assert after.status_code == 202, after.text  # the first is no longer open


async def test_another_organisations_melding_for_the_same_pregnancy_is_linked_for_the_recipient(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"])
    queue = RecipientQueue(amqp, jgz)
    verloskundige = await record_consent(system, tokens, types=["jgz"], org_id=SENDER)
    await send(system, tokens, melding_body(verloskundige, recipient_types=["jgz"]))
    first = body_of(await queue.next())
    assert first["related_deliveries"] == []
    huisarts = await record_consent(system, tokens, types=["jgz"], org_id=HUISARTS)
    sent = await send(system, tokens, melding_body(huisarts, recipient_types=["jgz"]), org_id=HUISARTS)
    assert sent.status_code == 202, sent.text
    second = body_of(await queue.next())
    assert second["related_deliveries"] == [first["delivery_id"]]
