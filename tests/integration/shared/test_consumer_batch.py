"""A consumer takes a batch into one transaction (shared.messaging.consumer), against a real RabbitMQ and the
test database: what a batch of good messages costs in statements, and what a batch holding a duplicate, a
redelivery and a poison message comes to — every good message applied exactly once, the poison one
dead-lettered, nothing else."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from sqlalchemy import event, func, select

from services.melding.adapters.orm import processed_messages
from shared.clock import now
from shared.contracts.subscriptions import EventQueue
from shared.db import Database, UnitOfWork
from shared.messaging.broker import Broker
from shared.messaging.consumer import IdempotentConsumer, IncomingEvent
from shared.messaging.topology import DEAD_LETTER_QUEUE, EVENTS_EXCHANGE, declare_topology
from tests.support import RunEnvironment, scratch_vhost

TYPE = "test.happened"


@dataclass
class Run:
    consumer: IdempotentConsumer[UnitOfWork]
    channel: aio_pika.abc.AbstractChannel
    database: Database
    effect: str  # the `consumer` column of the rows the handler writes: its effect, committed with the batch
    batches: list[list[str]] = field(default_factory=list)  # the ids of each transaction the consumer tried
    woken: int = 0  # calls of the consumer's `after_commit`

    def wake(self) -> None:
        self.woken += 1

    async def publish(self, message_id: str, body: dict[str, Any]) -> None:
        exchange = await self.channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                message_id=message_id,
                type=TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=TYPE,
        )

    async def effects(self) -> list[str]:
        async with self.database.engine.connect() as connection:
            found = await connection.execute(
                select(processed_messages.c.message_id).where(processed_messages.c.consumer == self.effect)
            )
            return sorted(found.scalars())

    async def take(self, queue_name: str) -> list[str]:
        """The ids of what waits on the queue, taken off it (a passive declare's count can lag behind)."""
        queue = await self.channel.declare_queue(queue_name, passive=True)
        taken = []
        while (message := await queue.get(no_ack=True, fail=False, timeout=5)) is not None:
            taken.append(message.message_id or "")
        return taken


@asynccontextmanager
async def consuming(environment: RunEnvironment, name: str) -> AsyncIterator[Run]:
    """A consumer of a queue of its own on a vhost of its own, started only when the test says `start`."""
    database = environment.database(environment.database_urls["melding"])
    suffix = uuid.uuid4().hex[:6]
    effect = f"effect-{suffix}"

    async def handler(uow: UnitOfWork, incoming: IncomingEvent[dict[str, Any]]) -> None:
        if incoming.message.get("poison"):
            raise ValueError("this message can never be applied")
        # The message's effect, in the batch's transaction: a second application would be a second row.
        await uow.session.execute(
            processed_messages.insert().values(consumer=effect, message_id=incoming.message_id, processed_at=now())
        )

    async with scratch_vhost(environment, f"batch-{suffix}") as amqp_url:
        broker = Broker(amqp_url, client_name="kansrijk-test-batch")
        queue = EventQueue(f"kansrijk.test.batch-{suffix}", (TYPE,))
        consumer: IdempotentConsumer[UnitOfWork] = IdempotentConsumer(
            database.unit_of_work,
            broker,
            processed_messages,
            name=f"test-{suffix}",
            queue=queue,
            handlers={TYPE: handler},
            contracts={TYPE: dict},
            batch_size=50,
            batch_wait=0.5,  # long enough that everything published before the start is one batch
        )
        channel = await (await broker.connect()).channel()
        await declare_topology(channel, (queue,))
        run = Run(consumer, channel, database, effect)
        consumer.after_commit = run.wake
        process = consumer.process

        async def counted(events: Sequence[IncomingEvent[Any]]) -> set[str]:
            run.batches.append([e.message_id for e in events])
            return await process(events)

        consumer.process = counted  # type: ignore[method-assign]
        try:
            yield run
        finally:
            await broker.close()
            await database.dispose()


@asynccontextmanager
async def started(run: Run) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run.consumer.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def test_a_batch_with_a_duplicate_a_redelivery_and_a_poison_message_applies_each_good_one_once(
    environment: RunEnvironment,
) -> None:
    async with consuming(environment, "mixed") as run:
        good = [str(uuid.uuid4()) for _ in range(4)]
        seen_before, new_redelivered, poison = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())

        # Two redeliveries: a consumer took them and died before its ack. It had committed the first one.
        await run.publish(seen_before, {})
        await run.publish(new_redelivered, {})
        taker = await (await run.consumer.broker.connect()).channel()
        queue = await taker.declare_queue(run.consumer.queue_name, passive=True)
        for _ in range(2):
            assert await queue.get(no_ack=False, timeout=5) is not None
        await taker.close()  # unacked: both go back to the queue, marked redelivered
        async with run.database.unit_of_work() as uow:
            await uow.session.execute(
                processed_messages.insert().values(
                    consumer=run.consumer.name, message_id=seen_before, processed_at=now()
                )
            )
            await uow.commit()

        await run.publish(good[0], {})
        await run.publish(good[1], {})
        await run.publish(good[1], {})  # the same message twice (a publisher that retried)
        await run.publish(poison, {"poison": True})
        await run.publish(good[2], {})
        await run.publish(good[3], {})

        dead: list[str] = []
        async with started(run):
            for _ in range(300):
                dead += await run.take(DEAD_LETTER_QUEUE)
                if dead and await run.consumer.caught_up(timeout=5):
                    break
                await asyncio.sleep(0.1)

        # One transaction for all of them first; it failed on the poison one, so each was tried alone.
        first = run.batches[0]
        assert sorted(first) == sorted([seen_before, new_redelivered, *good, good[1], poison])
        assert [len(batch) for batch in run.batches[1:9]] == [1] * 8
        # Every good message applied once, the one committed before not again, the poison one not at all.
        assert await run.effects() == sorted([new_redelivered, *good])
        assert dead + await run.take(DEAD_LETTER_QUEUE) == [poison]
        # `after_commit` once per transaction that applied something: the five applied one by one, not the failed
        # batch, not the copies, not the poison one's attempts.
        assert run.woken == 5
        assert await run.take(run.consumer.queue_name) == []
        async with run.database.engine.connect() as connection:
            recorded = await connection.execute(
                select(processed_messages.c.message_id).where(processed_messages.c.consumer == run.consumer.name)
            )
            assert sorted(recorded.scalars()) == sorted([seen_before, new_redelivered, *good])


