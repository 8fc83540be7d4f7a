"""A fault loses nothing: a melding accepted while the consent service is away waits, then is delivered."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import aio_pika
import httpx

from services.consent.adapters.repository import ConsentRepository
from services.consent.domain.model import Consent
from services.stack import run_stack
from shared import migrations
from shared.clock import now, today_nl
from tests.conftest import service_settings
from tests.e2e.flow import BSN, SENDER, admin, melding_body
from tests.support import RunEnvironment, Tokens, _free_port, create_database, drop_database, running, scratch_vhost


async def test_routing_waits_for_the_consent_service_instead_of_dead_lettering(
    environment: RunEnvironment, tokens: Tokens
) -> None:
    from services.routing.main import create_app as create_routing

    urls = {n: await create_database(environment, n, suffix="_outage") for n in ("consent", "routing")}
    try:
        for name, url in urls.items():
            await asyncio.to_thread(migrations.upgrade, name, url)
        consent = Consent.record(bsn=BSN, recipient_types=["jgz"], purpose="kansrijke-start-melding", method="verbal",
                                 given_at=today_nl(), valid_until=None, org_id=SENDER, org_type="verloskundige",
                                 sub="u", today=today_nl(), now=now())
        consent_db = environment.database(urls["consent"])
        async with consent_db.unit_of_work() as uow:
            await ConsentRepository(uow).add(consent)
            await uow.commit()
        await consent_db.dispose()

        async with scratch_vhost(environment, "outage") as amqp_url:
            consent_port = _free_port()
            routing = create_routing(service_settings(
                environment, "routing", urls["routing"], amqp_url=amqp_url,
                consent_url=f"http://127.0.0.1:{consent_port}", consent_timeout_seconds=1))
            async with running(routing), httpx.AsyncClient(transport=httpx.ASGITransport(app=routing),
                                                           base_url="http://routing") as client:
                headers = admin(tokens)
                await client.put("/v1/gemeenten/GM0363", headers=headers,
                                 json={"name": "Amsterdam", "postcode_ranges": [{"from": "1011", "to": "1109"}]})
                org_id = f"outage-{uuid.uuid4().hex[:6]}"
                created = await client.put(f"/v1/organisations/{org_id}", headers=headers,
                                           json={"name": "JGZ", "type": "jgz", "gemeenten": ["GM0363"]})
                assert created.status_code == 201

                connection = await aio_pika.connect_robust(amqp_url)
                channel = await connection.channel()
                body = melding_body(consent.id, recipient_types=["jgz"])
                melding_id = str(uuid.uuid4())
                event = {"melding_id": melding_id, "accepted_at": datetime.now(UTC).isoformat(),
                         "sender": {"org_id": SENDER, "org_type": "verloskundige", "sub": "u"},
                         "consent": {"id": consent.id, "recipient_types": ["jgz"],
                                     "valid_until": consent.valid_until.isoformat()},
                         "content": {k: v for k, v in body.items() if k != "consent_id"}}
                exchange = await channel.get_exchange("kansrijk.events", ensure=False)
                await exchange.publish(aio_pika.Message(json.dumps(event).encode(), message_id=f"accepted:{melding_id}",
                                                        type="melding.accepted", delivery_mode=2),
                                       routing_key="melding.accepted")
                await asyncio.sleep(9)  # down longer than five backed-off deliveries would last
                dead = (await client.get("/v1/dead-letters", headers=headers)).json()["items"]
                assert dead == []
                queue = await channel.get_queue(f"kansrijk.deliveries.{org_id}", ensure=False)
                assert await queue.get(fail=False, timeout=5) is None

                consent_settings = service_settings(environment, "consent", urls["consent"], amqp_url=amqp_url,
                                                    port=consent_port)
                async with run_stack({"consent": consent_settings}, migrate=False):
                    message = None
                    for _ in range(200):
                        message = await queue.get(fail=False, timeout=5)
                        if message is not None:
                            break
                        await asyncio.sleep(0.2)
                    assert message is not None, "not delivered after the consent service came back"
                    await message.ack()
                    assert json.loads(message.body)["melding_id"] == melding_id
                await connection.close()
    finally:
        for url in urls.values():
            await drop_database(environment, url)


