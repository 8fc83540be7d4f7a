"""The routing API's bodies (CONTRACT.md, routing service)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from shared.contracts.base import StrictModel
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from services.routing.domain.model import Pc4Range
from shared.api import RecipientType
from shared.identifiers import GemeenteCode, PostcodeArea


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
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"name": "Amsterdam", "postcode_ranges": [{"from": "1011", "to": "1109"}]}]})

    name: str = Field(min_length=1, max_length=100)
    postcode_ranges: PostcodeRanges = Field(default_factory=list)


class GemeenteRead(BaseModel):
    code: str
    name: str
    postcode_ranges: list[dict[str, str]]
    source: str
    ended_at: datetime | None


class GemeenteList(BaseModel):
    items: list[GemeenteRead]


class OrganisationPut(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "GGD Amsterdam JGZ", "type": "jgz", "gemeenten": ["GM0363"], "postcode_ranges": [], "active": True}]})

    name: str = Field(min_length=1, max_length=200)
    type: RecipientType
    gemeenten: Annotated[list[GemeenteCode], AfterValidator(_no_repeats)] = Field(default_factory=list)
    postcode_ranges: PostcodeRanges = Field(default_factory=list)
    active: StrictBool = True


class OrganisationRead(BaseModel):
    org_id: str
    name: str
    type: str
    active: bool
    gemeenten: list[str]
    postcode_ranges: list[dict[str, str]]
    queue: str
    created_at: datetime
    updated_at: datetime


class OrganisationList(BaseModel):
    items: list[OrganisationRead]


class RouteRecipient(BaseModel):
    org_id: str
    name: str


class GemeenteRef(BaseModel):
    code: str
    name: str


class RoutePreview(BaseModel):
    postcode: str
    gemeente: GemeenteRef | None
    recipients: dict[str, RouteRecipient | None]
    note: str | None = Field(None, description="Present when the postcode area straddles a gemeente border.")


class UnroutableItem(BaseModel):
    melding_id: str
    gemeente_code: str | None
    requested_types: list[str]
    unroutable_types: list[str]
    waiting_since: datetime


class UnroutableList(BaseModel):
    items: list[UnroutableItem]


class RerouteResult(BaseModel):
    melding_id: str
    status: str = Field(description="routed, waiting (still no recipient for some type), withdrawn or refused")


class DeadLetterRead(BaseModel):
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
    items: list[DeadLetterRead]


class StatusReport(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"status": "received"}, {"status": "contact_made", "note": "Huisbezoek gepland op 3 december."}]})

    status: Literal["received", "contact_made", "closed"]
    note: str | None = Field(None, max_length=500)


class DeliveryDocument(BaseModel):
    """The queue message as the recipient got it (`melding.delivered`), or its retraction, with `status`."""

    model_config = ConfigDict(extra="allow")

    delivery_id: str
    melding_id: str
    status: str


class DeliveryPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None
