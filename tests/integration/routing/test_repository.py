"""The routing repository on the run's real database: rows in, domain records out, nothing lost between."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from services.routing.adapters.orm import outbox
from services.routing.domain.model import (
    DeliveryRecord,
    RoutedMelding,
    RoutingOutcome,
    RoutingStatus,
    Skipped,
    SkipReason,
)
from services.routing.service_layer.routing import ROUTING
from services.routing.service_layer.unit_of_work import UnitOfWorkFactory, unit_of_work_factory
from shared.contracts.consent import ConsentScope
from shared.contracts.melding import MeldingAccepted, MeldingContent, MeldingReminder, Sender
from shared.contracts.vocabulary import DeliveryStatus
from shared.db import Database
from tests.samples import melding_body
from tests.support import RunEnvironment, empty_tables

AT = datetime(2026, 12, 1, 10, tzinfo=UTC)


@pytest.fixture
def unit_of_work(rolled_back_routing: Database) -> UnitOfWorkFactory:
    """Routing's units of work on one connection: what the test commits is rolled back when it ends."""
    return unit_of_work_factory(rolled_back_routing)


@pytest.fixture
async def concurrent_units_of_work(environment: RunEnvironment) -> AsyncIterator[UnitOfWorkFactory]:
    """Routing's units of work each on a connection of its own, committing for real (transactions that race
    cannot share one connection): the tables are emptied first."""
    database = environment.database(environment.database_urls["routing"])
    await empty_tables(database)
    yield unit_of_work_factory(database)
    await database.dispose()


def melding(due: date) -> RoutedMelding:
    body = melding_body("c-1", recipient_types=["jgz", "wijkteam"])
    body.pop("consent_id")
    body["pregnancy"]["expected_due_date"] = due.isoformat()
    accepted = MeldingAccepted(
        melding_id=str(uuid.uuid4()),
        accepted_at=AT,
        sender=Sender(org_id="10000001", org_type="verloskundige", sub="u"),
        consent=ConsentScope(id="c-1", recipient_types=["jgz", "wijkteam"], valid_until=date(2099, 1, 1)),
        content=MeldingContent.model_validate(body, context={"stored": True}),
    )
    return RoutedMelding(
        melding_id=accepted.melding_id,
        consent_id="c-1",
        sender_org_id="10000001",
        status=RoutingStatus.new,
        accepted=accepted,
        requested_types=("jgz", "wijkteam"),
        unroutable_types=(),
        gemeente_code=None,
        created_at=AT,
        updated_at=AT,
    )


async def test_a_routed_melding_and_its_delivery_read_back_typed(unit_of_work: UnitOfWorkFactory) -> None:
    stored = melding(date(2027, 5, 1))
    delivery = DeliveryRecord(
        delivery_id=str(uuid.uuid4()),
        melding_id=stored.melding_id,
        org_id="87654321",
        org_name="GGD",
        recipient_type="jgz",
        status=DeliveryStatus.queued,
        message={"delivery_id": "x", "patient": {"bsn": "999999990"}},
        created_at=AT,
        updated_at=AT,
    )
    async with unit_of_work() as uow:
        await uow.routing.add_melding(stored)
        await uow.routing.add_delivery(delivery)
        await uow.routing.set_routed(
            [
                RoutingOutcome(
                    stored.melding_id,
                    RoutingStatus.waiting,
                    tuple(["wijkteam"]),
                    tuple([Skipped("jgz", SkipReason.route_map)]),
                    "GM0363",
                )
            ],
            AT,
        )
        await uow.commit()
    async with unit_of_work() as uow:
        found = await uow.routing.melding(stored.melding_id)
        assert found is not None and found.status is RoutingStatus.waiting
        assert found.requested_types == ("jgz", "wijkteam") and found.unroutable_types == ("wijkteam",)
        assert found.accepted == stored.accepted and found.gemeente_code == "GM0363"
        assert found.skipped_types == (Skipped("jgz", SkipReason.route_map),)
        assert [m.melding_id for m in await uow.routing.waiting()] == [stored.melding_id]
        assert await uow.routing.count_waiting() == 1
        got = await uow.routing.delivery(delivery.delivery_id)
        assert got == delivery
        assert got.bsn == "999999990" and got.document()["status"] == "queued"


