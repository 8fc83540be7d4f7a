"""The routing API's bodies (the contract, routing service)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StrictBool,
    TypeAdapter,
    ValidationError,
)

from services.routing.domain.model import Pc4Range
from services.routing.service_layer.route_map_input import ROUTE_MAP_EXAMPLE
from shared.clock import IsoDate
from shared.contracts.base import StrictModel
from shared.contracts.consent import RiskDomains
from shared.contracts.melding import MeldingDelivered, MeldingRetracted
from shared.contracts.vocabulary import DeliveryMode, Outcome, RecipientType, ReturnReason
from shared.errors import ValidationFailed
from shared.identifiers import GemeenteCode, OrgId, PostcodeArea


class Strict(StrictModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _no_repeats(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("each gemeente may appear once")
    return values


def _ordered(r: PostcodeRange) -> PostcodeRange:
    if r.start > r.end:
        raise ValueError("`from` must not lie after `to`")
    return r


class PostcodeRange(Strict):
    start: PostcodeArea = Field(alias="from")
    end: PostcodeArea = Field(alias="to")

    def domain(self) -> Pc4Range:
        return Pc4Range(self.start, self.end)


PostcodeRanges = list[Annotated[PostcodeRange, AfterValidator(_ordered)]]


class GemeentePut(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Amsterdam", "postcode_ranges": [{"from": "1011", "to": "1109"}]}]},
    )

    name: str = Field(min_length=1, max_length=100)
    postcode_ranges: PostcodeRanges = Field(default_factory=list)


class GemeenteRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "code": "GM0363",
                    "name": "Amsterdam",
                    "postcode_ranges": [{"from": "1011", "to": "1109"}],
                    "source": "CBS Wijk- en Buurtkaart 2025",
                    "ended_at": None,
                }
            ]
        },
    )

    code: str
    name: str
    postcode_ranges: list[dict[str, str]]
    source: str
    ended_at: datetime | None


class GemeenteList(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    items: list[GemeenteRead]


class OrganisationPut(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "GGD Amsterdam JGZ",
                    "type": "jgz",
                    "gemeenten": ["GM0363"],
                    "postcode_ranges": [],
                    "active": True,
                    "delivery_mode": "full",
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    type: RecipientType
    gemeenten: Annotated[list[GemeenteCode], AfterValidator(_no_repeats)] = Field(default_factory=list)
    postcode_ranges: PostcodeRanges = Field(default_factory=list)
    active: StrictBool = True
    delivery_mode: DeliveryMode = Field(
        "full",
        description="`full`: the queue carries the melding; `thin`: no personal data on the queue, only ids and "
        "`href` to fetch it with the organisation's token. Applies to what is routed afterwards.",
    )


class OrganisationRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "org_id": "87654321",
                    "name": "GGD Amsterdam JGZ",
                    "type": "jgz",
                    "active": True,
                    "delivery_mode": "full",
                    "gemeenten": ["GM0363"],
                    "postcode_ranges": [],
                    "queue": "kansrijk.deliveries.87654321",
                    "created_at": "2026-11-02T09:00:00Z",
                    "updated_at": "2026-11-02T09:00:00Z",
                }
            ]
        },
    )

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


class OrganisationList(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    items: list[OrganisationRead]


class RouteRecipient(BaseModel):
    """Who would receive a melding of this type, and its share; or that the route map skips the type."""

    model_config = ConfigDict(from_attributes=True)

    org_id: str | None = None
    name: str | None = None
    risk_domains: list[str] | Literal["all"] | None = Field(
        None, description="the share of the given risk domains it would receive (without them: its rule)"
    )
    note: bool | None = Field(None, description="whether the free-text note goes along")
    contact_deadline: dict[str, timedelta] | None = Field(None, description="per urgency, ISO 8601 durations")
    skipped: Literal["route-map"] | None = Field(None, description="the route map gives this type none of them")


class GemeenteRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str


class RoutePreview(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "postcode": "1011AB",
                    "gemeente": {"code": "GM0363", "name": "Amsterdam"},
                    "route_map_effective_from": "2027-01-01",
                    "recipients": {
                        "jgz": {
                            "org_id": "87654321",
                            "name": "GGD Amsterdam JGZ",
                            "risk_domains": ["verslaving", "huisvesting"],
                            "note": True,
                            "contact_deadline": {"regular": "P14D", "urgent": "P2D"},
                        },
                        "wijkteam": {
                            "org_id": "wijkteam-centrum",
                            "name": "Buurtteam Centrum",
                            "risk_domains": ["huisvesting"],
                            "note": False,
                            "contact_deadline": {"regular": "P14D", "urgent": "P2D"},
                        },
                    },
                    "note": None,
                }
            ]
        },
    )

    postcode: str
    gemeente: GemeenteRef | None
    route_map_effective_from: date | None = Field(
        None, description="the route map version in force today; null: the default (everything to everyone)"
    )
    recipients: dict[str, RouteRecipient | None] = Field(
        description="per recipient type; null: no organisation serves this address yet"
    )
    note: str | None = Field(None, description="Present when the postcode area straddles a gemeente border.")


class ReturnedRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    recipient_type: str
    org_id: str = Field(description="the organisation that sent it back")
    org_name: str | None = Field(description="its name as the melding was delivered to it")
    reason: str
    returned_at: datetime | None = Field(description="when it sent it back (not when the melding was routed)")


class UnroutableItem(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "melding_id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10",
                    "gemeente_code": "GM0599",
                    "gemeente_name": "Rotterdam",
                    "requested_types": ["jgz", "wijkteam"],
                    "unroutable_types": ["wijkteam"],
                    "returned": [],
                    "waiting_since": "2026-11-20T10:16:41Z",
                },
                {
                    "melding_id": "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10",
                    "gemeente_code": "GM0363",
                    "gemeente_name": "Amsterdam",
                    "requested_types": ["jgz"],
                    "unroutable_types": [],
                    "returned": [
                        {
                            "recipient_type": "jgz",
                            "org_id": "87654321",
                            "org_name": "GGD Amsterdam JGZ",
                            "reason": "wrong-recipient",
                            "returned_at": "2026-11-21T08:02:13Z",
                        }
                    ],
                    "waiting_since": "2026-11-20T10:16:41Z",
                },
            ]
        },
    )

    melding_id: str
    gemeente_code: str | None
    gemeente_name: str | None = Field(description="the gemeente's name in the directory")
    requested_types: list[str]
    unroutable_types: list[str]
    returned: list[ReturnedRead] = Field(
        default_factory=list, description="types a recipient sent back, waiting for an operator to reroute"
    )
    waiting_since: datetime = Field(description="when routing took the melding (a return says its own time)")


class UnroutableList(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    items: list[UnroutableItem]


class StillWaiting(BaseModel):
    recipient_type: str
    reason: Literal["no-organisation", "returned-by-all"] = Field(
        description="no-organisation: no active organisation of the type serves the address; returned-by-all: "
        "every one that does returned it as the wrong recipient"
    )


class RerouteResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"melding_id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10", "status": "routed", "reason": None},
                {
                    "melding_id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10",
                    "status": "waiting",
                    "reason": "every active jgz organisation serving gemeente Amsterdam (GM0363) returned it as "
                    "the wrong recipient: name one with `org_id`, or register the right one",
                    "waiting": [{"recipient_type": "jgz", "reason": "returned-by-all"}],
                },
            ]
        }
    )

    melding_id: str
    status: str = Field(
        description="routed, waiting (still no recipient for some type), withdrawn, cancelled or not_delivered"
    )
    reason: str | None = Field(None, description="with waiting: why, per type still waiting — and what would route it")
    waiting: list[StillWaiting] = Field(
        default_factory=list, description="with waiting: per type still waiting, why as a code (`reason` in words)"
    )


class Reroute(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"org_id": "87654321"}]})

    org_id: OrgId | None = Field(
        None, description="an active organisation of the type a recipient returned; absent: by the directory"
    )


class OverdueItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    delivery_id: str
    melding_id: str
    org_id: str
    org_name: str = Field(description="the recipient's name as the melding was delivered to it")
    recipient_type: str
    gemeente_code: str | None
    gemeente_name: str | None = Field(description="the gemeente's name in the directory")
    contact_due_at: datetime
    status: str


class OverdueList(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "delivery_id": "9e10c1e0-d7f3-4b2a-8f0c-1c1e2d7a4f7e",
                            "melding_id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10",
                            "org_id": "87654321",
                            "org_name": "GGD Amsterdam JGZ",
                            "recipient_type": "jgz",
                            "gemeente_code": "GM0363",
                            "gemeente_name": "Amsterdam",
                            "contact_due_at": "2026-12-04T10:16:41Z",
                            "status": "received",
                        }
                    ]
                }
            ]
        },
    )

    items: list[OverdueItem]


class DeadLetterRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "c1e0d7f3-b2a9-4e10-8f0c-1c1e2d7a4f7e",
                    "queue": "kansrijk.deliveries.87654321",
                    "message_id": "9e10c1e0-d7f3-4b2a-8f0c-1c1e2d7a4f7e",
                    "message_type": "melding.delivered",
                    "correlation_id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10",
                    "reason": "rejected",
                    "body_encoding": "utf-8",
                    "died_at": "2026-11-20T10:17:05Z",
                    "replayed_at": None,
                }
            ]
        },
    )

    id: str
    queue: str
    message_id: str | None
    message_type: str | None
    correlation_id: str | None
    reason: str | None
    body_encoding: str
    died_at: datetime
    replayed_at: datetime | None


class DeadLetterList(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    items: list[DeadLetterRead]


class BrokerRead(BaseModel):
    """Where a recipient connects: never a user or password (each recipient has its own)."""

    model_config = ConfigDict(from_attributes=True)

    protocol: Literal["amqp", "amqps"] = Field(description="amqps: TLS")
    host: str
    port: int
    vhost: str = Field(description="the RabbitMQ virtual host (`/`: the default one)")


class RecipientQueueRead(BaseModel):
    """Where a recipient organisation's deliveries wait for it (the contract, the recipient's queue)."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "org_id": "87654321",
                    "name": "GGD Amsterdam JGZ",
                    "type": "jgz",
                    "active": True,
                    "queue": "kansrijk.deliveries.87654321",
                    "exchange": "kansrijk.deliveries",
                    "routing_key": "87654321",
                    "broker": {"protocol": "amqps", "host": "mq.kansrijkestart.nl", "port": 5671, "vhost": "kansrijk"},
                }
            ]
        },
    )

    org_id: str
    name: str
    type: str
    active: bool = Field(description="false once deactivated: nothing new is delivered")
    queue: str
    exchange: str
    routing_key: str
    broker: BrokerRead = Field(description="the RabbitMQ to connect to for the queue (as GET /asyncapi.json's server)")


