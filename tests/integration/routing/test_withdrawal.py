"""A withdrawal on the run's real database: each melding is stopped in a savepoint of its own, so a database
error while stopping one (PostgreSQL aborts the transaction on any error) rolls back that melding alone."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from services.routing.adapters.orm import deliveries, outbox
from services.routing.adapters.repository import RoutingRepository
from services.routing.domain.model import DeliveryRecord, RoutingOutcome, RoutingStatus
from services.routing.service_layer import events
from services.routing.service_layer.unit_of_work import UnitOfWorkFactory, unit_of_work_factory
from shared.contracts.events import ConsentWithdrawn
from shared.contracts.vocabulary import DeliveryStatus
from shared.messaging.consumer import IncomingEvent
from tests.integration.routing.test_repository import AT, melding
from tests.support import RunEnvironment, empty_tables


@pytest.fixture
async def unit_of_work(environment: RunEnvironment) -> AsyncIterator[UnitOfWorkFactory]:
    database = environment.database(environment.database_urls["routing"])
    await empty_tables(database)
    yield unit_of_work_factory(database)
    await database.dispose()


async def _delivered(unit_of_work: UnitOfWorkFactory) -> dict[str, str]:
    """Two meldingen under one consent (c-1), each delivered to the JGZ: melding id -> delivery id."""
    out = {}
    async with unit_of_work() as uow:
        for _ in range(2):
            stored = melding(date(2027, 5, 1))
            await uow.routing.add_melding(stored)
            await uow.routing.set_routed([RoutingOutcome(stored.melding_id, RoutingStatus.routed, (), (), None)], AT)
            delivery_id = str(uuid.uuid4())
            await uow.routing.add_delivery(
                DeliveryRecord(
                    delivery_id=delivery_id,
                    melding_id=stored.melding_id,
                    org_id="87654321",
                    org_name="GGD",
                    recipient_type="jgz",
                    status=DeliveryStatus.queued,
                    message={"delivery_id": delivery_id, "patient": {"bsn": "999999990"}},
                    created_at=AT,
                    updated_at=AT,
                )
            )
            out[stored.melding_id] = delivery_id
        await uow.commit()
    return out


async def test_a_database_error_stopping_one_melding_rolls_back_that_melding_alone(
    unit_of_work: UnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivered = await _delivered(unit_of_work)
    failing, fine = list(delivered)
    retract = RoutingRepository.retract_delivery

    async def with_a_database_error(self: RoutingRepository, delivery_id: str, retraction: Any, at: datetime) -> None:
        await retract(self, delivery_id, retraction, at)
        if delivery_id == delivered[failing]:  # a row that exists already: the database refuses it
            row = (await self.session.execute(select(deliveries).where(deliveries.c.delivery_id == delivery_id))).one()
            await self.session.execute(deliveries.insert().values(**row._asdict()))

    monkeypatch.setattr(RoutingRepository, "retract_delivery", with_a_database_error)
    body = {"consent_id": "c-1", "org_id": "10000001", "withdrawn_at": datetime.now(UTC).isoformat()}
    async with unit_of_work() as uow:
        await events.on_consent_withdrawn(
            uow, IncomingEvent("w-1", "consent.withdrawn", ConsentWithdrawn.model_validate(body))
        )
        await uow.commit()

    async with unit_of_work() as uow:
        stopped, stuck = await uow.routing.melding(fine), await uow.routing.melding(failing)
        assert stopped is not None and stopped.status is RoutingStatus.withdrawn and stopped.accepted is None
        assert stuck is not None and stuck.status is RoutingStatus.routed and stuck.accepted is not None
        retracted, kept = await uow.routing.delivery(delivered[fine]), await uow.routing.delivery(delivered[failing])
        assert retracted is not None and retracted.status is DeliveryStatus.retracted and retracted.bsn is None
        assert kept is not None and kept.status is DeliveryStatus.queued  # nothing of its stop is left
        sent = set((await uow.session.execute(select(outbox.c.id))).scalars())
        assert f"retract:{delivered[fine]}" in sent and f"retract:{delivered[failing]}" not in sent
        [letter] = await uow.routing.dead_letters(include_replayed=False, limit=10)
        assert letter.message_type == "consent.withdrawn" and letter.queue == "kansrijk.routing.withdrawals"
