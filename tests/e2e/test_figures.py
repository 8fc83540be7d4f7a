"""Programme figures end to end (CONTRACT.md v1.1, "Programme figures"): meldingen made through the API —
answered, withdrawn (their personal data removed at once), cancelled — counted per gemeente and for the
country, with every small number suppressed, for a token with `figures:read` only."""

from __future__ import annotations

from typing import Any

import aio_pika
import httpx

from shared.clock import today_nl
from tests.e2e.flow import (
    RecipientQueue,
    admin,
    body_of,
    consented_patient,
    eventually,
    melding_body,
    new_org_id,
    put_gemeente,
    put_organisation,
    recipient,
    sender,
)
from tests.support import Tokens

Clients = dict[str, httpx.AsyncClient]
GEMEENTE, NAME, POSTCODES = "GM1680", "Aa en Hunze", ("9450", "9469")  # no other test routes here


def coordinator(tokens: Tokens) -> dict[str, str]:
    return tokens.bearer(org_id="coalitie-drenthe", org_type="operator", scopes="figures:read")


def huisarts(tokens: Tokens, org_id: str) -> dict[str, str]:
    return tokens.bearer(org_id=org_id, org_type="huisarts", scopes="consent:write melding:write melding:read")


def _body(consent_id: str, bsn: str, domains: list[str]) -> dict[str, Any]:
    body = melding_body(consent_id, bsn, recipient_types=["jgz"], risk_domains=domains)
    body["patient"]["address"]["postcode"] = "9451AB"
    return body


async def _send(system: Clients, headers: dict[str, str], body: dict[str, Any]) -> str:
    sent = await system["melding"].post("/v1/meldingen", headers=headers, json=body)
    assert sent.status_code == 202, sent.text
    return str(sent.json()["id"])


async def _huisarts_melding(system: Clients, tokens: Tokens, org_id: str, bsn: str) -> tuple[str, str]:
    consent = await system["consent"].post(
        "/v1/consents",
        headers=huisarts(tokens, org_id),
        json={"patient": {"bsn": bsn}, "recipient_types": ["jgz"], "method": "verbal", "given_at": str(today_nl())},
    )
    assert consent.status_code == 201, consent.text
    consent_id = consent.json()["id"]
    return consent_id, await _send(system, huisarts(tokens, org_id), _body(consent_id, bsn, ["psychiatrie"]))


async def _figures(system: Clients, tokens: Tokens, **params: str) -> httpx.Response:
    today = str(today_nl())
    return await system["melding"].get(
        "/v1/figures", headers=coordinator(tokens), params={"from": today, "to": today, "interval": "year", **params}
    )


