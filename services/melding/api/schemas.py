"""The melding API's bodies (the contract, melding service). The content types live in shared.contracts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.melding.domain.model import MeldingStatus
from shared.contracts.base import StrictModel
from shared.contracts.melding import Contact, Gemeente, MeldingContent, Patient, Pregnancy, Sender
from shared.contracts.vocabulary import CancelReason
from shared.identifiers import ResourceId

EXAMPLE: dict[str, Any] = {
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
    model_config = ConfigDict(from_attributes=True)

    delivery_id: str
    org_id: str
    org_name: str
    recipient_type: str
    status: str
    risk_domains: list[str] = Field(
        description="what this recipient received of the melding's risk domains (its route map's share)"
    )
    contact_due_at: datetime | None = Field(None, description="delivered at + the route map's contact deadline")
    overdue: bool = Field(False, description="past contact_due_at without contact: the recipient was reminded")
    contact_at: date | None = Field(None, description="the day the recipient made contact")
    outcome: str | None = Field(None, description="what came of it, once closed (`not-reported`: not said)")
    returned_reason: str | None = Field(None, description="why the recipient sent it back (status returned)")
    updated_at: datetime


class SkippedTypeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    recipient_type: str
    reason: str = Field(description="`route-map`: the gemeente's route map gives this type none of these domains")


class HistoryEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    event: str
    detail: str | None


READ_EXAMPLE: dict[str, Any] = {
    "id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10",
    "status": "delivered",
    "created_at": "2026-11-20T10:16:40Z",
    "updated_at": "2026-11-20T11:02:13Z",
    **{k: v for k, v in EXAMPLE.items() if k != "consent_id"},
    "consent_id": EXAMPLE["consent_id"],
    "sender": {"org_id": "12345678", "org_type": "verloskundige", "sub": "m.jansen"},
    "gemeente": {"code": "GM0363", "name": "Amsterdam"},
    "unroutable_types": [],
    "skipped_types": [],
    "not_delivered_reason": None,
    "deliveries": [
        {
            "delivery_id": "9e10c1e0-d7f3-4b2a-8f0c-1c1e2d7a4f7e",
            "org_id": "87654321",
            "org_name": "GGD Amsterdam JGZ",
            "recipient_type": "jgz",
            "status": "received",
            "risk_domains": ["verslaving", "financien-schulden"],
            "updated_at": "2026-11-20T11:02:13Z",
        },
        {
            "delivery_id": "4f7e9c1e-0d7f-4b2a-9e10-6f0c1c1e2d7a",
            "org_id": "76543210",
            "org_name": "Buurtteam Centrum",
            "recipient_type": "wijkteam",
            "status": "queued",
            "risk_domains": ["financien-schulden"],
            "updated_at": "2026-11-20T10:16:41Z",
        },
    ],
    "history": [
        {"at": "2026-11-20T10:16:40Z", "event": "accepted", "detail": None},
        {
            "at": "2026-11-20T10:16:41Z",
            "event": "routed",
            "detail": "jgz: GGD Amsterdam JGZ, wijkteam: Buurtteam Centrum",
        },
        {"at": "2026-11-20T11:02:13Z", "event": "delivery_received", "detail": "jgz: GGD Amsterdam JGZ"},
    ],
    "purged_at": None,
}


# The 202 of an intake: stored, not routed yet.
ACCEPTED_EXAMPLE: dict[str, Any] = {
    **READ_EXAMPLE,
    "status": "accepted",
    "updated_at": READ_EXAMPLE["created_at"],
    "gemeente": None,
    "deliveries": [],
    "history": READ_EXAMPLE["history"][:1],
}


# Maps the service layer's `MeldingView` by attribute (a docstring here would change the published schema).
class MeldingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [READ_EXAMPLE]})

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
    skipped_types: list[SkippedTypeRead] = Field(description="requested types that receive nothing, and why")
    not_delivered_reason: str | None = Field(
        description="with status not_delivered: `route-map` (every type skipped), `consent-expired` or "
        "`consent-refused` (the consent no longer allowed it when routing's turn came)"
    )
    deliveries: list[DeliveryRead]
    history: list[HistoryEntry]
    purged_at: datetime | None = Field(
        None,
        description="when the personal data (patient, note, contact) was removed: a withdrawn melding at "
        "once, any other a retention period after its expected due date",
    )


class MeldingCancel(StrictModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "pregnancy-ended"}]})

    reason: CancelReason


class MeldingPage(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    items: list[MeldingRead]
    next_cursor: str | None


# --- programme figures -----------------------------------------------------------------------------------

_COUNTS = "counts of meldingen; `null` below the suppression threshold"


class ContactDays(BaseModel):
    p50: float | None = Field(description="median days from the melding to the first contact")
    p90: float | None = Field(description="90th percentile of the same")


class PeriodFigures(BaseModel):
    period: str = Field(description="`2027-01` (month), `2027-Q1` (quarter) or `2027` (year)")
    meldingen: int | None = Field(description="meldingen made in the period (`null` below the threshold)")
    by_sender_type: dict[str, int | None] = Field(
        description=f"by the sender's org_type; parts of `meldingen`; {_COUNTS}"
    )
    by_risk_domain: dict[str, int | None] = Field(description=f"meldingen naming each risk domain; {_COUNTS}")
    by_recipient_type: dict[str, int | None] = Field(description=f"meldingen asking for each recipient type; {_COUNTS}")
    by_status: dict[str, int | None] = Field(
        description=f"by the melding's status today; parts of `meldingen`; {_COUNTS}"
    )
    returned: int | None = Field(description="meldingen a recipient sent back (`returned`) at least once")
    contact_within_deadline: float | None = Field(
        description="share of the meldingen whose contact deadline has passed or been met where a recipient made "
        "contact by it; `null` when the meldingen it counts, or those met or missed, are below the threshold"
    )
    days_to_contact: ContactDays = Field(description="`null` when fewer meldingen than the threshold had contact")
    outcomes: dict[str, int | None] = Field(description=f"meldingen a recipient closed with each outcome; {_COUNTS}")
    by_gemeente: dict[str, int | None] | None = Field(
        None,
        description="the country's and a region's figures only: by gemeente code (the country's: every gemeente "
        f"with a melding in the range; a region's: every gemeente it holds); parts of `meldingen`; {_COUNTS}",
    )
    without_gemeente: int | None = Field(
        None, description="the country's figures only: meldingen whose address no gemeente was found for"
    )


class FiguresGemeente(BaseModel):
    code: str
    name: str | None = Field(
        description="as routing reported it (CBS), else as the GGD regions' reference data names it; `null` for "
        "a code neither knows"
    )


class FiguresRegion(BaseModel):
    code: str = Field(description="CBS GGD region code")
    name: str = Field(description="CBS GGD region name")


class RegionRead(BaseModel):
    code: str = Field(description="CBS GGD region code, as `GET /v1/figures?region=` takes it")
    name: str = Field(description="CBS GGD region name")
    gemeenten: list[str] = Field(description="the CBS codes of the gemeenten it holds")


class FiguresRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    gemeente: FiguresGemeente | None = Field(description="`null`: a region or the whole country")
    region: FiguresRegion | None = Field(None, description="a region's figures only: which GGD region")
    from_: date = Field(alias="from", description="first day of the first whole period")
    to: date = Field(description="last day of the last whole period")
    interval: str
    suppression_threshold: int = Field(description="counts below it, and figures derived from fewer, are `null`")
    gemeente_names: dict[str, str] | None = Field(
        None,
        description="the country's and a region's figures only: the name (CBS) of every gemeente code in `by_gemeente`",
    )
    periods: list[PeriodFigures]


def _example_period(label: str, total: int) -> dict[str, Any]:
    return {
        "period": label,
        "meldingen": total,
        "by_sender_type": {"huisarts": None, "verloskundige": 18, "gynaecoloog": None, "volwassenen-ggz": None,
                           "verslavingszorg": None},
        "by_risk_domain": {"verslaving": 12, "psychiatrie": None, "financien-schulden": 14},
        "by_recipient_type": {"jgz": total, "wijkteam": 14},
        "by_status": {"accepted": None, "delivered": 27, "unroutable": None, "not_delivered": None,
                      "cancelled": None, "withdrawn": None},
        "returned": None,
        "contact_within_deadline": 0.64,
        "days_to_contact": {"p50": 4.0, "p90": 11.0},
        "outcomes": {"phb-done": 12, "support-started": None},
        "by_gemeente": None,
        "without_gemeente": None,
    }  # fmt: skip


FIGURES_EXAMPLE: dict[str, Any] = {
    "gemeente": {"code": "GM0363", "name": "Amsterdam"},
    "region": None,
    "from": "2027-01-01",
    "to": "2027-02-28",
    "interval": "month",
    "suppression_threshold": 10,
    "gemeente_names": None,
    "periods": [_example_period("2027-01", 31), _example_period("2027-02", 28)],
}


REGIONS_EXAMPLE: list[dict[str, Any]] = [
    {"code": "GG3406", "name": "GGD Amsterdam",
     "gemeenten": ["GM0358", "GM0362", "GM0363", "GM0384", "GM0437", "GM0451"]},
    {"code": "GG7014", "name": "GGD Haaglanden",
     "gemeenten": ["GM0503", "GM0518", "GM0603", "GM0629", "GM0637", "GM1783", "GM1842", "GM1916", "GM1926"]},
]  # fmt: skip


# --- her own view -----------------------------------------------------------------------------------------------


class RecipientSeenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    org_id: str = Field(description="the recipient organisation's id (names it in her access log)")
    org_name: str = Field(description="the recipient organisation's name")
    recipient_type: str
    status: str
    risk_domains: list[str] = Field(description="what this organisation received of the risk domains")
    note: str | None = Field(description="the note it received (null when not shown)")
    contact_at: date | None
    outcome: str | None


class MeldingSeenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    sent_at: datetime
    sender: dict[str, str] = Field(description="`org_id` and `org_type` of the sending organisation")
    status: MeldingStatus
    content_shown: bool = Field(description="false for a cancelled or withdrawn melding, or one past retention")
    risk_domains: list[str]
    recipients: list[RecipientSeenRead]


SEEN_EXAMPLE: dict[str, Any] = {
    "id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10",
    "sent_at": "2026-11-21T10:00:00Z",
    "sender": {"org_id": "12345678", "org_type": "verloskundige"},
    "status": "delivered",
    "content_shown": True,
    "risk_domains": ["verslaving", "financien-schulden"],
    "recipients": [
        {
            "org_id": "00000555", "org_name": "GGD Amsterdam JGZ", "recipient_type": "jgz", "status": "contact_made",
            "risk_domains": ["verslaving"], "note": "Cliënte gebruikt methadon.", "contact_at": "2026-12-01",
            "outcome": None,
        }
    ],
}  # fmt: skip


class MeldingSeenList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [SEEN_EXAMPLE]}]})

    items: list[MeldingSeenRead] = Field(description="newest first")
