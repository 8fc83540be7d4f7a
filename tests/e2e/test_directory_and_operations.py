"""The routing service's directory and operations: overlap rule, route preview, dead letters and replay."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import httpx

from tests.e2e.flow import admin, eventually, new_org_id, put_organisation
from tests.support import Tokens

Clients = dict[str, httpx.AsyncClient]


async def test_gemeenten_and_organisations_are_kept_with_the_overlap_rule(system: Clients, tokens: Tokens) -> None:
    routing, headers = system["routing"], admin(tokens)
    created = await routing.put(
        "/v1/gemeenten/GM0344",
        headers=headers,
        json={"name": "Utrecht", "postcode_ranges": [{"from": "3511", "to": "3585"}]},
    )
    assert created.status_code == 201
    replaced = await routing.put(
        "/v1/gemeenten/GM0344",
        headers=headers,
        json={"name": "Utrecht", "postcode_ranges": [{"from": "3511", "to": "3586"}]},
    )
    assert replaced.status_code == 200 and replaced.json()["postcode_ranges"] == [{"from": "3511", "to": "3586"}]
    clash = await routing.put(
        "/v1/gemeenten/GM0307",
        headers=headers,
        json={"name": "Amersfoort", "postcode_ranges": [{"from": "3580", "to": "3599"}]},
    )
    assert clash.status_code == 409 and clash.json()["type"] == "urn:kansrijk:problem:conflict"
    assert (await routing.get("/v1/gemeenten/GM0344", headers=headers)).json()["name"] == "Utrecht"

    first, second = new_org_id(), new_org_id()
    made = await routing.put(
        f"/v1/organisations/{first}",
        headers=headers,
        json={"name": "JGZ Utrecht", "type": "jgz", "gemeenten": ["GM0344"], "postcode_ranges": [], "active": True},
    )
    assert made.status_code == 201 and made.json()["queue"] == f"kansrijk.deliveries.{first}"
    same_gemeente = await routing.put(
        f"/v1/organisations/{second}",
        headers=headers,
        json={"name": "Other JGZ", "type": "jgz", "gemeenten": ["GM0344"]},
    )
    assert same_gemeente.status_code == 409
    # a wijkteam may serve the same gemeente: the rule is per type
    wijkteam = await routing.put(
        f"/v1/organisations/{second}",
        headers=headers,
        json={"name": "Buurtteam Utrecht", "type": "wijkteam", "gemeenten": ["GM0344"]},
    )
    assert wijkteam.status_code == 201
    ranges_a, ranges_b = new_org_id(), new_org_id()
    await put_organisation(system, tokens, ranges_a, "jgz", ranges=[("3511", "3520")])
    overlapping = await routing.put(
        f"/v1/organisations/{ranges_b}",
        headers=headers,
        json={"name": "x", "type": "jgz", "postcode_ranges": [{"from": "3520", "to": "3530"}]},
    )
    assert overlapping.status_code == 409
    unknown = await routing.put(
        f"/v1/organisations/{ranges_b}", headers=headers, json={"name": "x", "type": "jgz", "gemeenten": ["GM9999"]}
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "gemeenten.0"
    backwards = await routing.put(
        f"/v1/organisations/{ranges_b}",
        headers=headers,
        json={"name": "x", "type": "jgz", "postcode_ranges": [{"from": "3530", "to": "3520"}]},
    )
    assert backwards.status_code == 422

    preview = (await routing.get("/v1/route", headers=headers, params={"postcode": "3512 ab"})).json()
    assert preview["postcode"] == "3512AB"
    assert preview["gemeente"] == {"code": "GM0344", "name": "Utrecht"}
    assert preview["recipients"]["jgz"]["org_id"] == ranges_a  # its range beats the whole gemeente
    assert preview["recipients"]["wijkteam"]["org_id"] == second
    elsewhere = (await routing.get("/v1/route", headers=headers, params={"postcode": "3580AA"})).json()
    assert elsewhere["recipients"]["jgz"]["org_id"] == first

    deactivated = await routing.delete(f"/v1/organisations/{ranges_a}", headers=headers)
    assert deactivated.status_code == 200 and deactivated.json()["active"] is False
    after = (await routing.get("/v1/route", headers=headers, params={"postcode": "3512AB"})).json()
    assert after["recipients"]["jgz"]["org_id"] == first
    listed = (await routing.get("/v1/organisations", headers=headers)).json()["items"]
    assert ranges_a in [o["org_id"] for o in listed]  # history stays
    nowhere = (await routing.get("/v1/route", headers=headers, params={"postcode": "9999ZZ"})).json()
    assert nowhere == {
        "postcode": "9999ZZ",
        "gemeente": None,
        "route_map_effective_from": None,
        "recipients": {"jgz": None, "wijkteam": None},
        "note": None,
    }
    assert (await routing.get("/v1/route", headers=headers, params={"postcode": "0123AB"})).status_code == 422


async def test_the_directory_needs_the_admin_scope(system: Clients, tokens: Tokens) -> None:
    jgz = tokens.bearer(org_id="1", org_type="jgz", scopes="delivery:read delivery:write")
    assert (await system["routing"].get("/v1/gemeenten", headers=jgz)).status_code == 403
    assert (await system["routing"].put("/v1/gemeenten/GM0363", headers=jgz, json={"name": "x"})).status_code == 403
    assert (await system["routing"].get("/v1/gemeenten")).status_code == 401


async def test_a_poison_message_ends_in_the_dead_letters_and_can_be_replayed(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    message_id = f"poison-{uuid.uuid4()}"
    # well-formed JSON that is no delivery.status_changed: decoded once at the consumer's edge, it can never be
    # applied, so it is rejected (dead-lettered) at once rather than retried up to the delivery limit. (A message
    # whose handler fails is retried up to the limit: tests/integration/shared/test_consumer_batch.py.)
    poison = aio_pika.Message(
        json.dumps({"melding_id": "x", "status": "teleported"}).encode(),
        message_id=message_id,
        type="delivery.status_changed",
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
    exchange = await amqp.get_exchange("kansrijk.events", ensure=False)
    await exchange.publish(poison, routing_key="delivery.status_changed")

    async def dead(include_replayed: bool = False) -> list[dict[str, Any]]:
        response = await system["routing"].get(
            "/v1/dead-letters", headers=admin(tokens), params={"include_replayed": str(include_replayed).lower()}
        )
        return [d for d in response.json()["items"] if d["message_id"] == message_id]

    [letter] = await eventually(dead, timeout=30)
    assert letter["queue"] == "kansrijk.melding.events"
    assert letter["message_type"] == "delivery.status_changed"
    assert letter["reason"] == "rejected"

    replayed = await system["routing"].post(f"/v1/dead-letters/{letter['id']}/replay", headers=admin(tokens))
    assert replayed.status_code == 200 and replayed.json()["replayed_at"]
    # back on its queue, refused again, and dead once more: two letters, one replayed
    letters = await eventually(lambda: _two(dead), timeout=30)
    assert sorted(bool(d["replayed_at"]) for d in letters) == [False, True]
    assert (await system["routing"].post("/v1/dead-letters/nope/replay", headers=admin(tokens))).status_code == 404


async def _two(dead: Callable[..., Awaitable[list[dict[str, Any]]]]) -> list[dict[str, Any]] | None:
    letters = await dead(include_replayed=True)
    return letters if len(letters) == 2 else None


async def test_an_unreadable_message_is_dead_lettered_at_once(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    message_id = f"garbage-{uuid.uuid4()}"
    exchange = await amqp.get_exchange("kansrijk.events", ensure=False)
    await exchange.publish(
        aio_pika.Message(b"\x00not json", message_id=message_id, type="melding.accepted"),
        routing_key="melding.accepted",
    )

    async def dead() -> list[dict[str, Any]]:
        response = await system["routing"].get("/v1/dead-letters", headers=admin(tokens))
        return [d for d in response.json()["items"] if d["message_id"] == message_id]

    [letter] = await eventually(dead, timeout=20)
    assert letter["queue"] == "kansrijk.routing.events" and letter["reason"] == "rejected"
    assert letter["body_encoding"] == "base64"
    refused = await system["routing"].post(f"/v1/dead-letters/{letter['id']}/replay", headers=admin(tokens))
    assert refused.status_code == 409


async def test_an_expired_heartbeat_is_not_kept_as_a_dead_letter(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    dead_letters = await amqp.get_exchange("kansrijk.dead-letter", ensure=False)
    beat_id, after_id = f"heartbeat:{uuid.uuid4()}", f"after-{uuid.uuid4()}"
    # As the broker dead-letters a heartbeat whose consumer was down past its expiry, then a real failure.
    await dead_letters.publish(
        aio_pika.Message(b'{"at": "2026-12-07T12:00:00+00:00"}', message_id=beat_id, type="consent.heartbeat"),
        routing_key="consent.heartbeat",
    )
    await dead_letters.publish(aio_pika.Message(b"{}", message_id=after_id, type="melding.accepted"), routing_key="x")

    async def kept() -> set[str] | None:
        response = await system["routing"].get("/v1/dead-letters", headers=admin(tokens))
        ids = {d["message_id"] for d in response.json()["items"]}
        return ids if after_id in ids else None

    assert beat_id not in await eventually(kept, timeout=20)


async def test_cbs_reference_data_routes_a_straddling_postcode_to_the_largest_share_and_says_so(
    system: Clients, tokens: Tokens, stack_databases: dict[str, str]
) -> None:
    from services.routing.service_layer.directory import load_cbs
    from services.routing.service_layer.unit_of_work import unit_of_work_factory
    from shared.db import Database
    from tests.support import CBS_DATA as data

    database = Database(stack_databases["routing"])
    report = await load_cbs(
        unit_of_work_factory(database),
        gemeenten_file=data / "gemeenten.csv",
        postcodes_file=data / "pc4_gemeente.csv",
        edition="2025",
    )
    await database.dispose()
    assert (report.gemeenten, report.postcode_areas, report.straddling) == (342, 4072, 20)
    headers = admin(tokens)
    for postcode, code in (
        ("1011AB", "GM0363"),
        ("3011AA", "GM0599"),
        ("2511AA", "GM0518"),
        ("3511AA", "GM0344"),
        ("5011AA", "GM0855"),
        ("9711AA", "GM0014"),
        ("1381AA", "GM0363"),
        ("3231AA", "GM1992"),
    ):
        preview = (await system["routing"].get("/v1/route", headers=headers, params={"postcode": postcode})).json()
        assert preview["gemeente"]["code"] == code, postcode
        assert preview["note"] is None
    # 1261 (Blaricum) has one address across the border with Laren
    straddling = (await system["routing"].get("/v1/route", headers=headers, params={"postcode": "1261AA"})).json()
    assert straddling["gemeente"]["code"] == "GM0376"
    assert "straddles a gemeente border" in straddling["note"] and "99.98%" in straddling["note"]


async def test_gemeente_codes_are_normalised_and_organisations_are_known_by_ura_or_a_wijkteam_name(
    system: Clients, tokens: Tokens
) -> None:
    routing, headers = system["routing"], admin(tokens)
    created = await routing.put(
        "/v1/gemeenten/gm0599",
        headers=headers,
        json={"name": "Rotterdam", "postcode_ranges": [{"from": "3011", "to": "3089"}]},
    )
    assert created.status_code == 201 and created.json()["code"] == "GM0599"
    assert (await routing.get("/v1/gemeenten/GM0599", headers=headers)).json()["name"] == "Rotterdam"
    ura = new_org_id()
    jgz = await routing.put(
        f"/v1/organisations/{ura}",
        headers=headers,
        json={"name": "CJG Rijnmond", "type": "jgz", "gemeenten": [" gm0599"]},
    )
    assert jgz.status_code == 201 and jgz.json()["gemeenten"] == ["GM0599"]
    wijkteam = await routing.put(
        "/v1/organisations/wijkteam-rotterdam-zuid",
        headers=headers,
        json={"name": "Wijkteam Rotterdam-Zuid", "type": "wijkteam", "gemeenten": ["GM0599"]},
    )
    assert wijkteam.status_code == 201, wijkteam.text
    for org_id, org_type in (
        ("wijkteam-zuid", "jgz"),
        ("1234567", "jgz"),
        ("ggd-rotterdam", "jgz"),
        ("Wijkteam-Zuid", "wijkteam"),
        ("buurtteam-zuid", "wijkteam"),
    ):
        refused = await routing.put(
            f"/v1/organisations/{org_id}", headers=headers, json={"name": "x", "type": org_type, "gemeenten": []}
        )
        assert refused.status_code == 422, (org_id, refused.text)
        assert refused.json()["errors"][0]["field"] == "org_id"