async def test_figures_count_what_came_of_the_meldingen_and_hide_every_small_number(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    await put_gemeente(system, tokens, GEMEENTE, NAME, [POSTCODES])
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=[GEMEENTE])
    route_map = {"effective_from": "2026-01-01", "recipients": {"jgz": {"risk_domains": "all"}}}
    put = await system["routing"].put(f"/v1/gemeenten/{GEMEENTE}/route-map", headers=admin(tokens), json=route_map)
    assert put.status_code == 201, put.text

    verloskundige, practice = new_org_id(), new_org_id()
    ours = []  # the verloskundige's meldingen
    for _ in range(12):
        consent_id, bsn = await consented_patient(system, tokens, types=["jgz"], org_id=verloskundige)
        body = _body(consent_id, bsn, ["verslaving", "financien-schulden"])
        ours.append(await _send(system, sender(tokens, verloskundige), body))
    huisarts_consents = []
    for _ in range(3):
        _, bsn = await consented_patient(system, tokens, types=["jgz"])  # a fresh BSN
        huisarts_consents.append((await _huisarts_melding(system, tokens, practice, bsn))[0])

    queue = RecipientQueue(amqp, jgz)
    delivered = {body_of(m)["melding_id"]: str(m.message_id) for m in [await queue.next() for _ in range(15)]}
    for n, melding_id in enumerate(ours[:11]):
        path = f"/v1/deliveries/{delivered[melding_id]}/status"
        contact = await system["routing"].post(path, headers=recipient(tokens, jgz), json={"status": "contact_made"})
        assert contact.status_code == 200, contact.text
        if n < 10:
            closed = {"status": "closed", "outcome": "phb-done"}
            assert (await system["routing"].post(path, headers=recipient(tokens, jgz), json=closed)).status_code == 200
    withdrawn = await system["consent"].post(
        f"/v1/consents/{huisarts_consents[0]}/withdraw", headers=huisarts(tokens, practice)
    )
    assert withdrawn.status_code == 200, withdrawn.text
    cancelled = await system["melding"].post(
        f"/v1/meldingen/{ours[11]}/cancel", headers=sender(tokens, verloskundige), json={"reason": "sent-in-error"}
    )
    assert cancelled.status_code == 200, cancelled.text

    expected = {
        "meldingen": 15,
        # 12 verloskundige and 3 huisarts: the 12 would give the 3 away (15 - 12).
        "by_sender_type": {t: None for t in ("huisarts", "verloskundige", "gynaecoloog", "volwassenen-ggz",
                                             "verslavingszorg")},
        "by_recipient_type": {"jgz": 15, "wijkteam": None},
        "returned": None,
        "contact_within_deadline": 1.0,  # 11 of the 11 whose deadline was met or passed
        "days_to_contact": {"p50": 0.0, "p90": 0.0},
    }  # fmt: skip

    async def counted() -> dict[str, Any] | None:
        response = await _figures(system, tokens, gemeente=GEMEENTE.lower())
        assert response.status_code == 200, response.text
        (period,) = response.json()["periods"]
        seen.append(period)
        return period if {k: period[k] for k in expected} == expected and period["outcomes"]["phb-done"] else None

    seen: list[dict[str, Any]] = []

    try:
        period = await eventually(counted, timeout=30)
    except AssertionError:
        raise AssertionError(seen[-1]) from None
    assert period["by_risk_domain"]["verslaving"] == 12 and period["by_risk_domain"]["financien-schulden"] == 12
    assert period["by_risk_domain"]["psychiatrie"] is None  # 3
    assert period["outcomes"]["phb-done"] == 10 and period["outcomes"]["declined"] is None
    # delivered 13, withdrawn 1, cancelled 1: 13 would give the 2 away.
    assert set(period["by_status"].values()) == {None}
    assert period["by_gemeente"] is None and period["period"] == str(today_nl().year)

    country = await _figures(system, tokens)
    assert country.status_code == 200 and country.json()["gemeente"] is None
    (national,) = country.json()["periods"]
    assert national["by_gemeente"][GEMEENTE] == 15 and national["meldingen"] >= 15
    body = (await _figures(system, tokens, gemeente=GEMEENTE)).json()
    assert body["gemeente"] == {"code": GEMEENTE, "name": NAME} and body["suppression_threshold"] == 10
    assert body["from"] == f"{today_nl().year}-01-01" and body["to"] == f"{today_nl().year}-12-31"

    audit = await system["melding"].get("/v1/audit", headers=admin(tokens), params={"action": "read"})
    assert any(r["resource_type"] == "figures" and r["resource_id"] == GEMEENTE for r in audit.json()["items"])


async def test_figures_need_their_scope_and_sound_parameters(system: Clients, tokens: Tokens) -> None:
    today = str(today_nl())
    no_scope = await system["melding"].get("/v1/figures", headers=sender(tokens), params={"from": today, "to": today})
    assert no_scope.status_code == 403 and no_scope.json()["type"].endswith("forbidden")
    for params in (
        {"from": today},  # no `to`
        {"from": today, "to": "2020-01-01"},  # backwards
        {"from": "2020-01-01", "to": "2031-01-01"},  # more than 120 months
        {"from": "0001-01-01", "to": today, "interval": "year"},
        {"from": today, "to": today, "gemeente": "GM12"},
        {"from": today, "to": today, "gemeente": "GM0363\x00"},
        {"from": today, "to": today, "interval": "week"},
        {"from": "1700000000", "to": today},
    ):
        response = await system["melding"].get("/v1/figures", headers=coordinator(tokens), params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
