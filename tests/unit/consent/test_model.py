"""Consent rules, without I/O."""

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.consent.domain.model import Consent, ConsentStatus, InvalidConsent, one_year_after
from shared.contracts.vocabulary import CheckReason

TODAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def record(**overrides: Any) -> Consent:
    values: dict[str, Any] = dict(
        bsn="999999990",
        recipient_types=["wijkteam", "jgz"],
        purpose="kansrijke-start-melding",
        method="verbal",
        given_at=date(2026, 11, 20),
        valid_until=None,
        org_id="12345678",
        org_type="verloskundige",
        sub="u",
        today=TODAY,
        now=NOW,
    )
    values.update(overrides)
    return Consent.record(**values)


def test_valid_until_defaults_to_one_year_after_given_at() -> None:
    assert record().valid_until == date(2027, 11, 20)
    assert one_year_after(date(2024, 2, 29)) == date(2025, 2, 28)


def test_given_at_in_the_future_is_refused() -> None:
    with pytest.raises(InvalidConsent) as info:
        record(given_at=date(2026, 11, 24))
    assert info.value.field == "given_at"


@pytest.mark.parametrize("until", [date(2026, 11, 20), date(2026, 11, 1)])
def test_valid_until_must_lie_after_given_at(until: date) -> None:
    with pytest.raises(InvalidConsent) as info:
        record(valid_until=until)
    assert info.value.field == "valid_until"


def test_a_consent_that_would_be_expired_already_is_refused() -> None:
    with pytest.raises(InvalidConsent):
        record(given_at=date(2026, 1, 1), valid_until=date(2026, 11, 22))


def test_status_moves_from_active_to_expired_after_the_last_day() -> None:
    consent = record(valid_until=date(2026, 12, 31))
    assert consent.status(date(2026, 12, 31)) is ConsentStatus.active
    assert consent.status(date(2027, 1, 1)) is ConsentStatus.expired


def test_withdrawal_is_final_and_idempotent() -> None:
    withdrawn = record().withdraw(now=NOW, reason="r")
    assert withdrawn.status(TODAY) is ConsentStatus.withdrawn
    assert withdrawn.withdraw(now=datetime(2027, 1, 1, tzinfo=UTC), reason="again") == withdrawn


def check(consent: Consent, **overrides: Any) -> CheckReason | None:
    values: dict[str, Any] = dict(bsn="999999990", org_id="12345678", recipient_types=["jgz"], today=TODAY)
    values.update(overrides)
    return consent.check(**values)


def test_check_allows_a_covered_melding() -> None:
    assert check(record()) is None
    assert check(record(), recipient_types=["jgz", "wijkteam"]) is None


def test_check_reasons() -> None:
    consent = record(recipient_types=["jgz"])
    assert check(consent, org_id="87654321") is CheckReason.other_organisation
    assert check(consent, bsn="123456782") is CheckReason.other_patient
    assert check(consent, recipient_types=["jgz", "wijkteam"]) is CheckReason.out_of_scope
    assert check(consent.withdraw(now=NOW, reason=None)) is CheckReason.withdrawn
    assert check(consent, today=date(2028, 1, 1)) is CheckReason.expired


def test_another_organisation_learns_nothing_about_the_patient() -> None:
    assert check(record(), org_id="87654321", bsn="123456782") is CheckReason.other_organisation


def test_a_withdrawal_records_who_made_it_and_the_first_one_stands() -> None:
    from services.consent.domain.model import WithdrawnBy

    consent = _consent_for_patient_tests()
    by_her = consent.withdraw(now=datetime(2026, 11, 21, tzinfo=UTC), reason=None, by=WithdrawnBy.patient)
    assert by_her.withdrawn_by == "patient"
    again = by_her.withdraw(now=datetime(2026, 11, 22, tzinfo=UTC), reason="x", by=WithdrawnBy.organisation)
    assert again.withdrawn_by == "patient" and again.withdrawn_at == by_her.withdrawn_at
    assert consent.withdraw(now=datetime(2026, 11, 21, tzinfo=UTC), reason=None).withdrawn_by == "organisation"


def test_a_consent_belongs_to_the_woman_whose_keyed_bsn_matches() -> None:
    consent = _consent_for_patient_tests()

    def ref(bsn: str) -> str:
        return f"ref-{bsn}"

    assert consent.belongs_to("ref-999999990", ref)
    assert not consent.belongs_to("ref-123456782", ref)


def _consent_for_patient_tests() -> Consent:
    return Consent.record(
        bsn="999999990", recipient_types=["jgz"], purpose="kansrijke-start-melding", method="verbal",
        given_at=date(2026, 11, 20), valid_until=None, org_id="12345678", org_type="verloskundige", sub="m",
        today=date(2026, 11, 20), now=datetime(2026, 11, 20, tzinfo=UTC),
    )  # fmt: skip
