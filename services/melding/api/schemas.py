"""The melding API's bodies (CONTRACT.md, melding service). The content types live in shared.contracts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.melding.domain.model import MeldingStatus
from shared.identifiers import ResourceId
from shared.contracts.melding import Contact, Gemeente, MeldingContent, Patient, Pregnancy, Sender

EXAMPLE = {
    "consent_id": "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10",
    "patient": {
        "bsn": "999999990",
        "name": {"given": "Sanne", "family": "de Vries"},
        "birth_date": "1998-03-14",
        "address": {"postcode": "1011AB", "house_number": "12", "house_number_suffix": "A", "city": "Amsterdam"},
        "phone": "0612345678",
    },
    "pregnancy": {"expected_due_date": "2027-05-01"},
    "risk_domains": ["verslaving", "financien-schulden"],
    "recipient_types": ["jgz", "wijkteam"],
    "urgency": "regular",
    "note": "Cliënte gebruikt methadon; schulden bij meerdere schuldeisers.",
    "contact": {"name": "M. Jansen, verloskundige", "phone": "0201234567"},
}


class MeldingCreate(MeldingContent):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    consent_id: ResourceId = Field(description="The id the consent service gave the consent (a UUID).")


class DeliveryRead(BaseModel):
    delivery_id: str
    org_id: str
    org_name: str
    recipient_type: str
    status: str
    updated_at: datetime


class HistoryEntry(BaseModel):
    at: datetime
    event: str
    detail: str | None


class MeldingRead(BaseModel):
    id: str
    status: MeldingStatus
    created_at: datetime
    updated_at: datetime
    consent_id: str
    patient: Patient | None = Field(description="null once the personal data is removed (see purged_at)")
    pregnancy: Pregnancy
    risk_domains: list[str]
    recipient_types: list[str]
    urgency: str
    note: str | None
    contact: Contact | None
    sender: Sender
    gemeente: Gemeente | None
    unroutable_types: list[str]
    deliveries: list[DeliveryRead]
    history: list[HistoryEntry]
    purged_at: datetime | None = Field(
        None, description="when the personal data (patient, note, contact) was removed: a withdrawn melding at "
        "once, any other a retention period after its expected due date")


class MeldingPage(BaseModel):
    items: list[MeldingRead]
    next_cursor: str | None
