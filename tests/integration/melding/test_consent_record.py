"""The melding service's record of consents on the run's real database (SQLite and PostgreSQL alike): what
`consent.recorded` and the heartbeats leave, read with the consent's lock in one statement; and intake on it
costs no more statements than intake did with the consent service's answer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.melding.domain.model import RecordedConsent
from services.melding.service_layer import handlers
from services.melding.service_layer.intake import Intake
from services.melding.service_layer.unit_of_work import unit_of_work_factory
from shared.contracts.events import ConsentHeartbeat, ConsentRecorded
from shared.contracts.melding import MeldingContent
from shared.db import Database
from shared.messaging.consumer import IncomingEvent
from tests.samples import BSN, melding_body
from tests.support import compiled_again, counted_statements
from tests.unit.fakes import FakeConsentClient, principal
from tests.unit.melding.test_handlers import ALLOWED

SENDER = principal().org_id
OTHER_BSN = "111222333"


def _recorded(consent_id: str, patient_ref: str, **changes: object) -> IncomingEvent[ConsentRecorded]:
    fields: dict[str, object] = {
        "consent_id": consent_id,
        "org_id": SENDER,
        "patient_ref": patient_ref,
        "recipient_types": ["jgz", "wijkteam"],
        "risk_domains": ["verslaving", "financien-schulden"],
        "informed_about": ["purpose"],
        "valid_until": date(2027, 12, 31),
        "recorded_at": datetime.now(UTC),
    }
    message = ConsentRecorded.model_validate(fields | changes)
    return IncomingEvent(message_id=f"recorded:{consent_id}", type="consent.recorded", message=message)


def _beat(at: datetime) -> IncomingEvent[ConsentHeartbeat]:
    return IncomingEvent(message_id=f"hb:{at}", type="consent.heartbeat", message=ConsentHeartbeat(at=at))


async def test_the_record_and_the_feed_are_read_with_the_consents_lock_and_a_withdrawal_stays(
    rolled_back_melding: Database,
) -> None:
    unit_of_work = unit_of_work_factory(rolled_back_melding)
    heard = datetime.now(UTC).replace(microsecond=0)
    async with unit_of_work() as uow:
        ref = uow.meldingen.patient_ref(BSN)
        assert (await uow.meldingen.lock_consent("c-1")).heard_at is None  # never heard: nothing to decide on
        await uow.meldingen.record_withdrawal("c-2", heard)  # a withdrawal that overtook its consent's record
        await handlers.on_consents_recorded(uow, [_recorded("c-1", ref), _recorded("c-2", ref)])
        # Two heartbeats in one batch, and an older one after them: the feed only moves forward.
        await handlers.on_consent_heartbeats(uow, [_beat(heard - timedelta(seconds=2)), _beat(heard)])
        await handlers.on_consent_heartbeats(uow, [_beat(heard - timedelta(seconds=5))])
        await uow.commit()
    async with unit_of_work() as uow:
        with counted_statements(rolled_back_melding) as statements:
            state = await uow.meldingen.lock_consent("c-1")
        withdrawn = await uow.meldingen.lock_consent("c-2")
    # The lock, the record and the feed: one round trip (the fixture's savepoint aside).
    assert [s for s in statements if s != "SAVEPOINT"] == ["INSERT"]
    assert state.heard_at == heard and state.withdrawn_at is None
    assert state.recorded == RecordedConsent(
        org_id=SENDER,
        patient_ref=ref,
        recipient_types=("jgz", "wijkteam"),
        risk_domains=("verslaving", "financien-schulden"),
        informed_about=("purpose",),
        valid_until=date(2027, 12, 31),
    )
    assert withdrawn.withdrawn_at == heard and withdrawn.recorded is not None


async def test_intake_on_a_current_record_asks_no_one_and_costs_no_more_statements(
    rolled_back_melding: Database,
) -> None:
    unit_of_work = unit_of_work_factory(rolled_back_melding)
    patients = {"c-own": BSN, "c-asked": OTHER_BSN}  # one open melding per patient: two patients
    async with unit_of_work() as uow:
        records = [_recorded(c, uow.meldingen.patient_ref(bsn)) for c, bsn in patients.items()]
        await handlers.on_consents_recorded(uow, records)
        await handlers.on_consent_heartbeats(uow, [_beat(datetime.now(UTC))])
        await uow.commit()
    costs = {}
    for consent_id, lag in (("c-own", timedelta(seconds=30)), ("c-asked", timedelta(0))):
        body = melding_body(consent_id, bsn=patients[consent_id])
        body.pop("consent_id")
        client = FakeConsentClient(ALLOWED)
        with counted_statements(rolled_back_melding) as statements:
            await handlers.send_melding(
                Intake(unit_of_work),
                client,
                principal=principal(),
                consent_id=consent_id,
                content=MeldingContent.model_validate(body),
                idempotency_key=None,
                request_fingerprint="f",
                request_id=None,
                consent_max_lag=lag,  # 0: the record is never current, the consent service is asked
            )
        costs[consent_id] = (client.checks, len(statements))
    # Deciding on the record asks no one; asking costs a transaction that stored nothing besides.
    assert costs["c-own"][0] == 0 and costs["c-asked"][0] == 1
    assert costs["c-own"][1] < costs["c-asked"][1]


async def test_intake_sends_only_statements_sqlalchemy_has_compiled_before(rolled_back_melding: Database) -> None:
    """Intake is the hottest path: after its first melding it compiles nothing (a statement holding its rows,
    as the consent lock's and the audit append's did, was compiled again for every melding)."""
    unit_of_work = unit_of_work_factory(rolled_back_melding)
    patients = {"c-first": BSN, "c-second": OTHER_BSN}
    async with unit_of_work() as uow:
        records = [_recorded(c, uow.meldingen.patient_ref(bsn)) for c, bsn in patients.items()]
        await handlers.on_consents_recorded(uow, records)
        await handlers.on_consent_heartbeats(uow, [_beat(datetime.now(UTC))])
        await uow.commit()
    compiled = {}
    for n, (consent_id, bsn) in enumerate(patients.items()):
        body = melding_body(consent_id, bsn=bsn)
        body.pop("consent_id")
        with compiled_again(rolled_back_melding) as compiled[consent_id]:
            await handlers.send_melding(
                Intake(unit_of_work),
                FakeConsentClient(ALLOWED),
                principal=principal(),
                consent_id=consent_id,
                content=MeldingContent.model_validate(body),
                idempotency_key=f"key-{n}",
                request_fingerprint="f",
                request_id=None,
                consent_max_lag=timedelta(seconds=30),
            )
    assert compiled["c-second"] == [], compiled["c-second"]
