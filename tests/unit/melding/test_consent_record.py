"""Intake decides on the melding service's own record of consents while it is current (decision 6), and asks
the consent service when it is not, or has not heard of the consent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.melding.domain.model import AskConsentService, ConsentState, RecordedConsent
from services.melding.service_layer import handlers
from services.melding.service_layer.intake import Intake, Sent
from shared.consent_rules import feed_is_current
from shared.contracts.events import ConsentHeartbeat, ConsentRecorded
from shared.contracts.melding import MELDING_ACCEPTED
from shared.contracts.vocabulary import CheckReason
from shared.errors import ConsentRequired
from shared.messaging.consumer import IncomingEvent
from tests.samples import BSN
from tests.unit.fakes import FakeConsentClient, principal
from tests.unit.melding.fakes import FakeMeldingUnitOfWork
from tests.unit.melding.test_handlers import ALLOWED, CONSENT_ID, content
from tests.unit.melding.test_handlers import send as send_melding

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LAG = timedelta(seconds=2)
SENDER = principal().org_id


def recorded(**changes: object) -> RecordedConsent:
    fields: dict[str, object] = {
        "org_id": SENDER,
        "patient_ref": f"ref:{BSN}",
        "recipient_types": ("jgz", "wijkteam"),
        "risk_domains": None,
        "informed_about": ("purpose",),
        "valid_until": date(2027, 12, 31),
    }
    return RecordedConsent(**(fields | changes))  # type: ignore[arg-type]  # the test's overrides


def verdict(
    state: ConsentState, *, org_id: str = SENDER, types: tuple[str, ...] = ("jgz",), domains: tuple[str, ...] = ()
) -> CheckReason | AskConsentService | None:
    return state.verdict(
        org_id=org_id,
        patient_ref=f"ref:{BSN}",
        recipient_types=types,
        risk_domains=domains,
        today=NOW.date(),
        now=NOW,
        max_lag=LAG,
    )


# --- the rule on the record (domain) ------------------------------------------------------------------


def test_a_current_record_allows_what_the_consent_covers() -> None:
    assert verdict(ConsentState(CONSENT_ID, None, recorded(), heard_at=NOW - LAG)) is None


def test_a_consent_not_heard_of_or_a_record_not_current_asks_the_consent_service() -> None:
    assert verdict(ConsentState(CONSENT_ID, None, None, heard_at=NOW)) == AskConsentService("unknown")
    stale = ConsentState(CONSENT_ID, None, recorded(), heard_at=NOW - LAG - timedelta(milliseconds=1))
    assert verdict(stale) == AskConsentService("not-current")
    assert verdict(ConsentState(CONSENT_ID, None, recorded(), heard_at=None)) == AskConsentService("not-current")


@pytest.mark.parametrize(
    ("state", "asked", "reason"),
    [
        (recorded(), {"org_id": "20000002"}, CheckReason.other_organisation),
        (recorded(patient_ref="ref:another"), {}, CheckReason.other_patient),
        (recorded(valid_until=date(2026, 12, 6)), {}, CheckReason.expired),
        (recorded(recipient_types=("jgz",)), {"types": ("jgz", "wijkteam")}, CheckReason.out_of_scope),
        (recorded(risk_domains=("verslaving",)), {"domains": ("geweld",)}, CheckReason.out_of_scope),
    ],
)
def test_a_refusal_on_what_a_consent_was_recorded_with_stands_on_a_record_not_current(
    state: RecordedConsent, asked: dict[str, object], reason: CheckReason
) -> None:
    # A consent never changes but by its withdrawal: only a yes needs the record to be current.
    assert verdict(ConsentState(CONSENT_ID, None, state, heard_at=None), **asked) is reason  # type: ignore[arg-type]


def test_a_withdrawal_that_arrived_refuses_however_old_the_record() -> None:
    assert verdict(ConsentState(CONSENT_ID, NOW, recorded(), heard_at=NOW)) is CheckReason.withdrawn
    assert verdict(ConsentState(CONSENT_ID, NOW, recorded(), heard_at=None)) is CheckReason.withdrawn
    # Whose consent it was is not known here: the consent service answers (another organisation as for none).
    assert verdict(ConsentState(CONSENT_ID, NOW, None, heard_at=None)) == AskConsentService("unknown")


def test_the_last_day_of_a_consent_still_counts() -> None:
    assert verdict(ConsentState(CONSENT_ID, None, recorded(valid_until=NOW.date()), heard_at=NOW)) is None


def test_the_feed_is_current_within_its_lag_and_never_with_a_lag_of_zero() -> None:
    assert feed_is_current(NOW - LAG, NOW, max_lag=LAG)
    assert not feed_is_current(NOW - LAG - timedelta(microseconds=1), NOW, max_lag=LAG)
    assert not feed_is_current(None, NOW, max_lag=LAG)
    assert not feed_is_current(NOW, NOW, max_lag=timedelta(0))


# --- intake on the record (use case) ---------------------------------------------------------------------


async def heard(uow: FakeMeldingUnitOfWork, *, scope: list[str] | None = None, at: datetime | None = None) -> None:
    """The consent recorded and the feed heard, as the consumer of consent events applies them."""
    message = ConsentRecorded(
        consent_id=CONSENT_ID,
        org_id=SENDER,
        patient_ref=f"ref:{BSN}",
        recipient_types=scope or ["jgz", "wijkteam"],
        risk_domains=None,
        informed_about=["purpose", "withdrawal"],
        valid_until=date(2027, 12, 31),
        recorded_at=NOW,
    )
    await handlers.on_consents_recorded(uow, [IncomingEvent("r-1", "consent.recorded", message)])
    beat = ConsentHeartbeat(at=at or datetime.now(UTC))
    await handlers.on_consent_heartbeats(uow, [IncomingEvent("h-1", "consent.heartbeat", beat)])


async def send(uow: FakeMeldingUnitOfWork, client: FakeConsentClient, key: str | None = None) -> Sent:
    return await send_melding(uow, client, key, consent_max_lag=LAG)


async def test_a_melding_under_a_consent_on_a_current_record_is_stored_without_asking_the_consent_service() -> None:
    uow, client = FakeMeldingUnitOfWork(), FakeConsentClient(ALLOWED)
    await heard(uow)
    sent = await send(uow, client, key="k-1")
    assert client.checks == 0 and uow.commits == 1  # handlers do not commit: the consumer does
    [message] = uow.outbox.of_type(MELDING_ACCEPTED)
    assert message.body["consent"] == {
        "id": CONSENT_ID,
        "recipient_types": ["jgz", "wijkteam"],
        "risk_domains": None,
        "informed_about": ["purpose", "withdrawal"],
        "valid_until": "2027-12-31",
    }
    # The check is audited here now, as the consent service audited it, beside the melding's own record.
    check, create = uow.audit.records
    assert (check.action, check.resource_type, check.resource_id, check.outcome, check.consent_checked) == (
        "check",
        "consent",
        CONSENT_ID,
        "allowed",
        True,
    )
    assert (create.action, create.resource_id) == ("create", sent.melding.record.id)
    again = await send(uow, client, key="k-1")
    assert again.melding.record.id == sent.melding.record.id and len(uow.meldingen.records) == 1


async def test_a_record_not_current_asks_the_consent_service_and_stores_on_its_answer_with_the_same_key() -> None:
    uow, client = FakeMeldingUnitOfWork(), FakeConsentClient(ALLOWED)
    await heard(uow, at=datetime.now(UTC) - timedelta(seconds=30))
    sent = await send(uow, client, key="k-1")
    assert client.checks == 1 and len(uow.meldingen.records) == 1
    # Asked, the consent service audits its check: this service audits only the melding.
    assert [r.action for r in uow.audit.records] == ["create"]
    again = await send(uow, client, key="k-1")
    assert again.melding.record.id == sent.melding.record.id and client.checks == 1


async def test_a_consent_never_heard_of_is_asked_about() -> None:
    uow, client = FakeMeldingUnitOfWork(), FakeConsentClient(ALLOWED)
    await send(uow, client)
    assert client.checks == 1 and len(uow.meldingen.records) == 1


async def test_a_refusal_on_the_record_stores_nothing_and_audits_the_check_and_the_refused_melding() -> None:
    uow, client = FakeMeldingUnitOfWork(), FakeConsentClient(ALLOWED)
    await heard(uow, scope=["wijkteam"])  # the melding asks for jgz too
    with pytest.raises(ConsentRequired, match="does not cover"):
        await send(uow, client, key="k-1")
    assert client.checks == 0 and not uow.meldingen.records and not uow.outbox.messages
    assert [(r.action, r.outcome, r.refused) for r in uow.audit.records] == [
        ("check", "refused:out-of-scope", True),
        ("create", "refused:out-of-scope", True),
    ]
    assert not uow.idempotency.keys  # the key of a refused melding is not kept: a retry is checked again


async def test_a_withdrawal_applied_refuses_at_once_whatever_the_record_said() -> None:
    uow, client = FakeMeldingUnitOfWork(), FakeConsentClient(ALLOWED)
    await heard(uow)
    await uow.meldingen.record_withdrawal(CONSENT_ID, datetime.now(UTC))
    with pytest.raises(ConsentRequired, match="withdrawn"):
        await send(uow, client)
    assert client.checks == 0 and not uow.meldingen.records


async def test_another_organisation_sending_under_a_withdrawn_consent_is_answered_as_for_an_unknown_one() -> None:
    # The consent service compares the organisation first (another organisation learns nothing of the consent,
    # not even that it was withdrawn); the record must answer the same, and audit it as the consent service would.
    uow, client = FakeMeldingUnitOfWork(), FakeConsentClient(ALLOWED)
    await heard(uow)
    await uow.meldingen.record_withdrawal(CONSENT_ID, datetime.now(UTC))
    with pytest.raises(ConsentRequired, match="no consent with this id"):
        await handlers.send_melding(
            Intake(uow),
            client,
            principal=principal(org_id="20000002"),
            consent_id=CONSENT_ID,
            content=content(),
            idempotency_key=None,
            request_fingerprint="fingerprint",
            request_id=None,
            consent_max_lag=LAG,
        )
    assert not uow.meldingen.records
    assert {r.outcome for r in uow.audit.records} == {"refused:other-organisation"}


def test_a_withdrawn_consent_is_refused_in_the_consent_services_order() -> None:
    withdrawn = ConsentState(CONSENT_ID, NOW, recorded(), heard_at=NOW)
    assert verdict(withdrawn, org_id="20000002") is CheckReason.other_organisation
    other_patient = ConsentState(CONSENT_ID, NOW, recorded(patient_ref="ref:another"), heard_at=NOW)
    assert verdict(other_patient) is CheckReason.other_patient
