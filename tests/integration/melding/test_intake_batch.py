"""Intake in batches on the run's real database (SQLite and PostgreSQL alike): meldingen sent together are
stored in one transaction at the cost of one, and each is still decided on its own — a replay, a refusal and a
repeat in a batch answer as they would alone, store nothing and leave the others stored."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from stdnum.nl import bsn as bsn_numbers

from services.melding.adapters.orm import idempotency_keys, meldingen
from services.melding.domain.model import AskConsentService
from services.melding.service_layer import handlers
from services.melding.service_layer.intake import Intake, NewRequest, Sent, store_batch
from services.melding.service_layer.ports import TransactionFactory
from services.melding.service_layer.unit_of_work import unit_of_work_factory
from shared.contracts.events import ConsentHeartbeat, ConsentRecorded
from shared.contracts.melding import MeldingContent
from shared.db import Database
from shared.errors import ConsentRequired, IdempotencyConflict, RepeatedMelding
from shared.idempotency import IdempotentRequest
from shared.messaging.consumer import IncomingEvent
from tests.samples import melding_body
from tests.support import counted_statements
from tests.unit.fakes import FakeConsentClient, principal
from tests.unit.melding.test_handlers import ALLOWED

SENDER = principal()
LAG = timedelta(seconds=60)


def _bsns() -> Iterator[str]:
    for base in range(20_000_000, 99_999_999):
        for check in range(10):
            if bsn_numbers.is_valid(number := f"{base}{check}"):
                yield number


async def _consents(unit_of_work: TransactionFactory, patients: dict[str, str], org_id: str = SENDER.org_id) -> None:
    """A consent per patient (consent id → BSN) on the melding service's record, and a current feed."""
    async with unit_of_work() as uow:
        recorded = [
            IncomingEvent(
                f"recorded:{consent_id}",
                "consent.recorded",
                ConsentRecorded(
                    consent_id=consent_id,
                    org_id=org_id,
                    patient_ref=uow.meldingen.patient_ref(bsn),
                    recipient_types=["jgz", "wijkteam"],
                    risk_domains=None,
                    informed_about=["purpose"],
                    valid_until=date(2027, 12, 31),
                    recorded_at=datetime.now(UTC),
                ),
            )
            for consent_id, bsn in patients.items()
        ]
        await handlers.on_consents_recorded(uow, recorded)
        beat = ConsentHeartbeat(at=datetime.now(UTC))
        await handlers.on_consent_heartbeats(uow, [IncomingEvent(f"hb:{beat.at}", "consent.heartbeat", beat)])
        await uow.commit()


def _new(consent_id: str, bsn: str, key: str | None = None, fingerprint: str = "f", **body: object) -> NewRequest:
    content = melding_body(consent_id, bsn=bsn, **body)
    content.pop("consent_id")
    return NewRequest(
        principal=SENDER,
        consent_id=consent_id,
        content=MeldingContent.model_validate(content),
        request=None if key is None else IdempotentRequest(SENDER.org_id, key, fingerprint, status_code=202),
        request_id=None,
        max_lag=LAG,
    )


async def _count(database: Database, table: object) -> int:
    async with database.unit_of_work() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_a_batch_of_eight_costs_the_statements_of_a_batch_of_one(rolled_back_melding: Database) -> None:
    unit_of_work = unit_of_work_factory(rolled_back_melding)
    bsns = _bsns()
    patients = {f"c-{n}": next(bsns) for n in range(10)}
    await _consents(unit_of_work, patients)
    requests = [_new(c, bsn, key=f"k-{c}") for c, bsn in patients.items()]
    await store_batch(unit_of_work, requests[:1])  # the audit chain's first record costs its genesis
    costs = []
    for batch in (requests[1:2], requests[2:]):
        with counted_statements(rolled_back_melding) as statements:
            outcomes = await store_batch(unit_of_work, batch)
        assert all(isinstance(o, Sent) for o in outcomes), outcomes
        costs.append([s for s in statements if s not in ("SAVEPOINT", "RELEASE")])
    assert costs[0] == costs[1], costs
    assert await _count(rolled_back_melding, meldingen) == 10
    assert await _count(rolled_back_melding, idempotency_keys) == 10


