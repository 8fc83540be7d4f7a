"""Route maps and consent scope end to end (contract v1.1: "Consent scope and evidence", "Route maps"):
each recipient receives only its share, in its queue message, its API and routing's stored copy."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aio_pika
import httpx
import pytest
from sqlalchemy import select

from services.routing.adapters.orm import deliveries
from shared.clock import today_nl
from tests.e2e.flow import (
    RecipientQueue,
    admin,
    body_of,
    eventually,
    melding_body,
    melding_status,
    new_org_id,
    put_gemeente,
    put_organisation,
    recipient,
    record_consent,
    send,
    sender,
    status_is,
)
from tests.support import RunEnvironment, Tokens

Clients = dict[str, httpx.AsyncClient]
SOCIAL = ["huiselijk-geweld", "financien-schulden", "huisvesting", "sociaal-netwerk"]
NOTE = "Cliënte gebruikt methadon; schulden bij meerdere schuldeisers."


def route_map(
    effective_from: str | None = None, wijkteam: list[str] | str = SOCIAL, note: bool = False
) -> dict[str, Any]:
    return {
        "effective_from": effective_from or (today_nl() - timedelta(days=30)).isoformat(),
        "recipients": {
            "jgz": {"risk_domains": "all", "note": True},
            "wijkteam": {"risk_domains": wijkteam, "note": note},
        },
        "contact_deadline": {"regular": "P10D", "urgent": "P1D"},
    }


@pytest.fixture
async def coalition(system: Clients, tokens: Tokens) -> dict[str, str]:
    """Amsterdam with a JGZ and a wijkteam, and a route map giving the wijkteam the social domains, no note."""
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    orgs = {"jgz": new_org_id(), "wijkteam": f"wijkteam-{new_org_id()}"}
    await put_organisation(system, tokens, orgs["jgz"], "jgz", gemeenten=["GM0363"])
    await put_organisation(system, tokens, orgs["wijkteam"], "wijkteam", gemeenten=["GM0363"])
    put = await system["routing"].put("/v1/gemeenten/GM0363/route-map", headers=admin(tokens), json=route_map())
    assert put.status_code == 201, put.text
    return orgs


async def _delivered_to(system: Clients, tokens: Tokens, melding_id: str, count: int) -> dict[str, Any]:
    async def routed() -> dict[str, Any] | None:
        view = await melding_status(system, tokens, melding_id)
        return view if len(view["deliveries"]) == count else None

    return await eventually(routed)


async def test_each_recipient_receives_only_what_the_route_map_gives_it(
    system: Clients,
    tokens: Tokens,
    coalition: dict[str, str],
    amqp: aio_pika.abc.AbstractChannel,
    environment: RunEnvironment,
    stack_databases: dict[str, str],
) -> None:
    consent_id = await record_consent(system, tokens)
    sent = await send(system, tokens, melding_body(consent_id))
    assert sent.status_code == 202, sent.text
    view = await _delivered_to(system, tokens, sent.json()["id"], 2)
    shares = {d["recipient_type"]: d["risk_domains"] for d in view["deliveries"]}
    assert shares == {"jgz": ["verslaving", "financien-schulden"], "wijkteam": ["financien-schulden"]}

    jgz = body_of(await RecipientQueue(amqp, coalition["jgz"]).next())
    wijkteam = body_of(await RecipientQueue(amqp, coalition["wijkteam"]).next())
    assert (jgz["risk_domains"], jgz["note"]) == (["verslaving", "financien-schulden"], NOTE)
    assert (wijkteam["risk_domains"], wijkteam["note"]) == (["financien-schulden"], None)
    assert "verslaving" not in str(wijkteam) and "methadon" not in str(wijkteam)

    fetched = await system["routing"].get(
        f"/v1/deliveries/{wijkteam['delivery_id']}", headers=recipient(tokens, coalition["wijkteam"], "wijkteam")
    )
    assert fetched.json()["risk_domains"] == ["financien-schulden"] and fetched.json()["note"] is None
    database = environment.database(stack_databases["routing"])  # routing's own copy never held more
    try:
        async with database.unit_of_work() as uow:
            stored = (
                await uow.session.execute(
                    select(deliveries.c.message).where(deliveries.c.delivery_id == wijkteam["delivery_id"])
                )
            ).scalar_one()
    finally:
        await database.dispose()
    assert "verslaving" not in stored and "methadon" not in stored


async def test_a_type_the_route_map_excludes_is_skipped_and_the_jgz_still_gets_it(
    system: Clients, tokens: Tokens, coalition: dict[str, str]
) -> None:
    consent_id = await record_consent(system, tokens)
    sent = await send(system, tokens, melding_body(consent_id, risk_domains=["verslaving", "psychiatrie"]))
    view = await _delivered_to(system, tokens, sent.json()["id"], 1)
    assert view["status"] == "delivered" and view["deliveries"][0]["recipient_type"] == "jgz"
    assert view["skipped_types"] == [{"recipient_type": "wijkteam", "reason": "route-map"}]
    assert view["unroutable_types"] == []


async def test_a_melding_every_type_of_which_is_skipped_is_not_delivered(
    system: Clients, tokens: Tokens, coalition: dict[str, str]
) -> None:
    consent_id = await record_consent(system, tokens)
    body = melding_body(consent_id, risk_domains=["psychiatrie"], recipient_types=["wijkteam"])
    melding_id = (await send(system, tokens, body)).json()["id"]

    async def not_delivered() -> dict[str, Any] | None:
        view = await melding_status(system, tokens, melding_id)
        return view if view["status"] == "not_delivered" else None

    view = await eventually(not_delivered)
    assert view["not_delivered_reason"] == "route-map" and view["deliveries"] == []
    assert view["skipped_types"] == [{"recipient_type": "wijkteam", "reason": "route-map"}]


async def test_a_scheduled_route_map_version_does_not_apply_before_its_day(
    system: Clients, tokens: Tokens, coalition: dict[str, str]
) -> None:
    tomorrow = (today_nl() + timedelta(days=1)).isoformat()
    later = route_map(tomorrow, wijkteam="all", note=True)
    assert (
        await system["routing"].put("/v1/gemeenten/GM0363/route-map", headers=admin(tokens), json=later)
    ).status_code == 200
    maps = (await system["routing"].get("/v1/gemeenten/GM0363/route-map", headers=admin(tokens))).json()
    assert [v["effective_from"] for v in maps["versions"]] == [route_map()["effective_from"], tomorrow]
    assert maps["current"]["recipients"]["wijkteam"] == {"risk_domains": sorted(SOCIAL), "note": False}
    assert maps["current"]["contact_deadline"] == {"regular": "P10D", "urgent": "P1D"}

    consent_id = await record_consent(system, tokens)
    view = await _delivered_to(system, tokens, (await send(system, tokens, melding_body(consent_id))).json()["id"], 2)
    wijkteam = next(d for d in view["deliveries"] if d["recipient_type"] == "wijkteam")
    assert wijkteam["risk_domains"] == ["financien-schulden"]  # today's version, not tomorrow's "all"


async def test_the_route_preview_shows_each_share_or_the_skip(
    system: Clients, tokens: Tokens, coalition: dict[str, str]
) -> None:
    preview = await system["routing"].get(
        "/v1/route", params={"postcode": "1011AB", "risk_domains": "verslaving,huisvesting"}, headers=admin(tokens)
    )
    assert preview.status_code == 200, preview.text
    recipients = preview.json()["recipients"]
    assert recipients["jgz"]["risk_domains"] == ["verslaving", "huisvesting"] and recipients["jgz"]["note"] is True
    assert recipients["wijkteam"]["risk_domains"] == ["huisvesting"] and recipients["wijkteam"]["note"] is False
    assert recipients["wijkteam"]["contact_deadline"] == {"regular": "P10D", "urgent": "P1D"}
    medical = await system["routing"].get(
        "/v1/route", params={"postcode": "1011AB", "risk_domains": "psychiatrie"}, headers=admin(tokens)
    )
    assert medical.json()["recipients"]["wijkteam"] == {
        "org_id": None,
        "name": None,
        "risk_domains": None,
        "note": None,
        "contact_deadline": None,
        "skipped": "route-map",
    }
    unknown = await system["routing"].get(
        "/v1/route", params={"postcode": "1011AB", "risk_domains": "verslaving,astrologie"}, headers=admin(tokens)
    )
    assert unknown.status_code == 422


@pytest.mark.parametrize(
    "bad",
    [
        {"recipients": {"jgz": {"risk_domains": []}}},
        {"recipients": {"jgz": {"risk_domains": ["astrologie"]}}},
        {"recipients": {"jgz": {"risk_domains": ["lvb", "lvb"]}}},
        {"recipients": {"huisarts": {"risk_domains": "all"}}},
        {"recipients": {"jgz": {"risk_domains": "all"}}, "contact_deadline": {"regular": "P0D"}},
        {"recipients": {"jgz": {"risk_domains": "all"}}, "contact_deadline": {"regular": "P1M"}},
        {"recipients": {"jgz": {"risk_domains": "all"}}, "contact_deadline": {"urgent": "2 days"}},
    ],
)
async def test_a_bad_route_map_is_422_and_nothing_is_stored(
    system: Clients, tokens: Tokens, coalition: dict[str, str], bad: dict[str, Any]
) -> None:
    body = {"effective_from": "2030-01-01", **bad}
    response = await system["routing"].put("/v1/gemeenten/GM0363/route-map", headers=admin(tokens), json=body)
    assert response.status_code == 422, response.text
    maps = (await system["routing"].get("/v1/gemeenten/GM0363/route-map", headers=admin(tokens))).json()
    assert len(maps["versions"]) == 1


async def test_a_route_map_for_an_unknown_gemeente_is_404(system: Clients, tokens: Tokens) -> None:
    response = await system["routing"].put("/v1/gemeenten/GM9999/route-map", headers=admin(tokens), json=route_map())
    assert response.status_code == 404


async def test_consent_scoped_to_one_domain_refuses_a_melding_with_two(system: Clients, tokens: Tokens) -> None:
    consent_id = await record_consent(
        system, tokens, risk_domains=["financien-schulden"], informed_about=["purpose", "recipients", "phb"]
    )
    consent = (await system["consent"].get(f"/v1/consents/{consent_id}", headers=sender(tokens))).json()
    assert consent["risk_domains"] == ["financien-schulden"]
    assert consent["informed_about"] == ["phb", "purpose", "recipients"]
    refused = await send(system, tokens, melding_body(consent_id))
    assert refused.status_code == 403 and refused.json()["type"].endswith("consent-required")
    assert "risk domain" in refused.json()["detail"]
    page = (await system["melding"].get("/v1/meldingen", headers=sender(tokens))).json()
    assert page["items"] == []  # nothing stored
    allowed = await send(system, tokens, melding_body(consent_id, risk_domains=["financien-schulden"]))
    assert allowed.status_code == 202, allowed.text
    assert allowed.json()["risk_domains"] == ["financien-schulden"]


async def test_the_consent_travels_with_the_delivery_so_the_recipient_knows_what_she_was_told(
    system: Clients, tokens: Tokens, coalition: dict[str, str], amqp: aio_pika.abc.AbstractChannel
) -> None:
    consent_id = await record_consent(system, tokens, types=["jgz"], informed_about=["purpose", "phb"])
    await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]))
    message = body_of(await RecipientQueue(amqp, coalition["jgz"]).next())
    assert message["consent"]["informed_about"] == ["phb", "purpose"] and message["consent"]["risk_domains"] is None


async def test_a_consent_that_expired_while_the_melding_waited_is_not_delivered(
    system: Clients, tokens: Tokens, environment: RunEnvironment, stack_databases: dict[str, str]
) -> None:
    """The melding waits for a recipient; meanwhile its consent runs out (its last day is moved into the past
    here, as time would); when the directory covers it, routing asks the consent service again: not delivered."""
    from sqlalchemy import update

    from services.consent.adapters.orm import consents

    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    consent_id = await record_consent(system, tokens, types=["jgz"])
    melding_id = (await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]))).json()["id"]

    async def waiting() -> bool:
        return await status_is(system, tokens, melding_id, "unroutable")

    await eventually(waiting)
    database = environment.database(stack_databases["consent"])
    try:
        async with database.unit_of_work() as uow:
            yesterday = today_nl() - timedelta(days=1)
            await uow.session.execute(
                update(consents).where(consents.c.id == consent_id).values(valid_until=yesterday, given_at=yesterday)
            )
            await uow.commit()
    finally:
        await database.dispose()
    await put_organisation(system, tokens, new_org_id(), "jgz", gemeenten=["GM0363"])

    async def not_delivered() -> dict[str, Any] | None:
        view = await melding_status(system, tokens, melding_id)
        return view if view["status"] == "not_delivered" else None

    view = await eventually(not_delivered, timeout=30)
    assert view["not_delivered_reason"] == "consent-expired" and view["deliveries"] == []
