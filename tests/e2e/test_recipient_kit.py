"""The recipient's kit end to end (contract v1.1, "Recipients: sequence, thin delivery, AsyncAPI"): every
message on a recipient's queue numbered without gaps, the messages fetched again after a number, thin
delivery with the content fetched by token, and the AsyncAPI document served by routing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from aiohttp import web

from tests.e2e.flow import (
    RecipientQueue,
    admin,
    body_of,
    consented_patient,
    melding_body,
    new_org_id,
    put_gemeente,
    put_organisation,
    recipient,
    send,
    sender,
)
from tests.support import RunEnvironment, Tokens, needs_node, ts_example_installed

Clients = dict[str, httpx.AsyncClient]


async def _jgz(system: Clients, tokens: Tokens, delivery_mode: str = "full") -> str:
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"], delivery_mode=delivery_mode)
    return jgz


async def _send(system: Clients, tokens: Tokens) -> tuple[str, str, str]:
    """A melding for a patient of her own: (melding id, consent id, BSN)."""
    consent_id, bsn = await consented_patient(system, tokens, types=["jgz"])
    sent = await send(system, tokens, melding_body(consent_id, bsn=bsn, recipient_types=["jgz"]))
    assert sent.status_code == 202, sent.text
    return str(sent.json()["id"]), consent_id, bsn


async def _messages(system: Clients, tokens: Tokens, org_id: str, **params: str | int) -> httpx.Response:
    return await system["routing"].get("/v1/deliveries/messages", headers=recipient(tokens, org_id), params=params)


async def _built_example() -> Path:
    """examples/recipient-typescript with its packages, compiled."""
    example = ts_example_installed()
    build = await asyncio.to_thread(
        subprocess.run, ["npm", "run", "build"], cwd=example, capture_output=True, text=True, timeout=300
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return example


async def _run_example(
    example: Path, environment: RunEnvironment, routing_url: str, org_id: str, token: str, **settings: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """Run the TypeScript example from sequence 0 until it stops; what it printed, one event a line."""
    env = {
        "PATH": os.environ["PATH"],
        "KANSRIJK_AMQP_URL": environment.amqp_url,
        "KANSRIJK_ROUTING_URL": routing_url,
        "KANSRIJK_ORG_ID": org_id,
        "KANSRIJK_TOKEN": token,
        "KANSRIJK_AFTER_SEQUENCE": "0",
        **settings,
    }
    ran = await asyncio.to_thread(
        subprocess.run, ["node", "dist/consumer.js"], cwd=example, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran, [json.loads(line) for line in ran.stdout.splitlines()]


async def test_every_message_on_a_queue_is_numbered_and_a_gap_is_filled_from_the_messages_endpoint(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    jgz = await _jgz(system, tokens)
    queue = RecipientQueue(amqp, jgz)
    sent = [await _send(system, tokens) for _ in range(3)]
    arrived = [await queue.next() for _ in range(3)]
    assert sorted(body_of(m)["sequence"] for m in arrived) == [1, 2, 3]
    withdrawn_melding, withdrawn_consent, _ = sent[1]
    withdrawal = await system["consent"].post(f"/v1/consents/{withdrawn_consent}/withdraw", headers=sender(tokens))
    assert withdrawal.status_code == 200, withdrawal.text
    retraction = await queue.next()
    assert retraction.type == "melding.retracted" and body_of(retraction)["sequence"] == 4

    # A recipient that missed everything after 1 asks again, and gets the rest in order.
    again = await _messages(system, tokens, jgz, after_sequence=1)
    assert again.status_code == 200, again.text
    items = again.json()["items"]
    assert [(i["type"], i["sequence"]) for i in items] == [
        ("melding.delivered", 2), ("melding.delivered", 3), ("melding.retracted", 4)
    ]  # fmt: skip
    assert again.json()["next"] == 4
    by_melding = {i["melding_id"]: i for i in items if i["type"] == "melding.delivered"}
    # A delivery still held comes with its content; the retracted one only in its thin form.
    live = next(i for m, i in by_melding.items() if m != withdrawn_melding)
    assert live["patient"]["bsn"] == next(bsn for m, _, bsn in sent if m == live["melding_id"])
    gone = by_melding[withdrawn_melding]
    assert "patient" not in gone and gone["href"] == f"/v1/deliveries/{gone['delivery_id']}"
    on_queue = {body_of(m)["delivery_id"]: body_of(m) for m in arrived}
    assert live["message_id"] == live["delivery_id"] and next(i for i in items if i["sequence"] == 4)["message_id"] == (
        f"retract:{gone['delivery_id']}"
    )
    envelope = ("type", "message_id")
    assert {k: v for k, v in live.items() if k not in envelope} == on_queue[live["delivery_id"]]  # as on the queue

    # Nothing more after the last; a page of one says where to go on; nothing of another organisation's.
    assert (await _messages(system, tokens, jgz, after_sequence=4)).json() == {"items": [], "next": 4}
    page = (await _messages(system, tokens, jgz, after_sequence=0, limit=1)).json()
    assert [i["sequence"] for i in page["items"]] == [1] and page["next"] == 1
    assert (await _messages(system, tokens, new_org_id())).json() == {"items": [], "next": 0}
    bad_pages: list[dict[str, str | int]] = [
        {"after_sequence": -1},
        {"after_sequence": 2**31},
        {"after_sequence": "x"},
        {"limit": 0},
    ]
    for bad in bad_pages:
        refused = await _messages(system, tokens, jgz, **bad)
        assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"

    # Reading them again is on the audit record, like reading a delivery.
    reads = (
        await system["routing"].get("/v1/audit", headers=admin(tokens), params={"org_id": jgz, "action": "read"})
    ).json()["items"]
    assert {r["resource_id"] for r in reads} >= {i["delivery_id"] for i in items}


async def test_a_thin_organisation_gets_no_personal_data_on_its_queue_and_fetches_the_delivery_by_token(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    jgz = await _jgz(system, tokens, delivery_mode="thin")
    queue = RecipientQueue(amqp, jgz)
    _, _, bsn = await _send(system, tokens)
    message = await queue.next()
    body = body_of(message)
    assert bsn.encode() not in message.body and "patient" not in body and "note" not in body
    assert (body["gemeente_code"], body["urgency"], body["sequence"]) == ("GM0363", "regular", 1)
    fetched = await system["routing"].get(body["href"], headers=recipient(tokens, jgz))
    assert fetched.status_code == 200 and fetched.json()["patient"]["bsn"] == bsn
    assert (await system["routing"].get(body["href"], headers=recipient(tokens, new_org_id()))).status_code == 404

    # Switching back to full applies to what is routed afterwards.
    organisation = (await system["routing"].get(f"/v1/organisations/{jgz}", headers=admin(tokens))).json()
    assert organisation["delivery_mode"] == "thin"
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"], delivery_mode="full")
    _, _, other = await _send(system, tokens)
    full = body_of(await queue.next())
    assert full["patient"]["bsn"] == other and full["sequence"] == 2


async def test_routing_serves_the_asyncapi_document_of_the_recipients_queue(system: Clients) -> None:
    served = await system["routing"].get("/asyncapi.json")
    assert served.status_code == 200 and served.json()["asyncapi"] == "3.0.0"
    assert set(served.json()["components"]["messages"]) == {
        "meldingDelivered", "meldingDeliveredThin", "meldingRetracted", "meldingReminder"
    }  # fmt: skip


async def test_an_unknown_delivery_mode_is_refused(system: Clients, tokens: Tokens) -> None:
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    refused = await system["routing"].put(
        f"/v1/organisations/{new_org_id()}",
        headers=admin(tokens),
        json={"name": "JGZ", "type": "jgz", "gemeenten": ["GM0363"], "delivery_mode": "email"},
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "delivery_mode"


@needs_node
async def test_the_typescript_example_recipient_keeps_the_contract_against_the_running_system(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, stack: dict[str, str],
    environment: RunEnvironment,
) -> None:  # fmt: skip
    """examples/recipient-typescript, built and run: it fetches thin deliveries, fills a sequence gap from
    the messages endpoint, drops a duplicate, keeps a retraction and reports `received`."""
    example = await _built_example()
    jgz = await _jgz(system, tokens, delivery_mode="thin")
    queue = RecipientQueue(amqp, jgz)
    sent = [await _send(system, tokens) for _ in range(3)]
    taken = {body_of(m)["sequence"]: m for m in [await queue.next() for _ in range(3)]}
    withdrawn_melding, withdrawn_consent, _ = next(s for s in sent if s[0] == body_of(taken[3])["melding_id"])
    withdrawal = await system["consent"].post(f"/v1/consents/{withdrawn_consent}/withdraw", headers=sender(tokens))
    assert withdrawal.status_code == 200, withdrawal.text
    taken[4] = await queue.next()
    # The recipient's queue holds 1, 3 (twice: a redelivery) and 4; it never sees 2.
    for sequence in (1, 3, 3, 4):
        m = taken[sequence]
        again = aio_pika.Message(m.body, message_id=m.message_id, type=m.type, correlation_id=m.correlation_id)
        await amqp.default_exchange.publish(again, routing_key=f"kansrijk.deliveries.{jgz}")

    token = tokens.bearer(org_id=jgz, org_type="jgz", scopes="delivery:read delivery:write")["Authorization"][7:]
    ran, events = await _run_example(example, environment, stack["routing"], jgz, token, KANSRIJK_COUNT="4")
    said = [(e["event"], e.get("sequence")) for e in events if e["event"] != "reported"]
    assert said == [
        ("consuming", None),
        ("delivered", 1),
        ("dropped-retracted", 3),  # its content fetched by href: retracted meanwhile
        ("gap", None),  # after 1, seen up to 3: fetches everything after 1
        ("delivered", 2),  # fetched from GET /v1/deliveries/messages
        ("retracted", 4),  # fetched too
        ("duplicate", None),  # 3 again from the queue
        ("duplicate", None),  # 4 from the queue
        ("stopped", None),
    ], ran.stdout
    assert events[-1]["last_sequence"] == 4 and events[-1]["held"] == 2
    received = {e["delivery_id"] for e in events if e["event"] == "reported"}
    assert received == {body_of(taken[1])["delivery_id"], body_of(taken[2])["delivery_id"]}
    for delivery_id in received:
        got = await system["routing"].get(f"/v1/deliveries/{delivery_id}", headers=recipient(tokens, jgz))
        assert got.json()["status"] == "received"
    assert not any(bsn in ran.stdout for _, _, bsn in sent)  # it printed no personal data
    assert withdrawn_melding  # (its delivery was dropped above, by its retraction)


@contextlib.asynccontextmanager
async def _refusing_once(target: str, path: str) -> AsyncIterator[tuple[str, list[int]]]:
    """An HTTP front for `target` that answers the first request for `path` with 503 and forwards the rest:
    (its URL, the statuses it answered, in order)."""
    answered: list[int] = []
    async with httpx.AsyncClient(base_url=target) as client:

        async def forward(request: web.Request) -> web.Response:
            if request.path == path and 503 not in answered:
                answered.append(503)
                return web.Response(status=503)
            headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
            got = await client.request(request.method, request.path_qs, headers=headers, content=await request.read())
            answered.append(got.status_code)
            return web.Response(status=got.status_code, body=got.content, content_type="application/json")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            yield f"http://{host}:{port}", answered
        finally:
            await runner.cleanup()


@needs_node
async def test_the_typescript_example_fetches_a_gap_again_when_the_fetch_failed_and_no_message_follows(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, stack: dict[str, str],
    environment: RunEnvironment,
) -> None:  # fmt: skip
    """Its gap's fetch is answered 503 and nothing more comes on its queue: a second later it fetches the gap
    again, by itself, and keeps what it missed (a recipient that waits for a next message keeps its gap)."""
    example = await _built_example()
    jgz = await _jgz(system, tokens)
    queue = RecipientQueue(amqp, jgz)
    for _ in range(3):
        await _send(system, tokens)
    taken = {body_of(m)["sequence"]: m for m in [await queue.next() for _ in range(3)]}
    for sequence in (1, 3):  # its queue holds 1 and 3; it never sees 2 there
        m = taken[sequence]
        again = aio_pika.Message(m.body, message_id=m.message_id, type=m.type, correlation_id=m.correlation_id)
        await amqp.default_exchange.publish(again, routing_key=f"kansrijk.deliveries.{jgz}")

    token = tokens.bearer(org_id=jgz, org_type="jgz", scopes="delivery:read delivery:write")["Authorization"][7:]
    async with _refusing_once(stack["routing"], "/v1/deliveries/messages") as (routing_url, answered):
        # It stops 4 s after its last queue message: the retry must come before that.
        ran, events = await _run_example(example, environment, routing_url, jgz, token, KANSRIJK_IDLE_SECONDS="4")
    said = [(e["event"], e.get("sequence")) for e in events if e["event"] != "reported"]
    assert said == [
        ("consuming", None),
        ("delivered", 1),
        ("delivered", 3),
        ("gap", None),  # answered 503
        ("gap", None),  # by itself, a second later: no message came to retry it
        ("delivered", 2),
        ("stopped", None),
    ], ran.stdout
    assert 503 in answered and events[-1]["last_sequence"] == 3 and events[-1]["held"] == 3