async def test_each_melding_of_a_batch_is_answered_as_it_would_be_alone(rolled_back_melding: Database) -> None:
    unit_of_work = unit_of_work_factory(rolled_back_melding)
    bsns = _bsns()
    patients = {f"c-{n}": next(bsns) for n in range(5)}
    await _consents(unit_of_work, patients)
    [first] = await store_batch(unit_of_work, [_new("c-0", patients["c-0"], key="stored")])
    [repeated_first] = await store_batch(unit_of_work, [_new("c-4", patients["c-4"])])
    assert isinstance(first, Sent) and isinstance(repeated_first, Sent)
    batch = [
        _new("c-0", patients["c-0"], key="stored"),  # a retry: its first melding again
        _new("c-0", patients["c-0"], key="stored-elsewhere", fingerprint="g"),  # fine: a new key, but c-0's patient
        _new("c-1", patients["c-1"], key="reused", fingerprint="other"),  # its key is taken by another request below
        _new("c-2", patients["c-3"], key="wrong-patient"),  # the consent is another patient's: refused
        _new("c-unknown", patients["c-3"], key="unknown"),  # a consent the record has not heard of: ask
        _new("c-4", patients["c-4"], key="repeat"),  # an open melding for her already: 409
        _new("c-1", patients["c-1"], key="good"),  # stored
    ]
    async with unit_of_work() as uow:  # "reused" was used before with another body
        await uow.idempotency.remember_all([(IdempotentRequest(SENDER.org_id, "reused", "f", 202), "x" * 36)])
        await uow.commit()
    outcomes = await store_batch(unit_of_work, batch)
    assert isinstance(outcomes[0], Sent) and outcomes[0].melding.record.id == first.melding.record.id
    assert isinstance(outcomes[1], RepeatedMelding)  # the same patient: her open melding is found
    assert isinstance(outcomes[2], IdempotencyConflict)
    assert isinstance(outcomes[3], ConsentRequired)
    assert isinstance(outcomes[4], AskConsentService)
    assert isinstance(outcomes[5], RepeatedMelding)
    assert isinstance(outcomes[6], Sent)
    # Stored: the two before and the good one; the refused ones' keys went back: a retry is decided afresh.
    assert await _count(rolled_back_melding, meldingen) == 3
    async with unit_of_work() as uow:
        taken = await uow.idempotency.remember_all(
            [(IdempotentRequest(SENDER.org_id, key, "f", 202), key) for key in ("wrong-patient", "unknown", "repeat")]
        )
    assert taken == {"wrong-patient", "unknown", "repeat"}


async def test_concurrent_meldingen_share_transactions_and_each_gets_its_own_melding(
    rolled_back_melding: Database,
) -> None:
    unit_of_work = unit_of_work_factory(rolled_back_melding)
    bsns = _bsns()
    patients = {f"c-{n}": next(bsns) for n in range(24)}
    await _consents(unit_of_work, patients)
    intake = Intake(unit_of_work, max_size=8, concurrency=1)

    async def send(consent_id: str, key: str) -> str:
        sent = await handlers.send_melding(
            intake,
            FakeConsentClient(ALLOWED),
            principal=SENDER,
            consent_id=consent_id,
            content=_new(consent_id, patients[consent_id]).content,
            idempotency_key=key,
            request_fingerprint="f",
            request_id=None,
            consent_max_lag=LAG,
        )
        return sent.melding.record.id

    # Each melding sent twice at once with one key (an EHR's retry): one melding each, both answers alike.
    ids = await asyncio.gather(*(send(c, f"k-{c}") for c in patients for _ in range(2)))
    assert len(set(ids)) == 24 and all(ids[2 * n] == ids[2 * n + 1] for n in range(24))
    assert await _count(rolled_back_melding, meldingen) == 24
    assert max(intake.batch_sizes) > 1 and sum(intake.batch_sizes) == 48
    assert len(intake.batch_sizes) < 48


@pytest.mark.parametrize("repeat", range(5))
async def test_two_meldingen_for_one_patient_sent_at_once_store_one(rolled_back_melding: Database, repeat: int) -> None:
    """The race of two EHR requests for one patient and overlapping recipient types, fired again and again: one
    is stored and the other is 409, never both."""
    unit_of_work = unit_of_work_factory(rolled_back_melding)
    bsn = list(zip(range(repeat + 1), _bsns(), strict=False))[-1][1]
    await _consents(unit_of_work, {"c-a": bsn, "c-b": bsn})
    intake = Intake(unit_of_work)
    outcomes = await asyncio.gather(
        *(intake.store(_new(c, bsn)) for c in ("c-a", "c-b") for _ in range(4)), return_exceptions=True
    )
    assert sum(isinstance(o, Sent) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, RepeatedMelding) for o in outcomes) == 7, outcomes
    assert await _count(rolled_back_melding, meldingen) == 1
