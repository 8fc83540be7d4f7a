"""The melding repository on the run's real database: rows in, domain objects out, nothing lost between.

The tests that take `unit_of_work` run twice: on the in-memory fake the unit tests use
(tests/unit/melding/fakes.py) and on the real repository, each test's writes rolled back at its end. mypy holds
both to the use cases' Protocol (services/melding/service_layer/ports.py), these tests hold them to one
behaviour. The tests that take `real_unit_of_work` read what only the database has (SQL of its own, figures)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from services.melding.adapters.orm import meldingen
from services.melding.domain.model import Delivery, GemeenteRef, MeldingStatus, RoutingReport, SenderRef, SkippedRef
from services.melding.service_layer.ports import MeldingTransaction
from services.melding.service_layer.unit_of_work import UnitOfWorkFactory, unit_of_work_factory
from shared.clock import start_of_nl_day
from shared.contracts.vocabulary import DeliveryStatus
from shared.db import Database
from tests.unit.melding.fakes import FakeMeldingUnitOfWork

AT = datetime(2026, 12, 1, 10, tzinfo=UTC)
CONTENT = {
    "patient": {"bsn": "999999990", "name": {"given": "Sanne", "family": "de Vries"}},
    "pregnancy": {"expected_due_date": "2027-05-01"},
    "risk_domains": ["verslaving"],
    "recipient_types": ["jgz", "wijkteam"],
    "urgency": "regular",
    "note": "n",
}


Transactions = Callable[[], MeldingTransaction]


@pytest.fixture(params=["fake", "real"])
async def unit_of_work(request: pytest.FixtureRequest, rolled_back_melding: Database) -> AsyncIterator[Transactions]:
    """The fake's units of work (each sees the one store) or the real ones, typed as the use cases' Protocol:
    this is where mypy holds the fake and the real repository to it."""
    if request.param == "fake":
        fake: Transactions = FakeMeldingUnitOfWork()  # the fake unit of work is its own factory
        yield fake
        return
    real: Transactions = unit_of_work_factory(rolled_back_melding)
    yield real


@pytest.fixture
def real_unit_of_work(rolled_back_melding: Database) -> UnitOfWorkFactory:
    return unit_of_work_factory(rolled_back_melding)


async def _add(uow: MeldingTransaction, melding_id: str = "m-1") -> None:
    await uow.meldingen.add(
        melding_id=melding_id,
        sender=SenderRef("10000001", "verloskundige", "m.jansen"),
        consent={"id": "c-1", "recipient_types": ["jgz", "wijkteam"], "valid_until": "2027-12-31"},
        content=CONTENT,
        at=AT,
    )


async def test_a_melding_reads_back_as_it_was_written_and_its_state_moves_with_the_model(
    unit_of_work: Transactions,
) -> None:
    async with unit_of_work() as uow:
        await _add(uow)
        await uow.commit()
    async with unit_of_work() as uow:
        melding = await uow.meldingen.lock("m-1")
        assert melding is not None and melding.status is MeldingStatus.accepted and melding.deliveries == {}
        status = melding.report_delivery("d-1", DeliveryStatus.queued)
        assert status is DeliveryStatus.queued
        await uow.meldingen.add_deliveries([("m-1", Delivery("d-1", "87654321", "GGD", "jgz", status, AT, ("lvb",)))])
        report = RoutingReport(
            "m-1", GemeenteRef("GM0363", "Amsterdam"), ["wijkteam"], [SkippedRef("jgz", "route-map")]
        )
        await uow.meldingen.set_routing([report], AT)
        await uow.meldingen.save(melding, AT + timedelta(seconds=1))
        await uow.commit()
    async with unit_of_work() as uow:
        record = await uow.meldingen.get("m-1")
        assert record is not None and record.status is MeldingStatus.delivered
        assert record.content == CONTENT and record.sender.org_type == "verloskundige"
        assert record.gemeente == GemeenteRef("GM0363", "Amsterdam") and record.unroutable_types == ("wijkteam",)
        assert record.skipped_types == (SkippedRef("jgz", "route-map"),)
        assert record.updated_at == AT + timedelta(seconds=1)
        [delivery] = (await uow.meldingen.deliveries(["m-1"]))["m-1"]
        assert delivery.status is DeliveryStatus.queued and delivery.risk_domains == ("lvb",)
        again = await uow.meldingen.lock("m-1")
        assert again is not None and again.deliveries == {"d-1": DeliveryStatus.queued}


async def test_removing_personal_data_leaves_the_skeleton_and_is_due_only_once(
    unit_of_work: Transactions,
) -> None:
    async with unit_of_work() as uow:
        await _add(uow)
        await uow.meldingen.record_withdrawal("c-1", AT)
        [melding] = await uow.meldingen.lock_not_withdrawn("c-1")
        melding.withdraw(AT)
        await uow.meldingen.save(melding, AT)
        await uow.commit()
    cutoff = AT.date()
    async with unit_of_work() as uow:
        assert (await uow.meldingen.lock_consent("c-1")).withdrawn_at == AT
        assert await uow.meldingen.count_personal_data_due(cutoff) == 1
        assert await uow.meldingen.lock_personal_data_due(cutoff, 10) == ["m-1"]
        assert await uow.meldingen.remove_personal_data("m-1", AT) == CONTENT
        assert await uow.meldingen.remove_personal_data("m-1", AT) is None
        await uow.commit()
    async with unit_of_work() as uow:
        record = await uow.meldingen.get("m-1")
        assert record is not None and record.content is None and record.purged_at == AT
        assert record.skeleton == {k: CONTENT[k] for k in ("pregnancy", "risk_domains", "recipient_types", "urgency")}
        assert await uow.meldingen.count_personal_data_due(cutoff) == 0
        assert await uow.meldingen.lock_not_withdrawn("c-1") == []


async def test_removing_personal_data_leaves_not_even_the_keyed_hash_of_the_bsn(
    real_unit_of_work: UnitOfWorkFactory,
) -> None:
    """The skeleton is anonymous, not a pseudonym."""
    async with real_unit_of_work() as uow:
        await _add(uow)
        assert (await uow.session.execute(select(meldingen.c.bsn_ref))).scalar_one() is not None
        assert await uow.meldingen.remove_personal_data("m-1", AT) == CONTENT
        assert (await uow.session.execute(select(meldingen.c.bsn_ref))).scalar_one() is None


async def test_figure_facts_are_the_skeletons_of_the_range_on_dutch_days(real_unit_of_work: UnitOfWorkFactory) -> None:
    """23:30 UTC on 31 January is 1 February in the Netherlands: it counts in February."""
    edge = datetime(2027, 1, 31, 23, 30, tzinfo=UTC)
    async with real_unit_of_work() as uow:
        march = datetime(2027, 3, 1, tzinfo=UTC)  # 01:00 on 1 March in the Netherlands
        for melding_id, at in (("jan", edge - timedelta(hours=1)), ("feb", edge), ("mar", march)):
            await uow.meldingen.add(
                melding_id=melding_id,
                sender=SenderRef("10000001", "huisarts", "h.de.boer"),
                consent={"id": f"c-{melding_id}", "recipient_types": ["jgz"], "valid_until": "2027-12-31"},
                content=CONTENT,
                at=at,
            )
            await uow.meldingen.set_routing([RoutingReport(melding_id, GemeenteRef("GM0363", "Amsterdam"), [], [])], at)
        due = datetime(2027, 2, 14, 22, 59, tzinfo=UTC)  # 23:59 on 14 February in the Netherlands
        delivery = Delivery("d-feb", "87654321", "GGD", "jgz", DeliveryStatus.closed, edge, contact_due_at=due,
                            contact_at=date(2027, 2, 3), outcome="phb-done")  # fmt: skip
        await uow.meldingen.add_deliveries([("feb", delivery)])
        await uow.meldingen.remove_personal_data("feb", edge)  # counted after the purge all the same
        await uow.commit()
    since, before = start_of_nl_day(date(2027, 2, 1)), start_of_nl_day(date(2027, 3, 1))
    async with real_unit_of_work() as uow:
        [feb] = await uow.meldingen.figure_facts(since, before, "GM0363")
        assert await uow.meldingen.figure_facts(since, before, "GM0599") == []
        assert await uow.meldingen.gemeente_names(["GM0363", "GM0599"]) == {"GM0363": "Amsterdam"}
    assert feb.created_on == date(2027, 2, 1) and feb.sender_type == "huisarts" and feb.gemeente_code == "GM0363"
    assert feb.risk_domains == ("verslaving",) and feb.recipient_types == ("jgz", "wijkteam")
    [answered] = feb.deliveries
    assert answered.contact_due_on == date(2027, 2, 14) and answered.contact_at == date(2027, 2, 3)
    assert answered.outcome == "phb-done" and feb.contact_in_time(date(2027, 3, 1)) is True


async def test_a_page_of_meldingen_is_filtered_by_status_and_last_change_before_it_is_cut(
    unit_of_work: Transactions,
) -> None:
    async with unit_of_work() as uow:
        for number in range(6):
            await _add(uow, f"m-{number}")
        for number in (0, 2, 4):  # cancelled later: changed at AT + 1 h
            melding = await uow.meldingen.lock(f"m-{number}")
            assert melding is not None and melding.cancel(AT + timedelta(hours=1), "sent-in-error")
            await uow.meldingen.save(melding, AT + timedelta(hours=1))
        await uow.commit()
    async with unit_of_work() as uow:
        cancelled = await uow.meldingen.page_for_sender(
            org_id="10000001", statuses=frozenset({MeldingStatus.cancelled}), cursor=None, limit=2
        )
        either = await uow.meldingen.page_for_sender(
            org_id="10000001",
            statuses=frozenset({MeldingStatus.cancelled, MeldingStatus.accepted}),
            cursor=None,
            limit=10,
        )
        changed = await uow.meldingen.page_for_sender(
            org_id="10000001", updated_since=AT + timedelta(minutes=30), cursor=None, limit=2
        )
        none_since = await uow.meldingen.page_for_sender(
            org_id="10000001", updated_since=AT + timedelta(hours=2), cursor=None, limit=2
        )
    # limit + 1 rows, all of them matches: the page is full unless it is the last
    assert len(cancelled) == 3 and {r.status for r in cancelled} == {MeldingStatus.cancelled}
    assert len(either) == 6
    assert sorted(r.id for r in changed) == ["m-0", "m-2", "m-4"]
    assert none_since == []
