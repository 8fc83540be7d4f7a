"""What operators read of the directory and of routing's work: typed read models.

The API's `*Read` models map them by attribute (`response_model`), so each answer's shape is written once there
and every attribute here is type-checked. No personal data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Generic, TypeVar

from services.routing.config import PublicBroker
from services.routing.domain.model import Pc4Range
from services.routing.domain.operations import ReturnSeen
from shared.contracts.vocabulary import DeliveryMode

T = TypeVar("T")


def ranges_read(ranges: list[Pc4Range]) -> list[dict[str, str]]:
    """Postcode ranges as the API writes them: `{"from": "1011", "to": "1109"}`."""
    return [{"from": r.start, "to": r.end} for r in ranges]


@dataclass(frozen=True)
class Saved(Generic[T]):
    """What a PUT stored, as it reads now, and whether it was new (201) or replaced something (200)."""

    view: T
    created: bool


@dataclass(frozen=True)
class Items(Generic[T]):
    """A list answer: `{"items": [...]}`."""

    items: list[T]


@dataclass(frozen=True)
class Page(Generic[T]):
    """A page of a list: `{"items": [...], "next_cursor": ...}`; `next_cursor` is passed back as `cursor`."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class RecipientQueueView:
    """A recipient organisation as the directory knows it, its queue, and the broker it reads that on."""

    org_id: str
    name: str
    type: str
    active: bool
    queue: str
    exchange: str
    routing_key: str
    broker: PublicBroker


@dataclass(frozen=True)
class RecipientMessagesView:
    """A recipient's queue again after a sequence number: each message as it went on the queue (the contract's
    schemas, with its AMQP `type` and `message_id`), and the last sequence given."""

    items: list[dict[str, Any]]
    next: int


@dataclass(frozen=True)
class GemeenteView:
    code: str
    name: str
    postcode_ranges: list[dict[str, str]]
    source: str
    ended_at: datetime | None


@dataclass(frozen=True)
class OrganisationView:
    org_id: str
    name: str
    type: str
    active: bool
    delivery_mode: DeliveryMode
    gemeenten: list[str]
    postcode_ranges: list[dict[str, str]]
    queue: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class UnroutableView:
    """A melding waiting for a recipient; `returned`: the types a recipient sent back."""

    melding_id: str
    gemeente_code: str | None
    gemeente_name: str | None
    requested_types: list[str]
    unroutable_types: list[str]
    returned: list[ReturnSeen]
    waiting_since: datetime


@dataclass(frozen=True)
class OverdueView:
    """A delivery past its contact deadline still without contact."""

    delivery_id: str
    melding_id: str
    org_id: str
    org_name: str
    recipient_type: str
    gemeente_code: str | None
    gemeente_name: str | None
    contact_due_at: datetime | None
    status: str


@dataclass(frozen=True)
class RecipientRuleView:
    """What a recipient type receives under a route map: `all` or these risk domains, and whether the note."""

    risk_domains: str | list[str]
    note: bool


@dataclass(frozen=True)
class RouteMapView:
    effective_from: date | None
    recipients: dict[str, RecipientRuleView]
    contact_deadline: dict[str, timedelta]


@dataclass(frozen=True)
class RouteMapVersionsView:
    """The version in force today (None: the default applies) and every version, oldest first."""

    current: RouteMapView | None
    versions: list[RouteMapView]


@dataclass(frozen=True)
class GemeenteName:
    code: str
    name: str


@dataclass(frozen=True)
class PreviewRecipient:
    """Who would receive a melding of this type and its share, or (`skipped`) that the route map gives it none."""

    org_id: str | None = None
    name: str | None = None
    risk_domains: str | list[str] | None = None
    note: bool | None = None
    contact_deadline: dict[str, timedelta] | None = None
    skipped: str | None = None


@dataclass(frozen=True)
class RoutePreviewView:
    """Where a melding from this address would go now; `note` when its postcode area straddles a border."""

    postcode: str
    gemeente: GemeenteName | None
    route_map_effective_from: date | None
    recipients: dict[str, PreviewRecipient | None]
    note: str | None = None
