"""The consent API's request and response bodies (the contract, consent service)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.consent.domain.model import Consent, ConsentStatus, WithdrawnBy
from shared.clock import IsoDate
from shared.contracts.base import StrictModel
from shared.contracts.consent import (
    ConsentCheck,
    ConsentCheckResult,
    ConsentScope,
    InformedAboutCodes,
    RecipientTypes,
    RiskDomains,
)
from shared.contracts.vocabulary import InformedAbout, RecipientType, RiskDomain
from shared.identifiers import Bsn

__all__ = ["ConsentCheck", "ConsentCheckResult", "ConsentScope"]  # the check is a shared contract


class Strict(StrictModel):
    model_config = ConfigDict(extra="forbid")


class PatientRef(Strict):
    bsn: Bsn


class ConsentCreate(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "patient": {"bsn": "999999990"},
                    "recipient_types": ["jgz", "wijkteam"],
                    "purpose": "kansrijke-start-melding",
                    "method": "verbal",
                    "given_at": "2026-11-20",
                    "valid_until": "2027-11-20",
                    "risk_domains": ["verslaving", "financien-schulden"],
                    "informed_about": ["purpose", "recipients", "data", "withdrawal"],
                }
            ]
        },
    )

    patient: PatientRef
    recipient_types: RecipientTypes
    risk_domains: RiskDomains | None = Field(
        None, description="The risk domains the patient agrees may be shared (the risk-domain codes); absent: all."
    )
    informed_about: InformedAboutCodes = Field(
        default_factory=list,
        description="What the professional explained: purpose, recipients, data, withdrawal, phb (the prenatal "
        "home visit). It travels with every melding sent under this consent.",
    )
    purpose: Literal["kansrijke-start-melding"] = "kansrijke-start-melding"
    method: Literal["verbal", "written"]
    given_at: IsoDate = Field(description="The day the patient gave consent; not in the future.")
    valid_until: IsoDate | None = Field(
        None, description="Last day the consent holds (inclusive). Default: one year after given_at."
    )


class RecordedBy(BaseModel):
    org_id: str
    org_type: str
    sub: str


class WithdrawnByRead(BaseModel):
    type: WithdrawnBy = Field(description="`organisation`: the one that recorded it; `patient`: the woman herself")


CONSENT_EXAMPLE: dict[str, Any] = {
    "id": "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10",
    "patient": {"bsn": "999999990"},
    "recipient_types": ["jgz", "wijkteam"],
    "purpose": "kansrijke-start-melding",
    "method": "verbal",
    "given_at": "2026-11-20",
    "valid_until": "2027-11-20",
    "risk_domains": ["verslaving", "financien-schulden"],
    "informed_about": ["purpose", "recipients", "data", "withdrawal"],
    "status": "active",
    "recorded_by": {"org_id": "12345678", "org_type": "verloskundige", "sub": "m.jansen"},
    "created_at": "2026-11-20T10:15:02Z",
    "withdrawn_at": None,
    "withdrawn_by": None,
}


class ConsentRead(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CONSENT_EXAMPLE]})

    id: str
    patient: PatientRef
    recipient_types: list[RecipientType]
    purpose: str
    method: str
    given_at: date
    valid_until: date
    risk_domains: list[RiskDomain] | None = Field(description="null: every domain")
    informed_about: list[InformedAbout]
    status: ConsentStatus
    recorded_by: RecordedBy
    created_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by: WithdrawnByRead | None = Field(
        None, description='who withdrew it: `{"type": "patient"}` when the woman did so herself; null: not withdrawn'
    )

    @classmethod
    def of(cls, consent: Consent, today: date) -> ConsentRead:
        return cls(
            id=consent.id,
            patient=PatientRef(bsn=consent.bsn),
            recipient_types=list(consent.recipient_types),
            purpose=consent.purpose,
            method=consent.method,
            given_at=consent.given_at,
            valid_until=consent.valid_until,
            risk_domains=list(consent.risk_domains) if consent.risk_domains is not None else None,
            informed_about=list(consent.informed_about),
            status=consent.status(today),
            recorded_by=RecordedBy(
                org_id=consent.recorded_by_org_id, org_type=consent.recorded_by_org_type, sub=consent.recorded_by_sub
            ),
            created_at=consent.created_at,
            withdrawn_at=consent.withdrawn_at,
            withdrawn_by=(
                WithdrawnByRead(type=WithdrawnBy(consent.withdrawn_by or WithdrawnBy.organisation))
                if consent.withdrawn_at is not None
                else None
            ),
        )


class ConsentWithdraw(Strict):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "Cliënte trekt toestemming in."}]}
    )

    reason: str | None = Field(None, max_length=500)


class ConsentSearch(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"bsn": "999999990"}]})

    bsn: Bsn


class ConsentList(BaseModel):
    items: list[ConsentRead]


def scope_of(consent: Consent) -> ConsentScope:
    """What a melding carries of its consent: scope and evidence, no patient."""
    return ConsentScope.model_validate(
        {
            "id": consent.id,
            "recipient_types": list(consent.recipient_types),
            "risk_domains": list(consent.risk_domains) if consent.risk_domains is not None else None,
            "informed_about": list(consent.informed_about),
            "valid_until": consent.valid_until,
        }
    )
