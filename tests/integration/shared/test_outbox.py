"""The transactional outbox: what is committed is published, once per relay fleet, even across a broker outage."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import httpx
import pytest
from sqlalchemy import event, select, update

from services.consent.adapters.orm import outbox
from services.consent.main import create_app as create_consent_app
from shared.db import Database
from shared.messaging.broker import Broker
from shared.messaging.outbox import Outbox, OutboxRelay
from shared.messaging.topology import EVENTS_EXCHANGE, declare_topology
from tests.conftest import consent_settings
from tests.support import RunEnvironment, TcpProxy, Tokens, collect, running

BSN = "999999990"


@pytest.fixture
async def amqp(environment: RunEnvironment) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect_robust(environment.amqp_url)
    channel = await connection.channel()
    await declare_topology(channel)
    yield channel
    await connection.close()


async def bound_queue(channel: aio_pika.abc.AbstractChannel, routing_key: str) -> aio_pika.abc.AbstractQueue:
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(EVENTS_EXCHANGE, routing_key=routing_key)
    return queue


async def record_and_withdraw(client: httpx.AsyncClient, tokens: Tokens, request_id: str) -> str:
    headers = tokens.bearer(scopes="consent:write")
    created = await client.post(
        "/v1/consents",
        headers=headers,
        json={"patient": {"bsn": BSN}, "recipient_types": ["jgz"], "method": "written", "given_at": "2026-11-01"},
    )
    assert created.status_code == 201
    consent_id: str = created.json()["id"]
    withdrawn = await client.post(
        f"/v1/consents/{consent_id}/withdraw", headers={**headers, "X-Request-ID": request_id}
    )
    assert withdrawn.status_code == 200
    return consent_id


async def test_a_withdrawal_is_published_as_a_persistent_event_with_a_stable_message_id(
    consent_client: httpx.AsyncClient, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, consent_db: Database
) -> None:
    queue = await bound_queue(amqp, "consent.withdrawn")
    consent_id = await record_and_withdraw(consent_client, tokens, "req-withdraw-1")

    [message] = await collect(queue, expected=1, timeout=15)
    async with consent_db.unit_of_work() as uow:
        row = (await uow.session.execute(select(outbox).where(outbox.c.message_type == "consent.withdrawn"))).one()
    assert message.message_id == row.id
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/json"
    assert message.type == "consent.withdrawn"
    assert message.routing_key == "consent.withdrawn"
    assert message.correlation_id == "req-withdraw-1"
    body = json.loads(message.body)
    assert body["consent_id"] == consent_id and body["org_id"] == "12345678" and body["withdrawn_at"]
    assert BSN not in message.body.decode()
    assert row.sent_at is not None


async def test_an_event_committed_while_the_broker_is_unreachable_is_published_when_it_is_back(
    environment: RunEnvironment, consent_db: Database, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    queue = await bound_queue(amqp, "consent.withdrawn")
    proxy = TcpProxy()  # not listening yet: the broker is "down"
    app = create_consent_app(consent_settings(environment, amqp_url=environment.amqp_url_via(proxy.port)))
    async with running(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://consent") as client:
            consent_id = await record_and_withdraw(client, tokens, "req-while-down")
            ready = await client.get("/health/ready")
            assert ready.status_code == 200  # still accepting work into the outbox
            assert ready.json()["checks"]["broker"] == "unavailable"
            await asyncio.sleep(1.0)
            assert await queue.get(fail=False, timeout=5) is None
            async with consent_db.unit_of_work() as uow:
                # Neither the consent.recorded nor the consent.withdrawn it staged
                assert set((await uow.session.execute(select(outbox.c.sent_at))).scalars()) == {None}

            await proxy.open()  # the broker is back
            [message] = await collect(queue, expected=1, timeout=30)
            assert json.loads(message.body)["consent_id"] == consent_id

            # and once more across a cut of the established connection
            await proxy.close()
            second = await record_and_withdraw(client, tokens, "req-after-cut")
            await asyncio.sleep(0.5)
            await proxy.open()
            [message] = await collect(queue, expected=1, timeout=40)
            assert json.loads(message.body)["consent_id"] == second
    await proxy.close()


async def test_two_relays_running_at_once_publish_each_event_once(
    environment: RunEnvironment, consent_db: Database, amqp: aio_pika.abc.AbstractChannel
) -> None:
    routing_key = f"test.relay.{uuid.uuid4().hex}"
    queue = await bound_queue(amqp, routing_key)
    total = 300
    async with consent_db.unit_of_work() as uow:
        for n in range(total):
            await Outbox(uow, outbox).add(
                exchange=EVENTS_EXCHANGE, routing_key=routing_key, message_type="test.event", body={"n": n}
            )
        await uow.commit()

    stop = asyncio.Event()
    relays, resources = [], []
    for name in ("a", "b"):
        database = environment.database(environment.database_urls["consent"])
        broker = Broker(environment.amqp_url, client_name=f"test-relay-{name}")
        resources.append((database, broker))
        relays.append(OutboxRelay(database, broker, outbox, service="consent", batch_size=10, sweep_seconds=0.05))
    tasks = [asyncio.create_task(relay.run(stop)) for relay in relays]
    try:
        messages = await collect(queue, expected=total, timeout=60, settle=1.0)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for database, broker in resources:
            await broker.close()
            await database.dispose()

    assert all(relay.published > 0 for relay in relays), "both relays should have taken part"
    assert sum(relay.published for relay in relays) == total
    ids = Counter(m.message_id for m in messages)
    assert len(ids) == total
    assert max(ids.values()) == 1, "a message was published twice"
    assert sorted(json.loads(m.body)["n"] for m in messages) == list(range(total))
    async with consent_db.unit_of_work() as uow:
        unsent = (await uow.session.execute(select(outbox.c.id).where(outbox.c.sent_at.is_(None)))).all()
    assert unsent == []


# --- the hand-off: the writer publishes its own rows after COMMIT, the sweep what a crash left ------------


class Recorder:
    """A hand-off receiver that takes rows and publishes nothing: a writer that "died" after its COMMIT."""

    def __init__(self, lease: timedelta) -> None:
        self.lease = lease
        self.taken: list[dict[str, Any]] = []

    def lease_until(self) -> datetime:
        return datetime.now(UTC) + self.lease

    def take(self, rows: list[dict[str, Any]]) -> None:
        self.taken.extend(rows)


@contextlib.asynccontextmanager
async def relay_on(environment: RunEnvironment, **options: Any) -> AsyncIterator[tuple[OutboxRelay, Database]]:
    database = environment.database(environment.database_urls["consent"])
    broker = Broker(environment.amqp_url, client_name="test-hand-off")
    relay = OutboxRelay(database, broker, outbox, service="consent", **options)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        for _ in range(200):  # started: its first sweep ran, it takes hand-offs
            if relay.sweeps and relay.lease_until() is not None:
                break
            await asyncio.sleep(0.05)
        assert relay.lease_until() is not None, "the relay never started taking hand-offs"
        yield relay, database
    finally:
        stop.set()
        await task
        await broker.close()
        await database.dispose()


async def test_a_staged_row_is_published_once_after_commit_without_a_claim_query(
    environment: RunEnvironment, consent_db: Database, amqp: aio_pika.abc.AbstractChannel
) -> None:
    routing_key = f"test.hand-off.{uuid.uuid4().hex}"
    queue = await bound_queue(amqp, routing_key)
    async with relay_on(environment, sweep_seconds=3600) as (relay, database):
        statements: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            statements.append(" ".join(statement.split()).upper())

        event.listen(database.engine.sync_engine, "before_cursor_execute", record)
        try:
            async with database.unit_of_work() as uow:
                message_id = await Outbox(uow, outbox).add(
                    exchange=EVENTS_EXCHANGE, routing_key=routing_key, message_type="test.event", body={"n": 1}
                )
                await uow.commit()
            [message] = await collect(queue, expected=1, timeout=15, settle=0.5)
            for _ in range(100):  # marked sent after the confirm
                if relay.published == 1:
                    break
                await asyncio.sleep(0.05)
            sweeps = relay.sweeps
        finally:
            event.remove(database.engine.sync_engine, "before_cursor_execute", record)
    assert message.message_id == message_id and json.loads(message.body) == {"n": 1}
    assert relay.published == 1 and sweeps == 1, "published by the hand-off, not by a sweep"
    on_outbox = [s for s in statements if " OUTBOX" in s]
    assert [s.split()[0] for s in on_outbox] == ["INSERT", "UPDATE"], on_outbox
    assert "SENT_AT" in on_outbox[1] and "RETURNING" not in on_outbox[1], "the mark, not a claim"
    assert not any(s.startswith("SELECT") for s in on_outbox)
    async with consent_db.unit_of_work() as uow:
        row = (await uow.session.execute(select(outbox).where(outbox.c.id == message_id))).one()
    assert row.sent_at is not None and row.attempts == 1


async def test_a_row_whose_writer_died_after_commit_is_published_by_the_sweep_once_its_lease_ran_out(
    environment: RunEnvironment, consent_db: Database, amqp: aio_pika.abc.AbstractChannel
) -> None:
    routing_key = f"test.sweep.{uuid.uuid4().hex}"
    queue = await bound_queue(amqp, routing_key)
    writer = environment.database(environment.database_urls["consent"])
    dead = Recorder(lease=timedelta(hours=1))
    writer.hand_off_to(outbox.name, dead)
    try:
        async with writer.unit_of_work() as uow:
            message_id = await Outbox(uow, outbox).add(
                exchange=EVENTS_EXCHANGE, routing_key=routing_key, message_type="test.event", body={"n": 2}
            )
            await uow.commit()
    finally:
        await writer.dispose()
    assert [row["id"] for row in dead.taken] == [message_id]  # handed off, and never published

    async with relay_on(environment, sweep_seconds=3600) as (relay, _database):
        assert await relay.sweep_once() == 0, "the lease still holds: the sweep leaves the row alone"
        async with consent_db.unit_of_work() as uow:  # the lease runs out
            await uow.session.execute(
                update(outbox)
                .where(outbox.c.id == message_id)
                .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
            )
            await uow.commit()
        assert await relay.sweep_once() == 1
        assert await relay.sweep_once() == 0, "swept once"
        messages = await collect(queue, expected=1, timeout=15, settle=1.0)
    assert [m.message_id for m in messages] == [message_id]
    async with consent_db.unit_of_work() as uow:
        row = (await uow.session.execute(select(outbox).where(outbox.c.id == message_id))).one()
    assert row.sent_at is not None and row.attempts == 2


async def test_a_backlog_larger_than_a_batch_is_swept_batch_after_batch_not_one_batch_a_sweep_period(
    environment: RunEnvironment, amqp: aio_pika.abc.AbstractChannel
) -> None:
    """What was staged while no relay could take it (the broker away: no lease, no hand-off) is all published once
    the broker is back, however many batches it takes, not a batch per sweep period."""
    routing_key = f"test.backlog.{uuid.uuid4().hex}"
    queue = await bound_queue(amqp, routing_key)
    writer = environment.database(environment.database_urls["consent"])  # no relay: nothing is handed off
    try:
        async with writer.unit_of_work() as uow:
            staged = [
                await Outbox(uow, outbox).add(
                    exchange=EVENTS_EXCHANGE, routing_key=routing_key, message_type="test.event", body={"n": n}
                )
                for n in range(25)
            ]
            await uow.commit()
    finally:
        await writer.dispose()
    async with relay_on(environment, sweep_seconds=3600, batch_size=10):
        messages = await collect(queue, expected=25, timeout=15, settle=0.5)
    assert sorted(m.message_id or "" for m in messages) == sorted(staged)


async def test_a_rollback_hands_off_nothing_and_stages_nothing(environment: RunEnvironment) -> None:
    database = environment.database(environment.database_urls["consent"])
    receiver = Recorder(lease=timedelta(seconds=30))
    database.hand_off_to(outbox.name, receiver)
    try:
        async with database.unit_of_work() as uow:
            message_id = await Outbox(uow, outbox).add(
                exchange=EVENTS_EXCHANGE, routing_key="test.rollback", message_type="test.event", body={"n": 3}
            )
            # leaves without commit: rolled back
        assert receiver.taken == []
        async with database.unit_of_work() as uow:
            assert (await uow.session.execute(select(outbox).where(outbox.c.id == message_id))).first() is None
            committed_id = await Outbox(uow, outbox).add(
                exchange=EVENTS_EXCHANGE, routing_key="test.rollback", message_type="test.event", body={"n": 4}
            )
            await uow.commit()
        assert [row["id"] for row in receiver.taken] == [committed_id]
        async with database.unit_of_work() as uow:
            row = (await uow.session.execute(select(outbox).where(outbox.c.id == committed_id))).one()
        assert row.locked_until is not None and row.sent_at is None, "staged under the receiver's lease"
    finally:
        await database.dispose()


async def test_a_relay_told_to_stop_before_the_broker_is_there_stops_at_once(environment: RunEnvironment) -> None:
    proxy = TcpProxy()  # not listening: the broker is away
    database = environment.database(environment.database_urls["consent"])
    broker = Broker(environment.amqp_url_via(proxy.port), client_name="test-never-connected")
    relay = OutboxRelay(database, broker, outbox, service="consent")
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.5)
        assert relay.lease_until() is None, "no hand-off while the broker is away: rows wait for the sweep"
        stop.set()
        await asyncio.wait_for(task, timeout=5)  # not held in the broker's backoff until shutdown's grace ends
    finally:
        await broker.close()
        await database.dispose()
        await proxy.close()
