"""Bad input at the edges every caller reaches: a clear 4xx on SQLite and PostgreSQL alike, never a 5xx.

Each case here answered 500 on PostgreSQL (text holds no NUL, columns have lengths, timestamps need an
offset) or on both databases before the edge validated it (issue: defects found trying to break it).
"""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest

from tests.e2e.flow import admin, melding_body, new_org_id, recipient, record_consent, send, sender
from tests.support import Tokens

Clients = dict[str, httpx.AsyncClient]


def _crafted_cursor(at: str, item_id: object = "x") -> str:
    return base64.urlsafe_b64encode(json.dumps([at, item_id]).encode()).decode().rstrip("=")


def _auditor(tokens: Tokens) -> dict[str, str]:
    return tokens.bearer(org_id="ops", org_type="operator", scopes="audit:read")


@pytest.mark.parametrize("since", ["2026-01-01T00:00:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
async def test_a_naive_or_out_of_range_time_is_422_in_every_audit_query(
    system: Clients, tokens: Tokens, since: str
) -> None:
    for name, client in system.items():
        listed = await client.get("/v1/audit", params={"since": since}, headers=_auditor(tokens))
        assert listed.status_code == 422, (name, listed.text)
        assert listed.json()["errors"][0]["field"] == "since"
        searched = await client.post(
            "/v1/audit/_search", json={"bsn": "999999990", "until": since, "services": [name]}, headers=_auditor(tokens)
        )
        assert searched.status_code == 422, (name, searched.text)


@pytest.mark.parametrize(
    "cursor",
    [
        _crafted_cursor("2026-01-01T00:00:00"),
        _crafted_cursor("0001-01-01T00:00:00+05:00"),
        _crafted_cursor("2026-01-01T00:00:00+00:00", ["x"]),
        _crafted_cursor("2026-01-01T00:00:00+00:00", "x\x00"),
        _crafted_cursor("2026-01-01T00:00:00+00:00", "x" * 65),
        "bm90IGpzb24",
        "%%%",
    ],
)
async def test_a_crafted_cursor_is_422_on_every_paged_list(system: Clients, tokens: Tokens, cursor: str) -> None:
    for client, path, headers in (
        (system["melding"], "/v1/meldingen", sender(tokens)),
        (system["routing"], "/v1/deliveries", recipient(tokens, new_org_id())),
        (system["consent"], "/v1/audit", _auditor(tokens)),
    ):
        response = await client.get(path, params={"cursor": cursor}, headers=headers)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["errors"][0]["field"] == "cursor"


async def test_a_path_id_that_cannot_exist_is_404_on_every_route_that_takes_one(
    system: Clients, tokens: Tokens
) -> None:
    ops, ehr, jgz = admin(tokens), sender(tokens), recipient(tokens, new_org_id())
    for bad in ("x" * 65, "a%00b", "%00", str(uuid.uuid4()) + "0", "999999990"):
        for client, method, path, headers, body in (
            (system["consent"], "GET", f"/v1/consents/{bad}", ehr, None),
            (system["consent"], "POST", f"/v1/consents/{bad}/withdraw", ehr, {}),
            (system["melding"], "GET", f"/v1/meldingen/{bad}", ehr, None),
            (system["routing"], "GET", f"/v1/deliveries/{bad}", jgz, None),
            (system["routing"], "POST", f"/v1/deliveries/{bad}/status", jgz, {"status": "received"}),
            (system["routing"], "POST", f"/v1/unroutable/{bad}/reroute", ops, None),
            (system["routing"], "POST", f"/v1/dead-letters/{bad}/replay", ops, None),
            (system["routing"], "GET", f"/v1/organisations/{bad}", ops, None),
            (system["routing"], "GET", f"/v1/gemeenten/{bad}", ops, None),
        ):
            response = await client.request(method, path, headers=headers, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert "999999990" not in response.text
    # Creating under an ill-formed id is the client's input error
    refused = await system["routing"].put(
        f"/v1/organisations/{'x' * 65}", headers=ops, json={"name": "x", "type": "jgz"}
    )
    assert refused.status_code == 422


async def test_text_with_a_nul_is_422_and_nothing_is_stored(system: Clients, tokens: Tokens) -> None:
    ops, ehr = admin(tokens), sender(tokens)
    consent_id = await record_consent(system, tokens, types=["jgz"])
    cases = [
        (system["consent"], "POST", f"/v1/consents/{consent_id}/withdraw", ehr, {"reason": "verhuisd\x00"}, "reason"),
        (system["routing"], "PUT", "/v1/gemeenten/GM0363", ops, {"name": "Amster\x00dam"}, "name"),
        (
            system["routing"],
            "PUT",
            f"/v1/organisations/{new_org_id()}",
            ops,
            {"name": "JGZ\x00", "type": "jgz"},
            "name",
        ),
        # a lone surrogate, as JSON's escape sends it (PostgreSQL's UTF-8 cannot hold it)
        (
            system["routing"],
            "PUT",
            f"/v1/organisations/{new_org_id()}",
            ops,
            '{"name": "JGZ\\ud800", "type": "jgz"}',
            "name",
        ),
        (
            system["melding"],
            "POST",
            "/v1/meldingen",
            ehr,
            melding_body(consent_id + "\x00", recipient_types=["jgz"]),
            "consent_id",
        ),
        (
            system["melding"],
            "POST",
            "/v1/meldingen",
            ehr,
            melding_body(consent_id, recipient_types=["jgz"], note="methadon\x00"),
            "note",
        ),
    ]
    for client, method, path, headers, body, field in cases:
        if isinstance(body, str):
            response = await client.request(
                method, path, content=body, headers={**headers, "Content-Type": "application/json"}
            )
        else:
            response = await client.request(method, path, headers=headers, json=body)
        assert response.status_code == 422, (path, field, response.text)
        assert response.json()["errors"][0]["field"] == field
    still = await system["consent"].get(f"/v1/consents/{consent_id}", headers=ehr)
    assert still.json()["status"] == "active"
    assert (await system["routing"].get("/v1/organisations", headers=ops)).json()["items"] == []
    assert (await system["melding"].get("/v1/meldingen", headers=ehr)).json()["items"] == []
    nul_query = await system["melding"].get("/v1/meldingen", params={"cursor": "\x00"}, headers=ehr)
    assert nul_query.status_code == 422


async def test_a_melding_whose_consent_id_is_not_an_id_is_422_not_a_503(system: Clients, tokens: Tokens) -> None:
    for consent_id in ("x" * 64, "not-a-uuid", "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e1"):
        response = await send(system, tokens, melding_body(consent_id))
        assert response.status_code == 422, response.text


async def test_an_organisation_naming_a_gemeente_twice_is_422(system: Clients, tokens: Tokens) -> None:
    response = await system["routing"].put(
        f"/v1/organisations/{new_org_id()}",
        headers=admin(tokens),
        json={"name": "GGD Rotterdam-Rijnmond JGZ", "type": "jgz", "gemeenten": ["GM0599", "GM0599"]},
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "gemeenten"
