"""A recipient acts as the kind of organisation the directory has it as. Found by attack: a token with a thin
JGZ's `org_id` and `org_type: wijkteam` read its delivery. Every route a recipient uses (read from routing's
OpenAPI document: each `delivery:` scope) refuses a token whose `org_type` is not the directory's (403)."""

from __future__ import annotations

import string

import httpx

from tests.e2e.flow import (
    eventually,
    melding_body,
    new_org_id,
    put_gemeente,
    put_organisation,
    recipient,
    record_consent,
    send,
)
from tests.support import Tokens

BODIES = {("post", "/v1/deliveries/{delivery_id}/status"): {"status": "received"}}


async def test_every_recipient_route_refuses_a_token_whose_org_type_is_not_the_directorys(
    system: dict[str, httpx.AsyncClient], tokens: Tokens
) -> None:
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"], delivery_mode="thin")
    consent_id = await record_consent(system, tokens, types=["jgz"])
    assert (await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]))).status_code == 202

    async def delivery() -> str | None:
        page = (await system["routing"].get("/v1/deliveries", headers=recipient(tokens, jgz))).json()
        return page["items"][0]["delivery_id"] if page.get("items") else None

    delivery_id = await eventually(delivery)
    spec = (await system["routing"].get("/openapi.json")).json()
    checked = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if not str(operation.get("x-required-scope", "")).startswith("delivery:"):
                continue
            params = {name for _, name, _, _ in string.Formatter().parse(path) if name}
            url = path.format(**{"delivery_id": delivery_id} if params else {})
            body = BODIES.get((method, path))
            posing = await system["routing"].request(
                method, url, json=body, headers=recipient(tokens, jgz, org_type="wijkteam")
            )
            assert posing.status_code == 403, f"{method.upper()} {path} as a wijkteam: {posing.status_code}"
            assert posing.headers["content-type"].startswith("application/problem+json")
            assert "patient" not in posing.text
            own = await system["routing"].request(method, url, json=body, headers=recipient(tokens, jgz))
            assert own.status_code == 200, f"{method.upper()} {path} as itself: {own.status_code} {own.text}"
            checked.append(f"{method} {path}")
    assert len(checked) >= 5, checked  # list, queue, messages, one delivery, its status
