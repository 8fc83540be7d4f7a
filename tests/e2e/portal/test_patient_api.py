"""Her own view through the services' APIs: a token bound to her keyed BSN reads her consents, the meldingen about
her and who accessed her data, and withdraws a consent herself — and never anything of another woman."""

from __future__ import annotations

from typing import Any

import aio_pika
import httpx

from tests.e2e.flow import (
    BSN,
    SENDER,
    RecipientQueue,
    body_of,
    consented_patient,
    eventually,
    melding_body,
    new_org_id,
    put_gemeente,
    put_organisation,
    record_consent,
    send,
    sender,
)
from tests.support import RunEnvironment, Tokens

Clients = dict[str, httpx.AsyncClient]


def patient(tokens: Tokens, environment: RunEnvironment, bsn: str = BSN, ttl: int = 300) -> dict[str, str]:
    """What the portal presents for her: `patient:self`, `sub` the keyed hash of her BSN."""
    ref = environment.cipher.bsn_ref(bsn)
    return tokens.bearer(org_id="patient", org_type="patient", scopes="patient:self", sub=ref, ttl=ttl)


async def _amsterdam_jgz(system: Clients, tokens: Tokens) -> str:
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"], name="GGD Amsterdam JGZ")
    return jgz


async def test_she_reads_her_consents_and_meldingen_and_withdraws_herself(
    system: Clients, tokens: Tokens, environment: RunEnvironment, amqp: aio_pika.abc.AbstractChannel
) -> None:
    jgz = await _amsterdam_jgz(system, tokens)
    kept = await record_consent(system, tokens, types=["jgz"], risk_domains=["verslaving", "financien-schulden"])
    other_org = new_org_id()
    withdrawn = await record_consent(system, tokens, types=["jgz"], org_id=other_org)
    sent = await send(system, tokens, melding_body(withdrawn, recipient_types=["jgz"]), org_id=other_org)
    assert sent.status_code == 202, sent.text
    queue = RecipientQueue(amqp, jgz)
    assert body_of(await queue.next())["melding_id"] == sent.json()["id"]
    her = patient(tokens, environment)

    consents = await system["consent"].get("/v1/self/consents", headers=her)
    assert consents.status_code == 200, consents.text
    assert {c["id"] for c in consents.json()["items"]} == {kept, withdrawn}  # both organisations'

    async def delivered() -> list[dict[str, Any]] | None:
        items = (await system["melding"].get("/v1/self/meldingen", headers=her)).json()["items"]
        return items if items and items[0]["recipients"] else None

    (melding,) = await eventually(delivered)
    assert melding["sender"] == {"org_id": other_org, "org_type": "verloskundige"} and melding["content_shown"]
    (jgz_seen,) = melding["recipients"]
    assert jgz_seen["org_name"] == "GGD Amsterdam JGZ" and jgz_seen["risk_domains"]
    assert jgz_seen["note"] and jgz_seen["status"] == "queued"

    # She withdraws: the JGZ's queue receives the retraction; the organisation sees she did it herself.
    done = await system["consent"].post(f"/v1/self/consents/{withdrawn}/withdraw", headers=her)
    assert done.status_code == 200, done.text
    assert done.json()["withdrawn_by"] == {"type": "patient"}
    retraction = await queue.next()
    assert retraction.type == "melding.retracted" and body_of(retraction)["reason"] == "consent-withdrawn"
    seen_by_org = await system["consent"].get(f"/v1/consents/{withdrawn}", headers=sender(tokens, other_org))
    assert seen_by_org.json()["status"] == "withdrawn"
    assert seen_by_org.json()["withdrawn_by"] == {"type": "patient"}

    async def withdrawn_melding() -> dict[str, Any] | None:
        (item,) = (await system["melding"].get("/v1/self/meldingen", headers=her)).json()["items"]
        return item if item["status"] == "withdrawn" else None

    gone = await eventually(withdrawn_melding)
    assert not gone["content_shown"] and gone["risk_domains"] == []
    assert all(r["note"] is None and r["risk_domains"] == [] for r in gone["recipients"])

    # Who accessed her data: the sender's and the JGZ's accesses, and her own, in the services' logs.
    actors = set()
    for service in ("consent", "melding", "routing"):
        log = await system[service].get("/v1/self/audit", headers=her)
        assert log.status_code == 200, log.text
        actors |= {(r["actor_org_type"], r["action"]) for r in log.json()["items"]}
        assert all("actor_sub" not in r and "patient_bsn" not in r for r in log.json()["items"])
    assert ("verloskundige", "create") in actors and ("patient", "withdraw") in actors
    assert ("patient", "search") in actors  # her own read, with her as the actor


async def test_a_patient_token_never_reads_or_withdraws_another_womans_data(
    system: Clients, tokens: Tokens, environment: RunEnvironment
) -> None:
    first = await record_consent(system, tokens, types=["jgz"])
    sent = await send(system, tokens, melding_body(first, recipient_types=["jgz"]))
    assert sent.status_code == 202, sent.text
    _, second_bsn = await consented_patient(system, tokens, types=["jgz"])
    second = patient(tokens, environment, second_bsn)

    consents = (await system["consent"].get("/v1/self/consents", headers=second)).json()["items"]
    assert first not in {c["id"] for c in consents} and all(c["patient"]["bsn"] == second_bsn for c in consents)
    assert (await system["melding"].get("/v1/self/meldingen", headers=second)).json()["items"] == []
    for service in ("consent", "melding", "routing"):
        records = (await system[service].get("/v1/self/audit", headers=second)).json()["items"]
        assert all(r["resource_id"] != first and r["resource_id"] != sent.json()["id"] for r in records)
    refused = await system["consent"].post(f"/v1/self/consents/{first}/withdraw", headers=second)
    assert refused.status_code == 404, refused.text
    still = await system["consent"].get(f"/v1/consents/{first}", headers=sender(tokens, SENDER))
    assert still.json()["status"] == "active" and still.json()["withdrawn_by"] is None


async def test_a_patient_token_is_short_lived_and_names_her_by_keyed_hash_only(
    system: Clients, tokens: Tokens, environment: RunEnvironment
) -> None:
    long_lived = patient(tokens, environment, ttl=3600)
    assert (await system["consent"].get("/v1/self/consents", headers=long_lived)).status_code == 401
    plain_bsn = tokens.bearer(org_id="patient", org_type="patient", scopes="patient:self", sub=BSN)
    assert (await system["consent"].get("/v1/self/consents", headers=plain_bsn)).status_code == 403
    # an organisation's token with the scope is refused; a patient token holds no other scope
    as_org = tokens.bearer(org_type="verloskundige", scopes="patient:self", sub=environment.cipher.bsn_ref(BSN))
    assert (await system["consent"].get("/v1/self/consents", headers=as_org)).status_code == 403
    ref = environment.cipher.bsn_ref(BSN)
    wider = tokens.bearer(org_id="patient", org_type="patient", scopes="patient:self consent:read", sub=ref)
    found = await system["consent"].post("/v1/consents/_search", headers=wider, json={"bsn": BSN})
    assert found.status_code == 403
