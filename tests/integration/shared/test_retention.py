"""Housekeeping removes sent outbox rows, old processed ids and expired idempotency keys — nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from services.melding.adapters.orm import audit, idempotency_keys, outbox, processed_messages
from services.melding.config import MeldingSettings
from services.melding.service_layer.unit_of_work import unit_of_work_factory
from shared.app import build_runtime, housekeeping, retention_rules
from shared.clock import now
from shared.db import Database
from shared.retention import Retention, prune
from tests.support import RunEnvironment, empty_tables


@pytest.fixture
async def melding_db(environment: RunEnvironment) -> AsyncIterator[Database]:
    database = environment.database(environment.database_urls["melding"])
    await empty_tables(database)
    yield database
    await database.dispose()


async def test_pruning_keeps_the_deduplication_window_and_every_unsent_message(melding_db: Database) -> None:
    at = now()
    async with melding_db.unit_of_work() as uow:
        for message_id, age_h, sent in (("old-sent", 200, True), ("new-sent", 2, True), ("old-unsent", 500, False)):
            created = at - timedelta(hours=age_h)
            await uow.session.execute(
                outbox.insert().values(
                    id=message_id,
                    exchange="kansrijk.events",
                    routing_key="x",
                    message_type="x",
                    body="{}",
                    mandatory=True,
                    created_at=created,
                    sent_at=created if sent else None,
                    attempts=1,
                )
            )
        for message_id, age_h in (("old", 200), ("recent", 100)):
            await uow.session.execute(
                processed_messages.insert().values(
                    consumer="melding", message_id=message_id, processed_at=at - timedelta(hours=age_h)
                )
            )
        for key, age_h in (("expired", 50), ("kept", 30)):
            await uow.session.execute(
                idempotency_keys.insert().values(
                    org_id="1",
                    key=key,
                    fingerprint="f",
                    status_code=202,
                    resource_id="r",
                    created_at=at - timedelta(hours=age_h),
                )
            )
        await uow.commit()

    removed = await prune(
        melding_db,
        [
            Retention(outbox, outbox.c.sent_at, timedelta(hours=168)),
            Retention(processed_messages, processed_messages.c.processed_at, timedelta(hours=168)),
            Retention(idempotency_keys, idempotency_keys.c.created_at, timedelta(hours=48)),
        ],
    )
    assert removed == {"outbox": 1, "processed_messages": 1, "idempotency_keys": 1}
    async with melding_db.unit_of_work() as uow:
        assert set((await uow.session.execute(select(outbox.c.id))).scalars()) == {"new-sent", "old-unsent"}
        assert set((await uow.session.execute(select(processed_messages.c.message_id))).scalars()) == {"recent"}
        assert set((await uow.session.execute(select(idempotency_keys.c.key))).scalars()) == {"kept"}


async def test_the_service_worker_prunes_on_its_schedule(environment: RunEnvironment, melding_db: Database) -> None:
    import asyncio

    async with melding_db.unit_of_work() as uow:
        await uow.session.execute(
            processed_messages.insert().values(
                consumer="melding", message_id="ancient", processed_at=now() - timedelta(days=30)
            )
        )
        await uow.commit()
    runtime = build_runtime(
        MeldingSettings(
            database_url=environment.database_urls["melding"], data_dir=environment.data_dir, prune_interval_seconds=0.1
        ),
        unit_of_work_factory,
    )
    stop = asyncio.Event()
    rules = retention_rules(runtime.settings, outbox=outbox, audit=audit, processed=processed_messages)
    task = asyncio.create_task(housekeeping(runtime, rules)(stop))
    await asyncio.sleep(0.5)
    stop.set()
    await task
    await runtime.database.dispose()
    async with melding_db.unit_of_work() as uow:
        assert (await uow.session.execute(select(processed_messages.c.message_id))).all() == []


def test_idempotency_keys_are_kept_at_least_a_day() -> None:
    with pytest.raises(ValueError, match="24 hours"):
        MeldingSettings(idempotency_retention_hours=12)