class RecipientMessagesPage(BaseModel):
    """What went on your queue after a sequence number, again (contract v1.1, "Recipients: sequence")."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "type": "melding.delivered",
                            "message_id": "9e10c1e0-d7f3-4b2a-8f0c-1c1e2d7a4f7e",
                            "sequence": 42,
                            "delivery_id": "9e10c1e0-d7f3-4b2a-8f0c-1c1e2d7a4f7e",
                            "melding_id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10",
                            "sent_at": "2026-11-20T09:15:00Z",
                            "recipient": {"org_id": "87654321", "type": "jgz"},
                            "gemeente_code": "GM0363",
                            "urgency": "regular",
                            "href": "/v1/deliveries/9e10c1e0-d7f3-4b2a-8f0c-1c1e2d7a4f7e",
                        },
                        {
                            "type": "melding.retracted",
                            "message_id": "retract:9e10c1e0-d7f3-4b2a-8f0c-1c1e2d7a4f7e",
                            "sequence": 43,
                            "delivery_id": "9e10c1e0-d7f3-4b2a-8f0c-1c1e2d7a4f7e",
                            "melding_id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10",
                            "reason": "consent-withdrawn",
                            "cancel_reason": None,
                            "retracted_at": "2026-11-22T08:30:00Z",
                        },
                    ],
                    "next": 43,
                }
            ]
        },
    )

    items: list[dict[str, Any]] = Field(
        description="the messages in sequence order, as on the queue (the schemas of GET /asyncapi.json) with "
        "their AMQP `type` and `message_id` (drop what you have seen by it). A full delivery comes with its "
        "content while the platform still holds it; once retracted or past retention, in its thin form (ids "
        "and `href`)"
    )
    next: int = Field(description="the last sequence given: pass it as `after_sequence` for what follows")


class StatusReport(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"status": "received"},
                {"status": "contact_made", "contact_at": "2027-01-05", "note": "Huisbezoek gepland op 3 december."},
                {"status": "closed", "outcome": "phb-done"},
                {"status": "closed", "outcome": "support-started", "contact_at": "2027-01-05"},
                {"status": "closed", "outcome": "declined"},
                {"status": "returned", "reason": "wrong-recipient", "note": "Adres valt onder Amstelveen."},
            ]
        },
    )

    status: Literal["received", "contact_made", "closed", "returned"]
    note: str | None = Field(None, max_length=500)
    contact_at: IsoDate | None = Field(
        None,
        description="the day contact was made (not future, not before delivery): with contact_made (default "
        "today), or with closed, which then records the contact; once recorded it cannot change (409)",
    )
    outcome: Outcome | None = Field(
        None,
        description="with closed: what came of it (absent: not-reported); phb-done and support-started need "
        "the day of contact, from an earlier contact_made or contact_at on this report (422 otherwise)",
    )
    reason: ReturnReason | None = Field(None, description="with returned (before contact_made): why")


DELIVERED_EXAMPLE: dict[str, Any] = {
    "delivery_id": "9e10c1e0-d7f3-4b2a-8f0c-1c1e2d7a4f7e",
    "melding_id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10",
    "sent_at": "2026-11-20T10:16:41Z",
    "recipient": {"org_id": "87654321", "type": "jgz"},
    "gemeente": {"code": "GM0363", "name": "Amsterdam"},
    "patient": {
        "bsn": "999999990",
        "name": {"given": "Sanne", "family": "de Vries"},
        "birth_date": "1998-03-14",
        "address": {"postcode": "1011AB", "house_number": "12", "house_number_suffix": "A", "city": "Amsterdam"},
        "phone": "0612345678",
    },
    "pregnancy": {"expected_due_date": "2027-05-01"},
    "risk_domains": ["verslaving", "financien-schulden"],
    "urgency": "regular",
    "note": "Cliënte gebruikt methadon; schulden bij meerdere schuldeisers.",
    "sender": {
        "org_id": "12345678",
        "org_type": "verloskundige",
        "contact": {"name": "M. Jansen, verloskundige", "phone": "0201234567"},
    },
    "consent": {
        "id": "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10",
        "recipient_types": ["jgz", "wijkteam"],
        "valid_until": "2027-11-20",
    },
    "status": "received",
}


class DeliveredDocument(MeldingDelivered):
    """`melding.delivered` as it was put on the queue, with the delivery's status now."""

    model_config = ConfigDict(json_schema_extra={"examples": [DELIVERED_EXAMPLE]})

    status: Literal["queued", "received", "contact_made", "closed"]


