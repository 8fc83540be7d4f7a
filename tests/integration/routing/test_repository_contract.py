"""One contract, two implementations: what routing's use cases rely on of their repository holds for the
in-memory fake the unit tests use (tests/unit/routing/fakes.py) and for the real repository on this run's
database (SQLite, or PostgreSQL with KANSRIJK_TEST_DATABASE=postgresql). A fake that drifts from the real
repository fails here, not silently in a unit test that then proves nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from services.routing.domain.model import DeliveryRecord, RoutingOutcome, RoutingStatus
from services.routing.service_layer.ports import RoutingTransaction
from services.routing.service_layer.unit_of_work import unit_of_work_factory
from shared.contracts.vocabulary import DeliveryStatus
from shared.db import Database
from tests.integration.routing.test_repository import melding
from tests.unit.routing.fakes import FakeRoutingUnitOfWork

AT = datetime(2026, 12, 1, 10, tzinfo=UTC)

Transactions = Callable[[], RoutingTransaction]


@pytest.fixture(params=["fake", "real"])
async def unit_of_work(request: pytest.FixtureRequest, rolled_back_routing: Database) -> AsyncIterator[Transactions]:
    """A factory of units of work whose `routing` is the fake repository or the real one (each transaction
    of the fake sees the one store, as each of the real one sees the database). Both are typed as the
    use cases' Protocol (services/routing/service_layer/ports.py) here: this is where mypy holds the fake and
    the real repository to it."""
    if request.param == "fake":
        fake: Transactions = FakeRoutingUnitOfWork()  # the fake unit of work is its own factory
        yield fake
        return
    real: Transactions = unit_of_work_factory(rolled_back_routing)
    yield real


async def test_a_melding_reads_back_as_it_was_added_and_an_unknown_one_is_none(unit_of_work: Transactions) -> None:
    stored = melding(date(2027, 5, 1))
    async with unit_of_work() as uow:
        await uow.routing.add_melding(stored)
        await uow.commit()
    async with unit_of_work() as uow:
        read = await uow.routing.melding(stored.melding_id)
        assert read is not None and await uow.routing.known_meldingen([stored.melding_id, "unknown"]) == {
            stored.melding_id
        }
        assert (read.melding_id, read.consent_id, read.status) == (stored.melding_id, "c-1", RoutingStatus.new)
        assert read.requested_types == ("jgz", "wijkteam") and read.accepted == stored.accepted
        assert await uow.routing.melding("unknown") is None


async def test_set_routed_changes_status_types_and_gemeente(unit_of_work: Transactions) -> None:
    stored = melding(date(2027, 5, 1))
    async with unit_of_work() as uow:
        await uow.routing.add_melding(stored)
        await uow.routing.set_routed(
            [RoutingOutcome(stored.melding_id, RoutingStatus.waiting, tuple(["wijkteam"]), tuple([]), "GM0363")],
            AT + timedelta(minutes=1),
        )
        await uow.commit()
    async with unit_of_work() as uow:
        read = await uow.routing.melding(stored.melding_id)
        assert read is not None and read.status is RoutingStatus.waiting
        assert (read.unroutable_types, read.gemeente_code) == (("wijkteam",), "GM0363")
        assert [m.melding_id for m in await uow.routing.waiting()] == [stored.melding_id]
        assert [m.melding_id for m in await uow.routing.meldingen_of_consent("c-1")] == [stored.melding_id]


async def test_a_delivery_reads_back_and_its_status_changes_keep_what_was_answered_before(
    unit_of_work: Transactions,
) -> None:
    stored = melding(date(2027, 5, 1))
    delivery_id = str(uuid.uuid4())
    delivery = DeliveryRecord(
        delivery_id, stored.melding_id, "87654321", "GGD JGZ", "jgz", DeliveryStatus.queued, {"x": 1}, AT, AT
    )
    async with unit_of_work() as uow:
        await uow.routing.add_melding(stored)
        await uow.routing.add_delivery(delivery)
        await uow.commit()
    async with unit_of_work() as uow:
        contact = date(2026, 12, 3)
        await uow.routing.set_delivery_status(
            delivery_id, DeliveryStatus.contact_made, note=None, at=AT + timedelta(days=2), contact_at=contact
        )
        await uow.routing.set_delivery_status(
            delivery_id, DeliveryStatus.closed, note=None, at=AT + timedelta(days=3), outcome="phb-done"
        )
        await uow.commit()
    async with unit_of_work() as uow:
        read = await uow.routing.delivery(delivery_id)
        assert read is not None and read.status is DeliveryStatus.closed
        assert (read.contact_at, read.outcome) == (date(2026, 12, 3), "phb-done")  # the contact day stays
        assert [d.delivery_id for d in await uow.routing.deliveries_of(stored.melding_id)] == [delivery_id]
        assert await uow.routing.consent_of(delivery_id=delivery_id) == "c-1"
        assert await uow.routing.delivery("unknown") is None


async def test_a_cancellation_is_recorded_once_and_may_come_before_its_melding(unit_of_work: Transactions) -> None:
    async with unit_of_work() as uow:
        assert await uow.routing.cancellation("m-early") is None
        assert await uow.routing.record_cancellation("m-early", "sent-in-error", AT)
        assert not await uow.routing.record_cancellation("m-early", "other", AT)
        await uow.commit()
    async with unit_of_work() as uow:
        assert await uow.routing.cancellation("m-early") == "sent-in-error"


async def test_a_consent_is_not_withdrawn_until_marked_and_a_death_is_first_once(unit_of_work: Transactions) -> None:
    async with unit_of_work() as uow:
        assert (await uow.routing.lock_consent("c-9")).withdrawn_at is None
        await uow.routing.mark_consent_withdrawn("c-9", AT)
        assert await uow.routing.first_death("letter-1", AT)
        assert not await uow.routing.first_death("letter-1", AT)
        await uow.commit()
    async with unit_of_work() as uow:
        assert (await uow.routing.lock_consent("c-9")).withdrawn_at == AT


async def test_sequences_count_on_per_organisation(unit_of_work: Transactions) -> None:
    async with unit_of_work() as uow:
        assert await uow.routing.take_sequences("org-a", 3) == 3
        assert await uow.routing.take_sequences("org-a", 2) == 5
        assert await uow.routing.take_sequences("org-b", 1) == 1
        await uow.commit()
