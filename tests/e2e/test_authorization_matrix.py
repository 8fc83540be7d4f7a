"""Authorisation that cannot be forgotten: every /v1/ route of every service, read from its own OpenAPI
document, refuses a request without a token (401), with a token lacking the route's scope (403), with the
scope in a token of an org_type that may not hold it (403) and, for a route addressing an organisation's
own resource, a token of another organisation (404). The woman's own routes (`patient:self`, her own view)
are in it too: a patient token of another woman is answered 404 for her consent.

A route added without its `require_scope` dependency has no `x-required-scope` and answers without a
token: this test fails for it.
"""

from __future__ import annotations

import hashlib
import json
import string
import uuid
from typing import Any

import httpx

from shared.auth import ORG_TYPES, SCOPE_HOLDERS, SCOPES
from tests.e2e.flow import (
    SENDER,
    eventually,
    melding_body,
    new_org_id,
    org_type_for,
    put_gemeente,
    put_organisation,
    recipient,
    record_consent,
    send,
)
from tests.support import Tokens

# Path parameters naming a resource that belongs to one organisation, and the kind of organisation owning it.
OWNED = {"consent_id": "verloskundige", "melding_id": "verloskundige", "delivery_id": "jgz"}
# What an otherwise valid request sends, so that the answer is about who asks, not about the body.
VALID_BODIES = {
    ("post", "/v1/deliveries/{delivery_id}/status"): {"status": "received"},
    ("post", "/v1/meldingen/{melding_id}/cancel"): {"reason": "sent-in-error"},
}


async def _resources_of_one_organisation(system: dict[str, httpx.AsyncClient], tokens: Tokens) -> dict[str, str]:
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"])
    consent_id = await record_consent(system, tokens, types=["jgz"])
    sent = await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]))
    assert sent.status_code == 202, sent.text

    async def delivery() -> str | None:
        page = (await system["routing"].get("/v1/deliveries", headers=recipient(tokens, jgz))).json()
        return page["items"][0]["delivery_id"] if page.get("items") else None

    return {
        "consent_id": consent_id,
        "melding_id": sent.json()["id"],
        "delivery_id": await eventually(delivery),
        "code": "GM0363",
        "org_id": jgz,
        "dead_letter_id": str(uuid.uuid4()),
    }


async def test_every_route_needs_a_token_its_scope_and_the_callers_own_resource(
    system: dict[str, httpx.AsyncClient], tokens: Tokens
) -> None:
    ids = await _resources_of_one_organisation(system, tokens)
    checked: list[str] = []
    for service, client in system.items():
        spec = (await client.get("/openapi.json")).json()
        for path, item in spec["paths"].items():
            if not path.startswith("/v1/"):
                continue
            for method, operation in item.items():
                where = f"{service}: {method.upper()} {path}"
                scope = operation.get("x-required-scope")
                assert scope, f"{where} has no scope dependency (require_scope): anyone could call it"
                params = {name for _, name, _, _ in string.Formatter().parse(path) if name}
                url = path.format(**{name: ids[name] for name in params})
                body = VALID_BODIES.get((method, path))

                anonymous = await client.request(method, url, json=body)
                assert anonymous.status_code == 401, f"{where} without a token: {anonymous.status_code}"

                org_type = org_type_for(scope)
                owner = SENDER if org_type == "verloskundige" else ids["org_id"] if org_type == "jgz" else "ops"
                others = " ".join(s for s in SCOPES if s not in scope.split())
                lacking = await client.request(method, url, json=body, headers=_bearer(tokens, owner, org_type, others))
                assert lacking.status_code == 403, f"{where} without {scope}: {lacking.status_code}"

                # The scope in a token of an org_type that may not hold it: refused just the same.
                for wrong_type in sorted(ORG_TYPES - set(SCOPE_HOLDERS[scope])):
                    wrong = await client.request(
                        method, url, json=body, headers=_bearer(tokens, owner, wrong_type, scope)
                    )
                    assert wrong.status_code == 403, f"{where} by a {wrong_type} token: {wrong.status_code}"

                owned = params & OWNED.keys()
                if owned and scope == "patient:self":  # her consent, asked for by another woman
                    stranger = _bearer(tokens, "patient", "patient", scope)
                    foreign = await client.request(method, url, json=body, headers=stranger)
                    assert foreign.status_code == 404, f"{where} by another woman: {foreign.status_code}"
                elif owned and scope != "routing:admin":
                    stranger = tokens.bearer(org_id=new_org_id(), org_type=OWNED[owned.pop()], scopes=scope)
                    foreign = await client.request(method, url, json=body, headers=stranger)
                    assert foreign.status_code == 404, f"{where} by another organisation: {foreign.status_code}"
                checked.append(where)
    # Every service's routes were seen, the owned-resource routes among them.
    assert {w.split(":")[0] for w in checked} == set(system)
    assert any("{delivery_id}" in w for w in checked) and any("{melding_id}" in w for w in checked)
    assert {w for w in checked if "/v1/self/" in w} >= {
        "consent: GET /v1/self/consents", "consent: POST /v1/self/consents/{consent_id}/withdraw",
        "melding: GET /v1/self/meldingen", "consent: GET /v1/self/audit", "melding: GET /v1/self/audit",
        "routing: GET /v1/self/audit",
    }  # fmt: skip


