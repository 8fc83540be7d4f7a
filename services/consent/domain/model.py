"""Consent: what a patient agreed to, and whether a melding may go out under it. No I/O here."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from shared.consent_rules import refusal
from shared.contracts.vocabulary import CheckReason
from shared.errors import ValidationFailed


class ConsentStatus(StrEnum):
    active = "active"
    withdrawn = "withdrawn"
    expired = "expired"


class WithdrawnBy(StrEnum):
    organisation = "organisation"  # the organisation that recorded it
    patient = "patient"  # the woman herself, in her own view


class InvalidConsent(ValidationFailed):
    """A consent that breaks a rule no schema can see (dates relative to today)."""


def new_consent_id() -> str:
    return str(uuid.uuid4())


def one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


@dataclass(frozen=True)
class Consent:
    id: str
    bsn: str
    recipient_types: tuple[str, ...]
    purpose: str
    method: str
    given_at: date
    valid_until: date
    recorded_by_org_id: str
    recorded_by_org_type: str
    recorded_by_sub: str
    created_at: datetime
    withdrawn_at: datetime | None = None
    withdrawal_reason: str | None = None
    # Which risk domains the patient agreed may be shared (None: all), and what she was told before she agreed.
    risk_domains: tuple[str, ...] | None = None
    informed_about: tuple[str, ...] = ()
    withdrawn_by: str | None = None  # a WithdrawnBy, once withdrawn

    @classmethod
    def record(
        cls,
        *,
        consent_id: str | None = None,
        bsn: str,
        recipient_types: list[str],
        purpose: str,
        method: str,
        given_at: date,
        valid_until: date | None,
        org_id: str,
        org_type: str,
        sub: str,
        today: date,
        now: datetime,
        risk_domains: list[str] | None = None,
        informed_about: list[str] | None = None,
    ) -> Consent:
        """A new consent, checked against today's date."""
        if given_at > today:
            raise InvalidConsent("given_at", "given_at must not be in the future")
        until = valid_until or one_year_after(given_at)
        if until <= given_at:
            raise InvalidConsent("valid_until", "valid_until must lie after given_at")
        if until < today:
            raise InvalidConsent("valid_until", "valid_until lies in the past: this consent would be expired already")
        return cls(
            id=consent_id or new_consent_id(),
            bsn=bsn,
            recipient_types=tuple(sorted(set(recipient_types))),
            purpose=purpose,
            method=method,
            given_at=given_at,
            valid_until=until,
            recorded_by_org_id=org_id,
            recorded_by_org_type=org_type,
            recorded_by_sub=sub,
            created_at=now,
            risk_domains=tuple(sorted(set(risk_domains))) if risk_domains is not None else None,
            informed_about=tuple(sorted(set(informed_about or ()))),
        )

    def status(self, today: date) -> ConsentStatus:
        if self.withdrawn_at is not None:
            return ConsentStatus.withdrawn
        if today > self.valid_until:  # valid through the whole of its last day
            return ConsentStatus.expired
        return ConsentStatus.active

    def withdraw(self, *, now: datetime, reason: str | None, by: WithdrawnBy = WithdrawnBy.organisation) -> Consent:
        """Withdrawn from `now` on, by the recording organisation or the woman herself; withdrawing again
        changes nothing (the first withdrawal and who made it stand)."""
        if self.withdrawn_at is not None:
            return self
        return replace(self, withdrawn_at=now, withdrawal_reason=reason, withdrawn_by=by.value)

    def belongs_to(self, bsn_ref: str, ref_of: Callable[[str], str]) -> bool:
        """Whether this consent is hers: `bsn_ref` is her keyed BSN, `ref_of` the keyed hash."""
        return hmac.compare_digest(ref_of(self.bsn), bsn_ref)

    def check(
        self,
        *,
        bsn: str,
        org_id: str,
        recipient_types: list[str],
        risk_domains: list[str] | None = None,
        today: date,
    ) -> CheckReason | None:
        """Why a melding may not go out under this consent, or None if it may: it must ask only for consented
        recipient types and (`risk_domains`, when the caller names them) carry only consented risk domains.

        The organisation is compared first, so that another organisation learns nothing of the patient.
        """
        return refusal(
            recorded_by=self.recorded_by_org_id,
            org_id=org_id,
            same_patient=bsn == self.bsn,
            withdrawn=self.withdrawn_at is not None,
            valid_until=self.valid_until,
            today=today,
            consented_types=self.recipient_types,
            consented_domains=self.risk_domains,
            recipient_types=recipient_types,
            risk_domains=risk_domains,
        )
