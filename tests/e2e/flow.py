"""Helpers for the end-to-end tests of the melding flow: a directory, a consent, a melding, a recipient."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import aio_pika
import httpx
import jsonschema_rs

from services.routing.api.asyncapi import MESSAGES, asyncapi_document
from shared.clock import today_nl
from shared.identifiers import sample_bsns

# The samples live in tests/samples.py (unit tests use them too); the end-to-end tests find them here as before.
from tests.samples import BSN as BSN
from tests.samples import SENDER as SENDER
from tests.samples import melding_body as melding_body
from tests.support import Tokens

T = TypeVar("T")


def new_org_id() -> str:
    return str(uuid.uuid4().int)[:8]


def org_type_for(scope: str) -> str:
    """The kind of organisation a route's scope is meant for (recipients, operators, services, senders)."""
    if scope.startswith("delivery:"):
        return "jgz"
    if scope in ("routing:admin", "audit:read"):
        return "operator"
    if scope == "consent:check":
        return "service"
    if scope == "patient:self":
        return "patient"
    return "verloskundige"


def admin(tokens: Tokens) -> dict[str, str]:
    return tokens.bearer(org_id="ops", org_type="operator", scopes="routing:admin audit:read")


def sender(tokens: Tokens, org_id: str = SENDER) -> dict[str, str]:
    return tokens.bearer(
        org_id=org_id, org_type="verloskundige", scopes="consent:write consent:read melding:write melding:read"
    )


def recipient(tokens: Tokens, org_id: str, org_type: str = "jgz") -> dict[str, str]:
    return tokens.bearer(org_id=org_id, org_type=org_type, scopes="delivery:read delivery:write")


async def put_gemeente(
    system: dict[str, httpx.AsyncClient], tokens: Tokens, code: str, name: str, ranges: list[tuple[str, str]]
) -> None:
    response = await system["routing"].put(
        f"/v1/gemeenten/{code}",
        headers=admin(tokens),
        json={"name": name, "postcode_ranges": [{"from": a, "to": b} for a, b in ranges]},
    )
    assert response.status_code in (200, 201), response.text


async def put_organisation(
    system: dict[str, httpx.AsyncClient],
    tokens: Tokens,
    org_id: str,
    org_type: str,
    *,
    gemeenten: Sequence[str] = (),
    ranges: Sequence[tuple[str, str]] = (),
    name: str = "",
    delivery_mode: str = "full",
) -> dict[str, Any]:
    response = await system["routing"].put(
        f"/v1/organisations/{org_id}",
        headers=admin(tokens),
        json={
            "name": name or f"{org_type.upper()} {org_id}",
            "type": org_type,
            "gemeenten": list(gemeenten),
            "postcode_ranges": [{"from": a, "to": b} for a, b in ranges],
            "active": True,
            "delivery_mode": delivery_mode,
        },
    )
    assert response.status_code in (200, 201), response.text
    organisation: dict[str, Any] = response.json()
    return organisation


async def record_consent(
    system: dict[str, httpx.AsyncClient],
    tokens: Tokens,
    *,
    org_id: str = SENDER,
    bsn: str = BSN,
    types: list[str] | None = None,
    **scope: Any,
) -> str:
    response = await system["consent"].post(
        "/v1/consents",
        headers=sender(tokens, org_id),
        json={
            "patient": {"bsn": bsn},
            "recipient_types": types or ["jgz", "wijkteam"],
            "method": "verbal",
            "given_at": (today_nl() - timedelta(days=2)).isoformat(),
            **scope,
        },
    )
    assert response.status_code == 201, response.text
    consent_id: str = response.json()["id"]
    return consent_id


_OTHER_PATIENTS = iter(sample_bsns(5000, seed=uuid.uuid4().int % 2**32))


async def consented_patient(
    system: dict[str, httpx.AsyncClient], tokens: Tokens, *, types: list[str] | None = None, org_id: str = SENDER
) -> tuple[str, str]:
    """A patient of her own (a fresh BSN) with a consent: one organisation has one open melding per patient
    and recipient type, so a test that sends several meldingen sends them for several patients."""
    bsn = next(_OTHER_PATIENTS)
    return await record_consent(system, tokens, bsn=bsn, types=types, org_id=org_id), bsn


async def send(
    system: dict[str, httpx.AsyncClient],
    tokens: Tokens,
    body: dict[str, Any],
    *,
    key: str | None = None,
    org_id: str = SENDER,
) -> httpx.Response:
    headers = sender(tokens, org_id)
    if key:
        headers["Idempotency-Key"] = key
    return await system["melding"].post("/v1/meldingen", headers=headers, json=body)


async def eventually(probe: Callable[[], Awaitable[T | None]], *, timeout: float = 15.0, interval: float = 0.2) -> T:
    """The probe's first truthy answer within `timeout`; fails with the last answer otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: T | None = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"not within {timeout}s; last answer: {last!r}")


async def melding_status(
    system: dict[str, httpx.AsyncClient], tokens: Tokens, melding_id: str, org_id: str = SENDER
) -> dict[str, Any]:
    response = await system["melding"].get(f"/v1/meldingen/{melding_id}", headers=sender(tokens, org_id))
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def status_is(system: dict[str, httpx.AsyncClient], tokens: Tokens, melding_id: str, status: str) -> bool:
    """Whether the sender sees the melding in `status` now (a probe for `eventually`)."""
    seen: str = (await melding_status(system, tokens, melding_id))["status"]
    return seen == status


class RecipientQueue:
    """An organisation's queue, read the way a recipient's consumer reads it."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel, org_id: str) -> None:
        self.channel, self.org_id = channel, org_id

    async def next(self, timeout: float = 20.0) -> aio_pika.abc.AbstractIncomingMessage:
        queue = await self.channel.get_queue(f"kansrijk.deliveries.{self.org_id}", ensure=False)
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            message = await queue.get(no_ack=False, fail=False, timeout=5)
            if message is not None:
                await message.ack()
                assert_in_asyncapi(message)
                return message
            await asyncio.sleep(0.1)
        raise AssertionError(f"nothing arrived on {self.org_id}'s queue within {timeout}s")

    async def empty(self, wait: float = 1.5) -> bool:
        await asyncio.sleep(wait)
        queue = await self.channel.get_queue(f"kansrijk.deliveries.{self.org_id}", ensure=False)
        return await queue.get(no_ack=True, fail=False, timeout=5) is None


_ASYNCAPI = json.loads(json.dumps(asyncapi_document()))


def assert_in_asyncapi(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    """Every message the end-to-end suite receives is one of the AsyncAPI document's, payload and headers."""
    components = _ASYNCAPI["components"]
    kinds = [model.__name__ for message_type, model, *_ in MESSAGES.values() if message_type == message.type]
    assert kinds, f"{message.type!r} is not in the AsyncAPI document"
    body = json.loads(message.body)
    errors = {
        kind: [
            e.message
            for e in jsonschema_rs.validator_for(
                {"$ref": f"#/components/schemas/{kind}", "components": components}
            ).iter_errors(body)
        ]
        for kind in kinds
    }
    assert any(not found for found in errors.values()), f"{message.type} fits none of its schemas: {errors}"
    headers = {"$ref": "#/components/schemas/MessageHeaders", "components": components}
    assert jsonschema_rs.validator_for(headers).is_valid(dict(message.headers or {}))
    assert message.content_type == "application/json" and message.correlation_id == body["melding_id"]


def body_of(message: aio_pika.abc.AbstractIncomingMessage) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(message.body)
    return body