async def test_a_batch_is_one_transaction_whose_bookkeeping_is_one_statement_whatever_its_size(
    environment: RunEnvironment,
) -> None:
    """The round trips a batch costs: one INSERT of all its ids, its handlers' statements, one commit."""
    async with consuming(environment, "count") as run:
        ids = [str(uuid.uuid4()) for _ in range(20)]
        for message_id in ids:
            await run.publish(message_id, {})
        statements: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement.split()[0].upper())

        def commit(conn: Any) -> None:
            statements.append("COMMIT")

        event.listen(run.database.engine.sync_engine, "before_cursor_execute", count)
        event.listen(run.database.engine.sync_engine, "commit", commit)
        try:
            async with started(run):
                for _ in range(300):
                    if len(await run.effects()) == len(ids):
                        break
                    await asyncio.sleep(0.1)
        finally:
            event.remove(run.database.engine.sync_engine, "before_cursor_execute", count)
            event.remove(run.database.engine.sync_engine, "commit", commit)

        assert await run.effects() == sorted(ids)
        assert run.batches == [ids]  # in arrival order, in one batch
        # 1 INSERT of the 20 ids + 20 INSERTs by the handler; before batching: 20 + 20, in 20 transactions.
        assert statements.count("INSERT") == 1 + len(ids), statements
        assert statements.count("COMMIT") == 1, statements
        async with run.database.engine.connect() as connection:
            processed = await connection.execute(
                select(func.count()).where(processed_messages.c.consumer == run.consumer.name)
            )
            assert processed.scalar_one() == len(ids)
