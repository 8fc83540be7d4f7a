"""Routing and the consent service: a melding that waited asks it again (and waits for it if it is away);
one routed right after intake goes by routing's own record of withdrawals, validity and scope."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import aio_pika
import httpx
from sqlalchemy import select

from services.consent.domain.model import Consent
from services.consent.service_layer.unit_of_work import ConsentUnitOfWork
from services.routing.adapters.orm import consent_states
from services.routing.service_layer.unit_of_work import RoutingUnitOfWork
from shared import migrations
from shared.clock import now, today_nl
from tests.conftest import service_settings
from tests.e2e.flow import BSN, SENDER, admin, eventually, melding_body
from tests.support import RunEnvironment, Tokens, _free_port, create_database, drop_database, running, scratch_vhost
from tools.stack import run_stack


@dataclass
class Routing:
    """The routing service running without its consent service, and what a test needs around it."""

    environment: RunEnvironment
    tokens: Tokens
    urls: dict[str, str]
    amqp_url: str
    consent_port: int  # where routing looks for the consent service
    consent: Consent  # recorded in the consent service's database
    channel: aio_pika.abc.AbstractChannel
    queue: aio_pika.abc.AbstractQueue | None = None  # the JGZ's

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[httpx.AsyncClient]:
        """The routing service with its workers; no dead letters when it stops."""
        from services.routing.main import create_app as create_routing

        app = create_routing(
            service_settings(
                self.environment,
                "routing",
                self.urls["routing"],
                amqp_url=self.amqp_url,
                consent_url=f"http://127.0.0.1:{self.consent_port}",
                consent_timeout_seconds=1,
            )
        )
        async with (
            running(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://routing") as client,
        ):
            yield client
            dead = (await client.get("/v1/dead-letters", headers=admin(self.tokens))).json()["items"]
            assert dead == [], "a message was dead-lettered"

    async def publish(self, routing_key: str, body: dict[str, Any], message_id: str) -> None:
        exchange = await self.channel.get_exchange("kansrijk.events", ensure=False)
        await exchange.publish(
            aio_pika.Message(json.dumps(body).encode(), message_id=message_id, type=routing_key, delivery_mode=2),
            routing_key=routing_key,
        )

    async def accept(self, *, consent_id: str, accepted_at: datetime, valid_until: date | None = None) -> str:
        """Publish a `melding.accepted` as the melding service does after its intake check."""
        melding_id = str(uuid.uuid4())
        body = melding_body(consent_id, recipient_types=["jgz"])
        await self.publish(
            "melding.accepted",
            {
                "melding_id": melding_id,
                "accepted_at": accepted_at.isoformat(),
                "sender": {"org_id": SENDER, "org_type": "verloskundige", "sub": "u"},
                "consent": {
                    "id": consent_id,
                    "recipient_types": ["jgz"],
                    "valid_until": (valid_until or self.consent.valid_until).isoformat(),
                },
                "content": {k: v for k, v in body.items() if k != "consent_id"},
            },
            f"accepted:{melding_id}",
        )
        return melding_id

    async def delivered(self, timeout: float = 30.0) -> str | None:
        """The melding id of the next delivery on the JGZ's queue, or None if none comes within `timeout`."""
        assert self.queue is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            message = await self.queue.get(fail=False, timeout=5)
            if message is not None:
                await message.ack()
                return str(json.loads(message.body)["melding_id"])
            await asyncio.sleep(0.2)
        return None

    async def status(self, melding_id: str) -> str | None:
        database = self.environment.database(self.urls["routing"])
        try:
            async with RoutingUnitOfWork(database) as uow:
                melding = await uow.routing.melding(melding_id)
                return melding.status.value if melding else None
        finally:
            await database.dispose()

    async def knows_withdrawal(self, consent_id: str) -> bool:
        database = self.environment.database(self.urls["routing"])
        try:
            async with database.unit_of_work() as uow:
                found = await uow.session.execute(
                    select(consent_states.c.withdrawn_at).where(consent_states.c.consent_id == consent_id)
                )
                return (found.scalar_one_or_none()) is not None
        finally:
            await database.dispose()


