"""The route map as a coordinator writes it, checked once for every way in: the body of
`PUT /v1/gemeenten/{code}/route-map` (the API's schema) and a file of many (`route_map_file.py`,
`kansrijk directory route-maps`)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StrictBool

from services.routing.domain.route_map import RecipientRule, RouteMap
from shared.clock import IsoDate
from shared.contracts.base import StrictModel
from shared.contracts.consent import RiskDomains
from shared.contracts.vocabulary import RecipientType


class _Strict(StrictModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


_DURATION = re.compile(r"^P(?=[0-9T])([0-9]+W)?([0-9]+D)?(T(?=[0-9])([0-9]+H)?([0-9]+M)?([0-9]+S)?)?$")


def _iso_duration(value: object) -> object:
    if not isinstance(value, str) or not _DURATION.fullmatch(value):
        raise ValueError("must be an ISO 8601 duration in weeks, days, hours, minutes or seconds (e.g. P14D, PT4H)")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


IsoDuration = Annotated[timedelta, BeforeValidator(_iso_duration), AfterValidator(_positive)]


class RecipientRulePut(_Strict):
    risk_domains: Literal["all"] | RiskDomains = Field(
        description='"all", or the risk domains this recipient type receives (the risk-domain codes)'
    )
    note: StrictBool = Field(True, description="whether the free-text note goes along")


class ContactDeadlinePut(_Strict):
    regular: IsoDuration = Field(timedelta(days=14), description="ISO 8601 duration, default P14D")
    urgent: IsoDuration = Field(timedelta(days=2), description="ISO 8601 duration, default P2D")


ROUTE_MAP_EXAMPLE: dict[str, Any] = {
    "effective_from": "2027-01-01",
    "recipients": {
        "jgz": {"risk_domains": "all", "note": True},
        "wijkteam": {
            "risk_domains": ["huiselijk-geweld", "financien-schulden", "huisvesting", "sociaal-netwerk"],
            "note": False,
        },
    },
    "contact_deadline": {"regular": "P14D", "urgent": "P2D"},
}


class RouteMapPut(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ROUTE_MAP_EXAMPLE]})

    effective_from: IsoDate = Field(
        description="the first day this version applies (YYYY-MM-DD); before it, the previous one"
    )
    recipients: dict[RecipientType, RecipientRulePut] = Field(
        description="per recipient type what it receives; a type absent here receives nothing in this gemeente"
    )
    contact_deadline: ContactDeadlinePut = Field(default_factory=ContactDeadlinePut)

    def domain(self) -> RouteMap:
        return RouteMap(
            effective_from=self.effective_from,
            recipients={
                recipient_type: RecipientRule(
                    risk_domains=None if rule.risk_domains == "all" else frozenset(rule.risk_domains), note=rule.note
                )
                for recipient_type, rule in self.recipients.items()
            },
            contact_deadline={"regular": self.contact_deadline.regular, "urgent": self.contact_deadline.urgent},
        )
