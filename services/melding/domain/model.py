"""The sender's view of a melding: its status follows from what routing reported. No I/O here."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.consent_rules import feed_is_current, refusal
from shared.contracts.consent import ConsentScope
from shared.contracts.vocabulary import CheckReason, DeliveryStatus


class MeldingStatus(StrEnum):
    accepted = "accepted"
    delivered = "delivered"
    unroutable = "unroutable"
    not_delivered = "not_delivered"
    cancelled = "cancelled"
    withdrawn = "withdrawn"


@dataclass
class Melding:
    """What a melding's status depends on, and the rules that move it.

    accepted -> delivered (a delivery exists), unroutable (routing found no organisation yet) or
    not_delivered (it goes to no one: the route map skipped every type, or the consent had expired);
    cancelled by the sender overrides those, withdrawn overrides all. A delivery's status only moves
    forward (events may arrive out of order); retracted is final.
    """

    id: str
    status: MeldingStatus
    withdrawn_at: datetime | None = None
    routing_reported_unroutable: bool = False
    deliveries: dict[str, DeliveryStatus] = field(default_factory=dict)  # delivery id -> its status
    not_delivered_reason: str | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    sender_org_id: str = ""

    def report_delivery(self, delivery_id: str, reported: DeliveryStatus) -> DeliveryStatus | None:
        """Take a delivery's reported status; returns its new status, or None if nothing changed."""
        current = self.deliveries.get(delivery_id)
        status = reported if current is None else current.later(reported)
        if status == current:
            return None
        self.deliveries[delivery_id] = status
        self._settle()
        return status

    def routing_found_no_recipient(self) -> None:
        self.routing_reported_unroutable = True
        self._settle()

    def routing_delivered_to_no_one(self, reason: str) -> None:
        self.not_delivered_reason = reason
        self._settle()

    def cancel(self, at: datetime, reason: str) -> bool:
        """The sender cancelled it; False if it was cancelled or withdrawn before (nothing changes then)."""
        if self.cancelled_at is not None or self.withdrawn_at is not None:
            return False
        self.cancelled_at, self.cancel_reason = at, reason
        self._settle()
        return True

    def withdraw(self, at: datetime) -> bool:
        """The consent was withdrawn; False if this melding had been withdrawn before."""
        if self.withdrawn_at is not None:
            return False
        self.withdrawn_at = at
        self._settle()
        return True

    def _settle(self) -> None:
        if self.withdrawn_at is not None:
            self.status = MeldingStatus.withdrawn
        elif self.cancelled_at is not None:
            self.status = MeldingStatus.cancelled
        elif self.deliveries:
            self.status = MeldingStatus.delivered
        elif self.not_delivered_reason is not None:
            self.status = MeldingStatus.not_delivered
        elif self.routing_reported_unroutable:
            self.status = MeldingStatus.unroutable
        else:
            self.status = MeldingStatus.accepted


# What of a melding's content outlives its personal data: enough for the programme's figures, no person.
SKELETON_FIELDS = ("pregnancy", "risk_domains", "recipient_types", "urgency")


def skeleton_of(content: dict[str, Any]) -> dict[str, Any]:
    """The anonymous part of a melding's content, kept once its personal data is removed."""
    return {name: content.get(name) for name in SKELETON_FIELDS}


def bsn_in(content: dict[str, Any] | None) -> str | None:
    """The BSN a melding's content names (for the audit log), if any is left."""
    return ((content or {}).get("patient") or {}).get("bsn")


def due_date_in(content: dict[str, Any]) -> date | None:
    due = (content.get("pregnancy") or {}).get("expected_due_date")
    return date.fromisoformat(due) if due else None


# --- what the sender reads ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SenderRef:
    org_id: str
    org_type: str
    sub: str


@dataclass(frozen=True)
class GemeenteRef:
    code: str
    name: str


@dataclass(frozen=True)
class SkippedRef:
    """A requested recipient type that receives nothing, and why (`route-map`)."""

    recipient_type: str
    reason: str


@dataclass(frozen=True)
class MeldingRecord:
    """A stored melding as the sender reads it. `content` is None once its personal data is removed;
    `skeleton` holds what outlives it (from intake on)."""

    id: str
    status: MeldingStatus
    sender: SenderRef
    consent_id: str
    content: dict[str, Any] | None
    skeleton: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    purged_at: datetime | None
    gemeente: GemeenteRef | None
    unroutable_types: tuple[str, ...]
    skipped_types: tuple[SkippedRef, ...] = ()
    not_delivered_reason: str | None = None

    @classmethod
    def accepted(
        cls, *, melding_id: str, sender: SenderRef, consent_id: str, content: dict[str, Any], at: datetime
    ) -> MeldingRecord:
        """A melding just taken in: accepted, not routed yet."""
        return cls(
            id=melding_id,
            status=MeldingStatus.accepted,
            sender=sender,
            consent_id=consent_id,
            content=content,
            skeleton=skeleton_of(content),
            created_at=at,
            updated_at=at,
            purged_at=None,
            gemeente=None,
            unroutable_types=(),
        )


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    org_id: str
    org_name: str
    recipient_type: str
    status: DeliveryStatus
    updated_at: datetime
    risk_domains: tuple[str, ...] = ()  # what this recipient received of the melding's domains
    contact_due_at: datetime | None = None
    overdue: bool = False
    contact_at: date | None = None
    outcome: str | None = None
    returned_reason: str | None = None