class RetractedDocument(MeldingRetracted):
    """A retracted delivery: the retraction that replaced it (its personal content is deleted here too)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "delivery_id": "9e10c1e0-d7f3-4b2a-8f0c-1c1e2d7a4f7e",
                    "melding_id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10",
                    "reason": "consent-withdrawn",
                    "retracted_at": "2026-11-22T08:30:00Z",
                    "status": "retracted",
                }
            ]
        }
    )

    status: Literal["retracted"]


class PurgedDocument(BaseModel):
    """A delivery whose personal content was removed when its purpose was over (retention)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "delivery_id": "9e10c1e0-d7f3-4b2a-8f0c-1c1e2d7a4f7e",
                    "melding_id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10",
                    "purged_at": "2028-05-02T03:00:00Z",
                    "status": "closed",
                }
            ]
        }
    )

    delivery_id: str
    melding_id: str
    purged_at: datetime
    status: Literal["queued", "received", "contact_made", "closed"]


class DeliveryDocument(RootModel[DeliveredDocument | RetractedDocument | PurgedDocument]):
    """The queue message as the recipient got it (`melding.delivered`), or its retraction, with `status`.

    Documentation only: the answer is the stored message itself, not re-validated against today's intake rules.
    """


class DeliveryPage(BaseModel):
    items: list[DeliveryDocument]
    next_cursor: str | None = Field(description="`cursor` for the next page, if there is one")


# --- route maps -----------------------------------------------------------------------------------

_RISK_DOMAINS: TypeAdapter[list[Any]] = TypeAdapter(RiskDomains)


def risk_domains_in(text: str | None) -> list[str] | None:
    """`?risk_domains=verslaving,huisvesting`: known codes, no repeats; 422 otherwise."""
    if text is None:
        return None
    try:
        return _RISK_DOMAINS.validate_python([part.strip() for part in text.split(",")])
    except ValidationError as exc:
        raise ValidationFailed("risk_domains", "comma-separated risk domain codes, each once") from exc


class RecipientRuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    risk_domains: Literal["all"] | list[str]
    note: bool


class RouteMapRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [ROUTE_MAP_EXAMPLE]})

    effective_from: date
    recipients: dict[str, RecipientRuleRead]
    contact_deadline: dict[str, timedelta] = Field(description="per urgency, ISO 8601 durations")


class RouteMapVersions(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [{"current": ROUTE_MAP_EXAMPLE, "versions": [ROUTE_MAP_EXAMPLE]}]},
    )

    current: RouteMapRead | None = Field(description="the version in force today; null: the default applies")
    versions: list[RouteMapRead] = Field(description="every version, oldest first (later ones are scheduled)")