async def test_retention_removes_personal_data_of_the_due_and_keeps_the_rest(unit_of_work: UnitOfWorkFactory) -> None:
    old, current = melding(date(2026, 1, 1)), melding(date(2027, 5, 1))
    async with unit_of_work() as uow:
        for m in (old, current):
            await uow.routing.add_melding(m)
        await uow.routing.add_delivery(
            DeliveryRecord(
                delivery_id=str(uuid.uuid4()),
                melding_id=old.melding_id,
                org_id="87654321",
                org_name="GGD",
                recipient_type="jgz",
                status=DeliveryStatus.received,
                message={"patient": {"bsn": "999999990"}},
                created_at=AT,
                updated_at=AT,
            )
        )
        await uow.commit()
    cutoff = date(2026, 6, 1)
    async with unit_of_work() as uow:
        assert await uow.routing.count_personal_data_due(cutoff) == 1
        [due] = await uow.routing.lock_personal_data_due(cutoff, 10)
        assert due.melding_id == old.melding_id
        await uow.routing.remove_personal_data(due, AT + timedelta(days=1))
        await uow.commit()
    async with unit_of_work() as uow:
        purged = await uow.routing.melding(old.melding_id)
        assert purged is not None and purged.accepted is None and purged.purged_at is not None
        [delivery] = await uow.routing.deliveries_of(old.melding_id)
        assert delivery.bsn is None and delivery.message["purged_at"] and delivery.status is DeliveryStatus.received
        assert (await uow.routing.melding(current.melding_id)).accepted is not None  # type: ignore[union-attr]
        assert await uow.routing.count_personal_data_due(cutoff) == 0


async def test_route_map_versions_round_trip_and_the_one_in_force_is_found(unit_of_work: UnitOfWorkFactory) -> None:
    from services.routing.domain.route_map import RecipientRule, RouteMap

    now_ = RouteMap(
        date(2026, 1, 1),
        {"jgz": RecipientRule(), "wijkteam": RecipientRule(frozenset({"huisvesting", "sociaal-netwerk"}), note=False)},
        {"regular": timedelta(days=10), "urgent": timedelta(hours=36)},
    )
    later = RouteMap(date(2027, 1, 1), {"jgz": RecipientRule()}, {"regular": timedelta(days=14)})
    async with unit_of_work() as uow:
        await uow.directory.save_gemeente(code="GM0363", name="Amsterdam", ranges=[], source="manual", at=AT)
        assert await uow.directory.save_route_map("GM0363", now_, AT) is True
        assert await uow.directory.save_route_map("GM0363", later, AT) is False
        await uow.directory.save_route_map("GM0363", later, AT)  # the same effective_from replaces it
        await uow.commit()
    async with unit_of_work() as uow:
        assert await uow.directory.route_maps("GM0363") == [now_, later]
        assert await uow.directory.route_maps_in_force("GM0363", date(2026, 12, 31)) == [now_]
        assert await uow.directory.route_maps_in_force("GM0363", date(2027, 1, 1)) == [later]
        assert await uow.directory.route_maps_in_force("GM0363", date(2025, 12, 31)) == []


# --- the recipients' queues: numbers under concurrency --------------------------------------------


async def _stage_and_commit(unit_of_work: UnitOfWorkFactory, orgs: list[str], *, fail: bool) -> None:
    async with unit_of_work() as uow:
        if len(orgs) == 3:  # the audit record staged first here, last in the others: its lock is taken last anyway
            uow.audit.record(ROUTING, "deliver", "delivery", "d-0", patient_bsn=None, request_id=None)
        for org_id in orgs:
            delivery_id = str(uuid.uuid4())
            reminder = MeldingReminder(delivery_id=delivery_id, melding_id="m-1", contact_due_at=AT)
            uow.recipients.stage(
                org_id, "melding.reminder", reminder, message_id=delivery_id, delivery_id=delivery_id,
                correlation_id="m-1", request_id=None,
            )  # fmt: skip
        uow.audit.record(ROUTING, "deliver", "delivery", "d-1", patient_bsn=None, request_id=None)
        if fail:
            raise RuntimeError("rolled back after staging")
        await uow.commit()


async def test_concurrent_transactions_number_each_organisations_messages_without_gaps_or_repeats(
    concurrent_units_of_work: UnitOfWorkFactory,
) -> None:
    """Transactions that stage for two organisations in opposite orders (and audit before or after), some
    rolled back, fired together
    (on PostgreSQL truly concurrent; SQLite serialises them): every organisation's numbers are 1..n, in
    commit order, with no deadlock and no number lost to a rollback."""
    first, second, rounds = "87654321", "wijkteam-centrum", 60
    plan = [([first, second] if i % 2 else [second, first, first], i % 7 == 3) for i in range(rounds)]
    results = await asyncio.gather(
        *(_stage_and_commit(concurrent_units_of_work, orgs, fail=fail) for orgs, fail in plan), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(f, RuntimeError) for f in failures), failures  # only the deliberate rollbacks
    committed = [orgs for orgs, fail in plan if not fail]
    async with concurrent_units_of_work() as uow:
        for org_id in (first, second):
            logged = await uow.routing.recipient_messages_after(org_id, 0, 10_000)
            expected = sum(orgs.count(org_id) for orgs in committed)
            assert [m.sequence for m, _ in logged] == list(range(1, expected + 1))
            bodies = {m.message_id: m.body["sequence"] for m, _ in logged}
            assert bodies == {m.message_id: m.sequence for m, _ in logged}  # the body carries its number
        staged = (await uow.session.execute(select(outbox.c.id, outbox.c.created_at))).all()
        assert len(staged) == sum(len(orgs) for orgs in committed)  # each numbered message is in the outbox