@dataclass(frozen=True)
class NewMelding:
    """A melding to store as accepted: its id, sender, the consent it went on and its content."""

    melding_id: str
    sender: SenderRef
    consent: dict[str, Any]
    content: dict[str, Any]
    at: datetime


@dataclass(frozen=True)
class OpenAsk:
    """Does this organisation have an open melding for this patient that asked for one of these types?"""

    org_id: str
    bsn: str
    recipient_types: Sequence[str]


@dataclass(frozen=True)
class OpenCandidate:
    """A melding of that organisation for that patient that is not stopped: what it asked, where it stands."""

    melding_id: str
    recipient_types: Sequence[str]
    delivery_statuses: Sequence[DeliveryStatus]


# A melding whose every delivery has ended no longer counts as open.
ENDED_DELIVERY = frozenset({DeliveryStatus.closed, DeliveryStatus.returned, DeliveryStatus.retracted})


def open_melding_among(candidates: Sequence[OpenCandidate], recipient_types: Sequence[str]) -> str | None:
    """One organisation, one open melding per patient and recipient type: the first candidate that asked for one
    of `recipient_types` and is still open (no delivery yet, or not every delivery ended), else None."""
    for candidate in candidates:
        if not set(candidate.recipient_types) & set(recipient_types):
            continue
        statuses = set(candidate.delivery_statuses)
        if not statuses or not statuses <= ENDED_DELIVERY:
            return candidate.melding_id
    return None


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    event: str
    detail: str | None


@dataclass(frozen=True)
class RoutingReport:
    """What routing reported of a melding, as its sender sees it: the gemeente (None: not known, keep what
    was), the types still waiting for an organisation, the types the route map skipped."""

    melding_id: str
    gemeente: GemeenteRef | None
    unroutable_types: list[str]
    skipped: list[SkippedRef]


@dataclass(frozen=True)
class RecordedConsent:
    """A consent as `consent.recorded` told this service: what the consent rule needs, the patient as her keyed
    hash."""

    org_id: str
    patient_ref: str
    recipient_types: tuple[str, ...]
    risk_domains: tuple[str, ...] | None
    informed_about: tuple[str, ...]
    valid_until: date


@dataclass(frozen=True)
class AskConsentService:
    """This service cannot decide on its own record: it has not heard of the consent, or its record is not
    current (`shared.consent_feed`). The consent service is asked, as before decision 6."""

    why: str  # "unknown" | "not-current": for the log and the metrics, nothing of the patient


@dataclass(frozen=True)
class ConsentState:
    """What this service knows of a consent: whether its withdrawal has arrived, what it allows (`recorded`,
    None: never heard of it) and when the consent feed was last heard (`heard_at`)."""

    consent_id: str
    withdrawn_at: datetime | None
    recorded: RecordedConsent | None = None
    heard_at: datetime | None = None

    def verdict(
        self,
        *,
        org_id: str,
        patient_ref: str,
        recipient_types: Sequence[str],
        risk_domains: Sequence[str],
        today: date,
        now: datetime,
        max_lag: timedelta,
    ) -> CheckReason | AskConsentService | None:
        """The consent rule on this service's own record: None (it may go), a refusal, or ask the consent service.
        `patient_ref`: the keyed hash of the melding's BSN.

        The rule's own order, as the consent service applies it: another organisation is refused as such even
        when a withdrawal has arrived (it learns nothing of the consent, not even that). A withdrawal of a consent
        this service never heard recorded cannot be told from another organisation's: the consent service is
        asked. A refusal on what a consent was recorded with (another organisation, another patient, withdrawn,
        its scope, its last day) stands however old the record: a consent never changes but by its withdrawal.
        Only a yes needs the record to be current: a withdrawal may still be on its way."""
        if self.recorded is None:
            return AskConsentService("unknown")
        recorded = self.recorded
        reason = refusal(
            recorded_by=recorded.org_id,
            org_id=org_id,
            same_patient=hmac.compare_digest(patient_ref, recorded.patient_ref),
            withdrawn=self.withdrawn_at is not None,
            valid_until=recorded.valid_until,
            today=today,
            consented_types=recorded.recipient_types,
            consented_domains=recorded.risk_domains,
            recipient_types=recipient_types,
            risk_domains=risk_domains,
        )
        if reason is not None:
            return reason
        if not feed_is_current(self.heard_at, now, max_lag=max_lag):
            return AskConsentService("not-current")
        return None

    def scope(self) -> ConsentScope:
        """What a melding under this consent carries of it (as the consent service's answer would)."""
        assert self.recorded is not None
        recorded = self.recorded
        return ConsentScope.model_validate(
            {
                "id": self.consent_id,
                "recipient_types": recorded.recipient_types,
                "risk_domains": recorded.risk_domains,
                "informed_about": recorded.informed_about,
                "valid_until": recorded.valid_until,
            }
        )