def _bearer(tokens: Tokens, org_id: str, org_type: str, scopes: str) -> dict[str, str]:
    """A token of `org_type`; a patient token names a woman (not the test's) by a keyed hash, as the portal's do."""
    if org_type == "patient":
        ref = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
        return tokens.bearer(org_id="patient", org_type="patient", scopes=scopes, sub=ref)
    return tokens.bearer(org_id=org_id, org_type=org_type, scopes=scopes)


# The FHIR facade's interactions and the scope the v1 API it calls requires (docs/fhir.md): the facade passes
# the caller's token on, so the same refusals hold at /fhir as at /v1.
FHIR_ROUTES = {
    ("post", "/fhir/Consent"): "consent:write",
    ("get", "/fhir/Consent/{consent_id}"): "consent:read",
    ("get", "/fhir/Consent/{consent_id}/_history/{version_id}"): "consent:read",
    ("put", "/fhir/Consent/{consent_id}"): "consent:write",
    ("post", "/fhir/Consent/_search"): "consent:read",
    ("post", "/fhir"): "melding:write",
    ("get", "/fhir/Task/{task_id}"): "melding:read",
    ("get", "/fhir/Task/{task_id}/_history/{version_id}"): "melding:read",
    ("get", "/fhir/ServiceRequest/{service_request_id}"): "melding:read",
    ("get", "/fhir/ServiceRequest/{service_request_id}/_history/{version_id}"): "melding:read",
    ("get", "/fhir/Task"): "melding:read",
    ("post", "/fhir/Task/{task_id}/$cancel"): "melding:write",
    ("post", "/fhir/Subscription"): "melding:read",  # the facade's own: it checks the token itself
    ("get", "/fhir/Subscription/{subscription_id}"): "melding:read",
    ("get", "/fhir/Subscription/{subscription_id}/$status"): "melding:read",
    ("delete", "/fhir/Subscription/{subscription_id}"): "melding:read",
}
PUBLIC_FHIR = {("get", "/fhir/metadata"), ("get", "/fhir/Consent")}  # the capabilities; a refusal (400) for all