@asynccontextmanager
async def routing_without_consent(environment: RunEnvironment, tokens: Tokens, tag: str) -> AsyncIterator[Routing]:
    """Routing's and the consent service's databases and a vhost; the directory has one JGZ for Amsterdam.
    Routing itself runs within `Routing.serving()`; the consent service is not running."""
    urls = {n: await create_database(environment, n, suffix=f"_{tag}") for n in ("consent", "routing")}
    try:
        for name, url in urls.items():
            await asyncio.to_thread(migrations.upgrade, name, url)
        consent = Consent.record(
            bsn=BSN,
            recipient_types=["jgz"],
            purpose="kansrijke-start-melding",
            method="verbal",
            given_at=today_nl(),
            valid_until=None,
            org_id=SENDER,
            org_type="verloskundige",
            sub="u",
            today=today_nl(),
            now=now(),
        )
        consent_db = environment.database(urls["consent"])
        async with ConsentUnitOfWork(consent_db) as uow:
            await uow.consents.add(consent)
            await uow.commit()
        await consent_db.dispose()

        async with scratch_vhost(environment, tag) as amqp_url:
            connection = await aio_pika.connect_robust(amqp_url)
            try:
                channel = await connection.channel()
                routing = Routing(environment, tokens, urls, amqp_url, _free_port(), consent, channel)
                async with routing.serving() as client:
                    headers = admin(tokens)
                    await client.put(
                        "/v1/gemeenten/GM0363",
                        headers=headers,
                        json={"name": "Amsterdam", "postcode_ranges": [{"from": "1011", "to": "1109"}]},
                    )
                    org_id = str(uuid.uuid4().int)[:8]  # a URA
                    created = await client.put(
                        f"/v1/organisations/{org_id}",
                        headers=headers,
                        json={"name": "JGZ", "type": "jgz", "gemeenten": ["GM0363"]},
                    )
                    assert created.status_code == 201
                routing.queue = await channel.get_queue(f"kansrijk.deliveries.{org_id}", ensure=False)
                yield routing
            finally:
                await connection.close()
    finally:
        for url in urls.values():
            await drop_database(environment, url)


async def test_a_melding_that_waited_asks_the_consent_service_and_waits_for_it_instead_of_dead_lettering(
    environment: RunEnvironment, tokens: Tokens
) -> None:
    async with routing_without_consent(environment, tokens, "outage") as routing, routing.serving():
        # Accepted an hour ago (routing was behind): a withdrawal may still be on its way, so routing asks.
        melding_id = await routing.accept(
            consent_id=routing.consent.id, accepted_at=datetime.now(UTC) - timedelta(hours=1)
        )
        await asyncio.sleep(9)  # down longer than five backed-off deliveries would last
        assert await routing.delivered(timeout=1) is None
        assert await routing.status(melding_id) is None  # not routed: waiting on the queue, not dead-lettered

        consent_settings = service_settings(
            environment, "consent", routing.urls["consent"], amqp_url=routing.amqp_url, port=routing.consent_port
        )
        async with run_stack({"consent": consent_settings}, migrate=False):
            assert await routing.delivered() == melding_id, "not delivered after the consent service came back"


async def test_a_melding_routed_right_after_intake_goes_by_routings_own_record_of_the_consent(
    environment: RunEnvironment, tokens: Tokens
) -> None:
    async with routing_without_consent(environment, tokens, "fresh") as routing, routing.serving():
        # A withdrawal routing has received stops a melding accepted just before it.
        withdrawn_id = str(uuid.uuid4())
        await routing.publish(
            "consent.withdrawn",
            {"consent_id": withdrawn_id, "org_id": SENDER, "withdrawn_at": now().isoformat()},
            f"withdrawn:{withdrawn_id}",
        )
        await eventually(lambda: routing.knows_withdrawal(withdrawn_id), timeout=30)
        stopped = await routing.accept(consent_id=withdrawn_id, accepted_at=now() - timedelta(milliseconds=200))
        assert await eventually(lambda: _status_is(routing, stopped, "withdrawn"), timeout=30)

        # A consent that expired since intake (valid through yesterday) lets nothing out.
        expired = await routing.accept(
            consent_id=str(uuid.uuid4()), accepted_at=now(), valid_until=today_nl() - timedelta(days=1)
        )
        assert await eventually(lambda: _status_is(routing, expired, "not_delivered"), timeout=30)

        # A consent routing knows nothing against is delivered on the strength of the intake check alone:
        # the consent service is down, so it was not asked.
        fresh = await routing.accept(consent_id=routing.consent.id, accepted_at=now())
        assert await routing.delivered() == fresh
        assert await routing.delivered(timeout=2) is None  # and nothing else went out


async def _status_is(routing: Routing, melding_id: str, status: str) -> bool:
    return await routing.status(melding_id) == status


async def test_a_starting_routing_worker_applies_the_waiting_withdrawals_before_it_routes(
    environment: RunEnvironment, tokens: Tokens
) -> None:
    async with routing_without_consent(environment, tokens, "restart") as routing:
        # While routing is down: meldingen accepted under a consent, then its withdrawal, all waiting.
        withdrawn_id = str(uuid.uuid4())
        waiting = [await routing.accept(consent_id=withdrawn_id, accepted_at=now()) for _ in range(20)]
        await routing.publish(
            "consent.withdrawn",
            {"consent_id": withdrawn_id, "org_id": SENDER, "withdrawn_at": now().isoformat()},
            f"withdrawn:{withdrawn_id}",
        )
        async with routing.serving():
            for melding_id in waiting:
                assert await eventually(partial(_status_is, routing, melding_id, "withdrawn"), timeout=30)
            assert await routing.delivered(timeout=2) is None, "delivered (and retracted) after its withdrawal"
