"""The dead-letter keeper on the run's real database: a dead letter delivered again is kept once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from services.routing.domain.commands import KeepDeadLetter
from services.routing.service_layer import events
from services.routing.service_layer.unit_of_work import UnitOfWorkFactory, unit_of_work_factory
from tests.support import RunEnvironment, empty_tables


@pytest.fixture
async def unit_of_work(environment: RunEnvironment) -> AsyncIterator[UnitOfWorkFactory]:
    database = environment.database(environment.database_urls["routing"])
    await empty_tables(database)
    yield unit_of_work_factory(database)
    await database.dispose()


def letter(message_id: str, *, died_at: str = "2026-12-01T10:00:00+00:00") -> KeepDeadLetter:
    return KeepDeadLetter(
        message_id=message_id,
        message_type="melding.accepted",
        correlation_id="c-1",
        body=json.dumps({"melding_id": message_id}).encode(),
        queue="routing.events",
        reason="delivery_limit",
        death=json.dumps({"x-death": [{"count": 1, "queue": "routing.events", "time": died_at}]}),
    )


async def kept(unit_of_work: UnitOfWorkFactory) -> list[str | None]:
    async with unit_of_work() as uow:
        return [d.message_id for d in await uow.routing.dead_letters(include_replayed=True, limit=1000)]


async def test_a_dead_letter_delivered_twice_is_kept_once(unit_of_work: UnitOfWorkFactory) -> None:
    await events.store_dead_letter(unit_of_work, letter("m-1"))
    await events.store_dead_letter(unit_of_work, letter("m-1"))  # redelivered: the ack after the commit was lost
    assert await kept(unit_of_work) == ["m-1"]


async def test_the_same_message_dead_again_is_kept_again(unit_of_work: UnitOfWorkFactory) -> None:
    await events.store_dead_letter(unit_of_work, letter("m-1"))
    await events.store_dead_letter(unit_of_work, letter("m-1", died_at="2026-12-01T11:00:00+00:00"))  # replayed
    assert await kept(unit_of_work) == ["m-1", "m-1"]


async def test_a_dead_letter_delivered_to_two_keepers_at_once_is_kept_once_every_time(
    unit_of_work: UnitOfWorkFactory,
) -> None:
    rounds = 20
    for n in range(rounds):
        await asyncio.gather(*(events.store_dead_letter(unit_of_work, letter(f"m-{n}")) for _ in range(2)))
    found = await kept(unit_of_work)
    assert sorted(found, key=str) == sorted((f"m-{n}" for n in range(rounds)), key=str)
