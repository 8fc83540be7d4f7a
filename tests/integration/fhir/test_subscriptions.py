"""The facade's subscriptions on the run's real database: each change of a sender's melding becomes one
notification per active Subscription, numbered 1, 2, 3, … without a gap or a repeat — however many
consumers (replicas) handle changes at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from services.fhir.adapters.orm import notifications
from services.fhir.domain.subscription import SubscriptionRequest
from services.fhir.service_layer.handlers import on_meldingen_changed
from services.fhir.service_layer.unit_of_work import UnitOfWorkFactory, unit_of_work_factory
from shared.contracts.melding import MELDING_CHANGED, MeldingChanged
from shared.messaging.consumer import IncomingEvent
from tests.support import RunEnvironment, empty_tables

AT = datetime(2026, 12, 2, 9, tzinfo=UTC)
SENDER = "10000001"


@pytest.fixture
async def unit_of_work(environment: RunEnvironment) -> AsyncIterator[UnitOfWorkFactory]:
    database = environment.database(environment.database_urls["fhir"])
    await empty_tables(database)
    yield unit_of_work_factory(database)
    await database.dispose()


async def _subscribe(unit_of_work: UnitOfWorkFactory, org_id: str = SENDER) -> str:
    async with unit_of_work() as uow:
        view = await uow.subscriptions.add(
            subscription_id=str(uuid.uuid4()),
            org_id=org_id,
            request=SubscriptionRequest("https://ehr.example.nl/notify", ["Authorization: Bearer x"], None, "r"),
            created_by="u",
            at=AT,
        )
        await uow.commit()
    return view.id


def _changed(org_id: str = SENDER) -> IncomingEvent[MeldingChanged]:
    changed = MeldingChanged(melding_id=str(uuid.uuid4()), sender_org_id=org_id, status="delivered", at=AT)
    return IncomingEvent(message_id=str(uuid.uuid4()), type=MELDING_CHANGED, message=changed)


async def _apply(unit_of_work: UnitOfWorkFactory, *events: IncomingEvent[MeldingChanged]) -> None:
    for attempt in range(50):  # SQLite: a writer that finds the database locked tries again
        try:
            async with unit_of_work() as uow:
                await on_meldingen_changed(uow, list(events))
                await uow.commit()
            return
        except Exception as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            await asyncio.sleep(0.05)


async def test_concurrent_changes_are_numbered_per_subscription_without_gaps_or_repeats(
    unit_of_work: UnitOfWorkFactory,
) -> None:
    ours = [await _subscribe(unit_of_work) for _ in range(2)]
    theirs = await _subscribe(unit_of_work, org_id="20000002")
    events = [_changed() for _ in range(40)]
    for _ in range(3):  # the race, fired again and again
        await asyncio.gather(*(_apply(unit_of_work, event) for event in events))
    async with unit_of_work() as uow:
        rows = (await uow.session.execute(select(notifications.c.subscription_id, notifications.c.event_number))).all()
        for subscription_id in ours:
            numbers = sorted(r.event_number for r in rows if r.subscription_id == subscription_id)
            assert numbers == list(range(1, 121)), "a gap or a repeat in one subscription's event numbers"
            view = await uow.subscriptions.get(subscription_id, SENDER)
            assert view is not None and view.events == 120
        assert not [r for r in rows if r.subscription_id == theirs]  # another sender's changes are not theirs


async def test_concurrent_batches_of_changes_are_numbered_in_each_batchs_order_without_gaps_or_repeats(
    unit_of_work: UnitOfWorkFactory,
) -> None:
    ours = [await _subscribe(unit_of_work) for _ in range(2)]
    theirs = await _subscribe(unit_of_work, org_id="20000002")
    rounds = []
    for _ in range(3):  # the race, fired again and again
        # Batches as a consumer takes them: ours and theirs mixed, of several sizes, applied side by side.
        events = [_changed() if n % 3 else _changed("20000002") for n in range(25)]
        batches = [events[0:1], events[1:3], events[3:8], events[8:16], events[16:25]]
        rounds.append(batches)
        await asyncio.gather(*(_apply(unit_of_work, *batch) for batch in batches))
    async with unit_of_work() as uow:
        query = select(notifications.c.subscription_id, notifications.c.task_id, notifications.c.event_number)
        number_of = {(r.subscription_id, r.task_id): r.event_number for r in await uow.session.execute(query)}
    for subscription_id, org_id in ((ours[0], SENDER), (ours[1], SENDER), (theirs, "20000002")):
        batches_of_org = [
            [e.message.melding_id for e in batch if e.message.sender_org_id == org_id]
            for batches in rounds
            for batch in batches
        ]
        numbers = sorted(n for (s, _), n in number_of.items() if s == subscription_id)
        assert numbers == list(range(1, sum(map(len, batches_of_org)) + 1)), "a gap or a repeat in the numbers"
        for melding_ids in batches_of_org:  # a batch's numbers are taken together, in its order
            got = [number_of[subscription_id, melding_id] for melding_id in melding_ids]
            assert got == list(range(got[0], got[0] + len(got)) if got else [])


async def test_a_late_failure_report_does_not_undo_a_notification_another_notifier_sent(
    unit_of_work: UnitOfWorkFactory,
) -> None:
    """Two notifiers after a lease ran out: the one that sent marks it sent; the slow one's failure report,
    arriving later, leaves it sent (it would otherwise be offered to the endpoint again)."""
    from datetime import timedelta

    subscription_id = await _subscribe(unit_of_work)
    await _apply(unit_of_work, _changed())
    async with unit_of_work() as uow:
        taken, _ = await uow.subscriptions.claim(subscription_id, AT, timedelta(seconds=30), 10)
        await uow.commit()
    async with unit_of_work() as uow:
        await uow.subscriptions.sent(subscription_id, [e.number for e in taken], AT + timedelta(seconds=40))
        await uow.subscriptions.failed(
            subscription_id, taken[0].number, attempts=1, error="timeout", retry_at=AT + timedelta(minutes=1)
        )
        await uow.commit()
    async with unit_of_work() as uow:
        row = (await uow.session.execute(select(notifications))).one()
        assert row.sent_at is not None and row.attempts == 0 and row.last_error is None
        claimed, _ = await uow.subscriptions.claim(subscription_id, AT + timedelta(hours=1), timedelta(seconds=30), 10)
        assert claimed == []  # nothing is offered again


async def test_a_burst_of_subscriptions_at_once_stops_at_the_organisations_limit(
    unit_of_work: UnitOfWorkFactory, environment: RunEnvironment
) -> None:
    from services.fhir.domain.outcome import FhirError
    from services.fhir.service_layer.handlers import create_subscription
    from shared.auth import Principal
    from tests.conftest import service_settings

    database_url = environment.database_urls["fhir"]
    settings = service_settings(environment, "fhir", database_url, subscriptions_per_organisation=3)
    caller = Principal(sub="u", org_id=SENDER, org_type="verloskundige", scopes=frozenset({"melding:read"}))
    resource = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "onze meldingen volgen",
        "criteria": f"Task?requester:identifier=http://fhir.nl/fhir/NamingSystem/ura|{SENDER}",
        "channel": {"type": "rest-hook", "endpoint": "https://ehr.example.nl/notify"},
    }

    async def create() -> int:
        try:
            await create_subscription(unit_of_work, resource, principal=caller, settings=settings, request_id=None)
        except FhirError as refused:
            return refused.status
        return 201

    for _ in range(5):  # the race, fired again and again
        async with unit_of_work() as uow:
            for subscription_id in await uow.subscriptions.active_for(SENDER):
                await uow.subscriptions.delete(subscription_id, SENDER)
            await uow.commit()
        answers = await asyncio.gather(*(create() for _ in range(12)))
        assert sorted(answers) == [201] * 3 + [422] * 9
        async with unit_of_work() as uow:
            assert len(await uow.subscriptions.active_for(SENDER)) == 3
