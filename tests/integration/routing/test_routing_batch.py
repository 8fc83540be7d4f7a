"""Routing a batch of meldingen on the run's real database: set-based (the statements a batch costs do not grow
with its size), and the same outcome as routing them one by one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from stdnum.nl import bsn as bsn_numbers

from services.routing.adapters.orm import deliveries
from services.routing.domain.model import Pc4Range, RoutingStatus
from services.routing.service_layer import events
from services.routing.service_layer.unit_of_work import UnitOfWorkFactory, unit_of_work_factory
from shared.contracts.consent import ConsentScope
from shared.contracts.melding import MeldingAccepted, MeldingContent, Sender
from shared.db import Database
from shared.messaging.consumer import IncomingEvent
from tests.integration.routing.test_repository import AT
from tests.samples import melding_body
from tests.support import compiled_again, counted_statements

JGZ, WIJKTEAM = "87654321", "12345678"


@pytest.fixture
def database(rolled_back_routing: Database) -> Database:
    return rolled_back_routing


@pytest.fixture
async def unit_of_work(database: Database) -> UnitOfWorkFactory:
    """Routing's units of work with a directory: Amsterdam (1011 and up), its JGZ (the whole gemeente) and a
    wijkteam (by postcode range)."""
    factory = unit_of_work_factory(database)
    async with factory() as uow:
        await uow.directory.save_gemeente(
            code="GM0363", name="Amsterdam", ranges=[Pc4Range("1000", "1109")], source="manual", at=AT
        )
        await uow.directory.save_organisation(
            org_id=JGZ, name="GGD JGZ", org_type="jgz", active=True, gemeente_codes=["GM0363"], ranges=[], at=AT
        )
        await uow.directory.save_organisation(
            org_id=WIJKTEAM,
            name="Wijkteam Centrum",
            org_type="wijkteam",
            active=True,
            gemeente_codes=[],
            ranges=[Pc4Range("1011", "1019")],
            at=AT,
        )
        await uow.commit()
    return factory


def _bsns() -> Iterator[str]:
    for base in range(10_000_000, 99_999_999):
        for check in range(10):
            if bsn_numbers.is_valid(number := f"{base}{check}"):
                yield number


def _accepted(bsn: str, sender: str) -> MeldingAccepted:
    body = melding_body("c", bsn=bsn, recipient_types=["jgz", "wijkteam"])
    consent_id = str(uuid.uuid4())
    body.pop("consent_id")
    return MeldingAccepted(
        melding_id=str(uuid.uuid4()),
        accepted_at=AT,
        sender=Sender(org_id=sender, org_type="verloskundige", sub="u"),
        consent=ConsentScope(id=consent_id, recipient_types=["jgz", "wijkteam"], valid_until=date(2099, 1, 1)),
        content=MeldingContent.model_validate(body, context={"stored": True}),
    )


def _batch(patients: Iterator[str]) -> list[MeldingAccepted]:
    """Eight meldingen: two of them the same patient's pregnancy sent by two organisations."""
    shared_patient = next(patients)
    batch = [_accepted(next(patients), "10000001") for _ in range(6)]
    return [_accepted(shared_patient, "10000001"), *batch, _accepted(shared_patient, "10000002")]


def _event(accepted: MeldingAccepted) -> IncomingEvent[Any]:
    return IncomingEvent(str(uuid.uuid4()), "melding.accepted", accepted)


async def _route(unit_of_work: UnitOfWorkFactory, batch: list[MeldingAccepted]) -> None:
    async with unit_of_work() as uow:
        await events.on_meldingen_accepted(uow, [_event(accepted) for accepted in batch])
        await uow.commit()


async def _outcome(unit_of_work: UnitOfWorkFactory, batch: list[MeldingAccepted]) -> list[Any]:
    """Per melding: its status and, per delivery, the recipient and how many related deliveries it names."""
    out = []
    async with unit_of_work() as uow:
        stored = await uow.routing.meldingen_by_id([a.melding_id for a in batch])
        made = await uow.routing.deliveries_of_meldingen([a.melding_id for a in batch])
        for accepted in batch:
            its = [
                (d.org_id, d.recipient_type, len(d.message["related_deliveries"])) for d in made[accepted.melding_id]
            ]
            out.append((stored[accepted.melding_id].status, its))
    return out


async def test_a_batch_costs_the_statements_of_one_melding(unit_of_work: UnitOfWorkFactory, database: Database) -> None:
    patients = _bsns()
    await _route(unit_of_work, [_accepted(next(patients), "10000001")])  # the process learns its audit head
    with counted_statements(database) as one:
        await _route(unit_of_work, [_accepted(next(patients), "10000001")])
    with counted_statements(database) as eight:
        await _route(unit_of_work, _batch(patients))
    assert len(one) > 5, one  # it was counted
    assert len(eight) == len(one), (one, eight)


async def test_a_batch_sends_only_statements_sqlalchemy_has_compiled_before(
    unit_of_work: UnitOfWorkFactory, database: Database
) -> None:
    """A second batch of the same size compiles nothing: every statement has a cache key (one holding its
    rows, as the consent locks and the audit append did, was compiled again for every batch)."""
    patients = _bsns()
    await _route(unit_of_work, _batch(patients))
    with compiled_again(database) as compiled:
        await _route(unit_of_work, _batch(patients))
    assert compiled == [], compiled


async def test_a_batch_routes_as_its_meldingen_one_by_one_would(unit_of_work: UnitOfWorkFactory) -> None:
    patients = _bsns()
    together, alone = _batch(patients), _batch(patients)
    await _route(unit_of_work, together)
    for accepted in alone:
        await _route(unit_of_work, [accepted])

    assert await _outcome(unit_of_work, together) == await _outcome(unit_of_work, alone)
    routed = await _outcome(unit_of_work, together)
    assert all(status is RoutingStatus.routed for status, _ in routed)
    assert routed[0][1] == [(JGZ, "jgz", 0), (WIJKTEAM, "wijkteam", 0)]
    # The same pregnancy from a second sender, in the same batch: its recipients see the first one's delivery.
    assert routed[-1][1] == [(JGZ, "jgz", 1), (WIJKTEAM, "wijkteam", 1)]


async def test_the_same_melding_twice_in_a_batch_is_routed_once(unit_of_work: UnitOfWorkFactory) -> None:
    accepted = _accepted(next(_bsns()), "10000001")
    async with unit_of_work() as uow:
        await events.on_meldingen_accepted(uow, [_event(accepted), _event(accepted)])
        await uow.commit()
    async with unit_of_work() as uow:
        rows = (await uow.session.execute(select(deliveries.c.recipient_type))).scalars().all()
    assert sorted(rows) == ["jgz", "wijkteam"]
