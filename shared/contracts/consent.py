"""The consent check as the consent service answers it and the melding and routing services ask it
(`POST /v1/consents/check`): one schema for server and clients."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.contracts.base import StrictModel
from shared.contracts.vocabulary import CheckReason, InformedAbout, RecipientType, RiskDomain
from shared.identifiers import Bsn, OrgId, ResourceId


def _no_repeats(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("each value may appear once")
    return values


RecipientTypes = Annotated[list[RecipientType], Field(min_length=1), AfterValidator(_no_repeats)]
RiskDomains = Annotated[list[RiskDomain], Field(min_length=1), AfterValidator(_no_repeats)]
InformedAboutCodes = Annotated[list[InformedAbout], AfterValidator(_no_repeats)]


class ConsentCheck(StrictModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "consent_id": "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10",
                    "bsn": "999999990",
                    "org_id": "12345678",
                    "recipient_types": ["jgz"],
                    "risk_domains": ["verslaving", "financien-schulden"],
                }
            ]
        },
    )

    consent_id: ResourceId
    bsn: Bsn
    org_id: OrgId = Field(description="The sending organisation (URA).")
    recipient_types: RecipientTypes
    risk_domains: RiskDomains | None = Field(
        None, description="The melding's risk domains: each must be one the patient consented to share."
    )


class ConsentScope(BaseModel):
    """What a recipient needs to know of the consent a melding travels under."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10",
                    "recipient_types": ["jgz", "wijkteam"],
                    "risk_domains": None,
                    "informed_about": ["purpose", "recipients", "data", "withdrawal"],
                    "valid_until": "2027-11-20",
                }
            ]
        }
    )

    id: str
    recipient_types: list[RecipientType]
    risk_domains: list[RiskDomain] | None = Field(
        None, description="The risk domains the patient agreed may be shared; null: every domain."
    )
    informed_about: list[InformedAbout] = Field(
        default_factory=list, description="What the professional explained before the patient consented."
    )
    valid_until: date


class ConsentCheckResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "allowed": True,
                    "reason": None,
                    "consent": {
                        "id": "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10",
                        "recipient_types": ["jgz", "wijkteam"],
                        "risk_domains": ["verslaving", "financien-schulden"],
                        "informed_about": ["purpose", "recipients", "data", "withdrawal"],
                        "valid_until": "2027-11-20",
                    },
                },
                {"allowed": False, "reason": "withdrawn", "consent": None},
            ]
        }
    )

    allowed: bool
    reason: CheckReason | None = None
    consent: ConsentScope | None = Field(None, description="Present when allowed.")
