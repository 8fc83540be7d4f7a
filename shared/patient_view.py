"""Her own access log: `GET /v1/self/audit`, on every service that keeps one, for a `patient:self` token.

The woman reads who accessed her data (NEN 7513 gives her that right): the records naming her keyed BSN
(`patient_ref`, which is her token's `sub`), with the acting organisation, what it did and when. Never the
person at the organisation (`actor_sub`), the BSN, the hash chain, or any record of another patient. Her
read is itself audited, with her as the actor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from shared.audit import AuditQuery, AuditTables, list_records, record_access
from shared.auth import Principal, current_patient
from shared.db import Database
from shared.problems import problem_responses

PATIENT_AUDIT_LIMIT = 5000  # per service: years of a melding's life; beyond it the oldest are left out
Patient = Annotated[Principal, Depends(current_patient)]


class PatientAuditRecord(BaseModel):
    at: datetime
    service: str
    actor_org_id: str = Field(description="who acted: an organisation's id, `patient` (herself) or a service")
    actor_org_type: str = Field(description="e.g. verloskundige, jgz, wijkteam, operator, service, patient")
    action: str
    resource_type: str
    resource_id: str | None = Field(description="the consent, melding or delivery it concerned (for grouping)")
    outcome: str


AUDIT_EXAMPLE: dict[str, Any] = {
    "at": "2026-11-22T08:14:03Z", "service": "routing", "actor_org_id": "00000555", "actor_org_type": "jgz",
    "action": "read", "resource_type": "delivery", "resource_id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10",
    "outcome": "success",
}  # fmt: skip


class PatientAuditLog(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [AUDIT_EXAMPLE], "complete": True}]})

    items: list[PatientAuditRecord] = Field(description="oldest first")
    complete: bool = Field(description="false when more records exist than one answer holds (the newest are kept)")


def patient_audit_router(tables: AuditTables) -> APIRouter:
    """`GET /v1/self/audit` over this service's own audit log, for the woman the token is bound to."""
    router = APIRouter(tags=["her own view"])

    @router.get(
        "/v1/self/audit",
        response_model=PatientAuditLog,
        summary="Who accessed her data (the woman herself)",
        description="The records of this service's audit log that name the woman the `patient:self` token is "
        "bound to: who (organisation), when, what. No other patient's records; no person's name; no BSN. Her "
        "read is audited with her as the actor.",
        responses=problem_responses(),
    )
    async def read_patient_audit(request: Request, patient: Patient) -> PatientAuditLog:
        database: Database = request.app.state.database
        query = AuditQuery(patient_ref=patient.sub, limit=PATIENT_AUDIT_LIMIT + 1)
        async with database.unit_of_work() as uow:
            records = await list_records(uow, tables, query)
            record_access(
                uow,
                tables,
                service=str(request.app.state.runtime.settings.service_name),
                principal=patient,
                action="read",
                resource_type="audit_log",
                resource_id=None,
                patient_bsn=None,
                patient_ref=patient.sub,
                request_id=getattr(request.state, "request_id", None),
            )
            await uow.commit()
        complete = len(records) <= PATIENT_AUDIT_LIMIT
        return PatientAuditLog(
            items=[PatientAuditRecord.model_validate(r) for r in records[-PATIENT_AUDIT_LIMIT:]], complete=complete
        )

    return router
