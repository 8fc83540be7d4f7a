"""Events on `kansrijk.events`: the routing key is the event's type. Bodies carry ids, not personal data
(a patient appears only as her keyed hash, `patient_ref`)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel

CONSENT_RECORDED = "consent.recorded"
CONSENT_WITHDRAWN = "consent.withdrawn"
CONSENT_HEARTBEAT = "consent.heartbeat"


class ConsentRecorded(BaseModel):
    """A consent was recorded: what the melding service needs to check meldingen against it on its own
    (CONTRACT v1.2, decision 6), the same rule the consent service applies (`shared.consent_rules`)."""

    consent_id: str
    org_id: str  # the organisation that recorded it: the only one that may send under it
    patient_ref: str  # the keyed hash of her BSN, never the BSN
    recipient_types: list[str]
    risk_domains: list[str] | None  # None: every domain
    informed_about: list[str]
    valid_until: date
    recorded_at: datetime


class ConsentWithdrawn(BaseModel):
    """A patient withdrew a consent: nothing more goes out under it, and what went out is retracted."""

    consent_id: str
    org_id: str
    withdrawn_at: datetime


class ConsentHeartbeat(BaseModel):
    """The consent service is alive and every consent event it published before `at` is on its way ahead of
    this one: a service whose record of consents heard it lately may decide on that record."""

    at: datetime