def _fhir_request(method: str, path: str, consent_id: str) -> dict[str, Any]:
    """What a valid request to a FHIR route sends, so that the answer is about who asks."""
    from tests.fhir_examples import FHIR_JSON, consent_example, example, melding_bundle

    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("post", "/fhir/Consent"): consent_example(),
        ("put", "/fhir/Consent/{consent_id}"): {**consent_example(), "status": "inactive"},
        ("post", "/fhir"): melding_bundle(consent_id),
        ("post", "/fhir/Task/{task_id}/$cancel"): example("cancel"),
        ("post", "/fhir/Subscription"): _subscription(),
    }
    if (method, path) == ("post", "/fhir/Consent/_search"):
        return {
            "content": "patient:identifier=http://fhir.nl/fhir/NamingSystem/bsn|999999990",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        }
    if (method, path) in bodies:
        return {"json": bodies[(method, path)], "headers": {"Content-Type": FHIR_JSON}}
    return {"headers": {}}


async def test_every_fhir_interaction_needs_a_token_the_v1_scope_and_the_callers_own_resource(
    system: dict[str, httpx.AsyncClient], tokens: Tokens
) -> None:
    ids = await _resources_of_one_organisation(system, tokens)
    ids["task_id"] = ids["service_request_id"] = ids["melding_id"]  # a melding's Task and ServiceRequest: its id
    ids["version_id"] = "0" * 16  # refused or not found before any version is compared
    client = system["fhir"]
    made = await client.post(
        "/fhir/Subscription",
        content=json.dumps(_subscription()),
        headers={**_sender_token(tokens), "Content-Type": "application/fhir+json"},
    )
    assert made.status_code == 201, made.text
    ids["subscription_id"] = made.json()["id"]
    spec = (await client.get("/openapi.json")).json()
    served = {(m, p) for p, item in spec["paths"].items() if p.startswith("/fhir") for m in item}
    assert served == set(FHIR_ROUTES) | PUBLIC_FHIR, "a FHIR route this matrix does not know"
    for (method, path), scope in FHIR_ROUTES.items():
        where = f"fhir: {method.upper()} {path}"
        params = {name for _, name, _, _ in string.Formatter().parse(path) if name}
        url = path.format(**{name: ids[name] for name in params})
        request = _fhir_request(method, path, ids["consent_id"])

        async def call(extra: dict[str, str]) -> httpx.Response:
            return await _fhir_call(client, method, url, request, extra)  # noqa: B023 - called in this iteration

        anonymous = await call({})
        assert anonymous.status_code == 401, f"{where} without a token: {anonymous.status_code}"
        assert anonymous.json()["resourceType"] == "OperationOutcome"
        others = " ".join(s for s in SCOPES if s not in scope.split())
        lacking = await call(tokens.bearer(org_id=SENDER, org_type="verloskundige", scopes=others))
        assert lacking.status_code == 403, f"{where} without {scope}: {lacking.status_code}"
        for wrong_type in sorted(ORG_TYPES - set(SCOPE_HOLDERS[scope])):
            wrong = await call(tokens.bearer(org_id=SENDER, org_type=wrong_type, scopes=scope))
            assert wrong.status_code == 403, f"{where} by a {wrong_type} token: {wrong.status_code}"
        if params & {"consent_id", "task_id", "service_request_id", "subscription_id"}:
            stranger = await call(tokens.bearer(org_id=new_org_id(), org_type="verloskundige", scopes=scope))
            assert stranger.status_code == 404, f"{where} by another organisation: {stranger.status_code}"
    # nothing above changed the organisation's own consent and melding
    still = await system["consent"].get(f"/v1/consents/{ids['consent_id']}", headers=_sender_token(tokens))
    assert still.json()["status"] == "active"


async def _fhir_call(
    client: httpx.AsyncClient, method: str, url: str, request: dict[str, Any], extra: dict[str, str]
) -> httpx.Response:
    return await client.request(
        method, url, headers={**request["headers"], **extra}, content=request.get("content"), json=request.get("json")
    )


def _subscription() -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "matrix",
        "criteria": f"Task?requester=http://fhir.nl/fhir/NamingSystem/ura|{SENDER}",
        "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/notify"},
    }


def _sender_token(tokens: Tokens) -> dict[str, str]:
    from tests.e2e.flow import sender

    return sender(tokens)
