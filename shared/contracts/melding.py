"""The melding as it travels: intake validation, the events between melding and routing, and the message
on a recipient's queue (the contract). Shared because both services speak it; owned by neither's database."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from shared.clock import FIRST_YEAR, today_nl
from shared.contracts.base import StrictModel
from shared.contracts.consent import ConsentScope
from shared.contracts.vocabulary import CancelReason, DeliveryStatus, RecipientType, RiskDomain
from shared.identifiers import Bsn, GemeenteCode, Postcode

MELDING_ACCEPTED = "melding.accepted"
MELDING_ROUTED = "melding.routed"
MELDING_UNROUTABLE = "melding.unroutable"
MELDING_NOT_DELIVERED = "melding.not_delivered"
MELDING_CANCELLED = "melding.cancelled"
DELIVERY_OVERDUE = "delivery.overdue"
MELDING_REMINDER = "melding.reminder"
DELIVERY_STATUS_CHANGED = "delivery.status_changed"
MELDING_DELIVERED = "melding.delivered"
MELDING_RETRACTED = "melding.retracted"
MELDING_CHANGED = "melding.changed"

PHONE_PATTERN = r"^\+?[0-9][0-9 -]{5,18}[0-9]$"


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("each value may appear once")
    return values


# Rules relative to today hold at intake. Stored meldingen and events are parsed with
# `context=STORED`, so a melding that waited weeks for a recipient still reads.
STORED = {"stored": True}


def _stored(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("stored"))


def _in_the_past(day: date, info: ValidationInfo) -> date:
    if _stored(info):
        return day
    if day >= today_nl():
        raise ValueError("must lie in the past")
    if day.year < FIRST_YEAR:
        raise ValueError(f"lies before the supported years ({FIRST_YEAR} on)")
    return day


def _plausible_due_date(day: date, info: ValidationInfo) -> date:
    if _stored(info):
        return day
    today = today_nl()
    if day < today - timedelta(days=30):
        raise ValueError("may lie at most 30 days in the past")
    if day > today + timedelta(days=300):
        raise ValueError("may lie at most 300 days ahead")
    return day


class Strict(StrictModel):
    model_config = ConfigDict(extra="forbid")


class Name(Strict):
    given: str = Field(min_length=1, max_length=100)
    family: str = Field(min_length=1, max_length=100)


class Address(Strict):
    postcode: Postcode
    house_number: str = Field(min_length=1, max_length=5, pattern=r"^[1-9][0-9]{0,4}$")
    house_number_suffix: str | None = Field(None, max_length=10)
    city: str | None = Field(None, max_length=100)


class Patient(Strict):
    bsn: Bsn
    name: Name
    birth_date: Annotated[
        date,
        AfterValidator(_in_the_past),
        Field(description="in the past (today is the date in Europe/Amsterdam)", examples=["1998-03-14"]),
    ]
    address: Address
    phone: str | None = Field(None, pattern=PHONE_PATTERN)


class Pregnancy(Strict):
    expected_due_date: Annotated[
        date,
        AfterValidator(_plausible_due_date),
        Field(description="no more than 30 days past and no more than 300 days ahead", examples=["2027-05-01"]),
    ]


class Contact(Strict):
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(None, pattern=PHONE_PATTERN)


class MeldingContent(Strict):
    """What a sender says about the patient: the body of `POST /v1/meldingen` less the consent id."""

    patient: Patient
    pregnancy: Pregnancy
    risk_domains: Annotated[list[RiskDomain], Field(min_length=1), AfterValidator(_unique)]
    recipient_types: Annotated[list[RecipientType], Field(min_length=1), AfterValidator(_unique)]
    urgency: Literal["regular", "urgent"] = "regular"
    note: str | None = Field(None, max_length=2000)
    contact: Contact | None = None


class Sender(BaseModel):
    org_id: str
    org_type: str
    sub: str


class Gemeente(BaseModel):
    code: GemeenteCode
    name: str


class MeldingAccepted(BaseModel):
    """melding -> routing: a melding passed intake and waits to be routed. Carries personal data."""

    melding_id: str
    accepted_at: datetime
    sender: Sender
    consent: ConsentScope
    content: MeldingContent


class RoutedDelivery(BaseModel):
    delivery_id: str
    org_id: str
    org_name: str
    recipient_type: str
    risk_domains: list[str] = Field(default_factory=list, description="what this recipient receives of them")
    contact_due_at: datetime | None = None


class SkippedType(BaseModel):
    """A requested recipient type that receives nothing, and why (`route-map`: the coalition agreed so)."""

    recipient_type: str
    reason: str


class MeldingRouted(BaseModel):
    """routing -> melding: deliveries were made (and, for some types perhaps, no recipient found)."""

    melding_id: str
    gemeente: Gemeente | None
    deliveries: list[RoutedDelivery]
    unroutable_types: list[str]
    skipped_types: list[SkippedType] = Field(default_factory=list)


class MeldingUnroutable(BaseModel):
    """routing -> melding: no recipient for any requested type yet; it waits for the directory."""

    melding_id: str
    gemeente: Gemeente | None
    unroutable_types: list[str]
    skipped_types: list[SkippedType] = Field(default_factory=list)


class MeldingNotDelivered(BaseModel):
    """routing -> melding: the melding goes to no one (every type skipped by the route map, or its consent
    no longer allowed it when its turn came). Final."""

    melding_id: str
    gemeente: Gemeente | None
    reason: Literal["route-map", "consent-expired", "consent-refused"]
    skipped_types: list[SkippedType] = Field(default_factory=list)


class DeliveryStatusChanged(BaseModel):
    """routing -> melding: a recipient reported back, or a delivery was retracted."""

    melding_id: str
    delivery: RoutedDelivery
    status: DeliveryStatus
    at: datetime
    contact_at: date | None = None
    outcome: str | None = None
    returned_reason: str | None = None


class DeliveryOverdue(BaseModel):
    """routing -> melding: a delivery passed its contact deadline without contact (its reminder is sent)."""

    melding_id: str
    delivery: RoutedDelivery
    contact_due_at: datetime
    at: datetime


class MeldingCancelled(BaseModel):
    """melding -> routing: the sender cancelled the melding; nothing more goes out, what went out is retracted."""

    melding_id: str
    consent_id: str
    reason: CancelReason
    cancelled_at: datetime


class MeldingChanged(BaseModel):
    """melding -> whoever follows meldingen for their sender (the FHIR facade's subscriptions): what the
    sender sees of a melding changed (its status, a delivery's). Ids only: no personal data."""

    melding_id: str
    sender_org_id: str
    status: str
    at: datetime


class MeldingReminder(BaseModel):
    """`melding.reminder` on a recipient's queue: a delivery passed its contact deadline without contact."""

    delivery_id: str
    melding_id: str
    contact_due_at: datetime


# --- the recipient's queue ------------------------------------------------------------------------


class RecipientRef(BaseModel):
    org_id: str
    type: str


class DeliverySender(BaseModel):
    org_id: str
    org_type: str
    contact: Contact | None


class MeldingDelivered(BaseModel):
    """`melding.delivered` on `kansrijk.deliveries.<org_id>` (the contract, the recipient's queue)."""

    delivery_id: str
    melding_id: str
    sent_at: datetime
    recipient: RecipientRef
    gemeente: Gemeente | None
    patient: Patient
    pregnancy: Pregnancy
    risk_domains: list[str]
    urgency: str
    note: str | None
    sender: DeliverySender
    consent: ConsentScope
    related_deliveries: list[str] = Field(
        default_factory=list,
        description="earlier deliveries to you of this patient's pregnancy from other senders: one pregnancy",
    )


class MeldingRetracted(BaseModel):
    """`melding.retracted`: the recipient deletes what it holds of the melding."""

    delivery_id: str
    melding_id: str
    reason: Literal["consent-withdrawn", "cancelled-by-sender"] = "consent-withdrawn"
    cancel_reason: CancelReason | None = Field(None, description="why the sender cancelled (a JGZ must not visit)")
    retracted_at: datetime


class MeldingDeliveredThin(BaseModel):
    """`melding.delivered` for an organisation registered with `delivery_mode` `thin`: no personal data on the
    queue. Fetch the delivery from `href` on the routing service with the organisation's token."""

    delivery_id: str
    melding_id: str
    sent_at: datetime
    recipient: RecipientRef
    gemeente_code: GemeenteCode | None
    urgency: str
    href: str = Field(
        description="`/v1/deliveries/{delivery_id}` on the routing service",
        examples=["/v1/deliveries/9e10c1e0-d7f3-4b2a-8f0c-1c1e2d7a4f7e"],
    )


class Numbered(BaseModel):
    """What every message on a recipient's queue carries besides its content."""

    sequence: int = Field(
        ge=1,
        description="per recipient organisation 1, 2, 3, … without gaps, in the order the platform committed "
        "them. A gap means a message you have not seen: fetch it with "
        "`GET /v1/deliveries/messages?after_sequence=<the last you hold>`",
    )


# The messages on `kansrijk.deliveries.<org_id>` exactly as published: the content above with its number. The
# number is given at commit (services/routing/service_layer/recipient_queue.py), so the code stages the
# content and these classes describe the result: the AsyncAPI document is generated from them.
class DeliveredMessage(MeldingDelivered, Numbered):
    """`melding.delivered` (delivery mode `full`): the melding, the recipient's share of it."""


class DeliveredThinMessage(MeldingDeliveredThin, Numbered):
    """`melding.delivered` (delivery mode `thin`): ids and `href`; fetch the content with your token."""


class RetractedMessage(MeldingRetracted, Numbered):
    """`melding.retracted`: delete what you hold of this melding."""


class ReminderMessage(MeldingReminder, Numbered):
    """`melding.reminder`: the delivery passed its contact deadline without contact."""
