"""Building blocks every service's API uses: request id, audit endpoint, common field types."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Table

from shared.audit import list_records
from shared.auth import Principal, require_scope
from shared.clients.consent import ConsentClient
from shared.db import Database
from shared.problems import problem_responses

RecipientType = Literal["jgz", "wijkteam"]


def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


RequestId = Annotated[str | None, Depends(request_id)]


def database(request: Request) -> Database:
    return request.app.state.database


def consent_client(request: Request) -> ConsentClient:
    """The consent service's client, in services that check consent (see `shared.app.attach_consent_client`)."""
    return request.app.state.runtime.extras["consent_client"]


DatabaseDep = Annotated[Database, Depends(database)]
ConsentClientDep = Annotated[ConsentClient, Depends(consent_client)]


class AuditRecord(BaseModel):
    id: str
    at: datetime
    service: str
    actor_sub: str
    actor_org_id: str
    actor_org_type: str
    action: str = Field(examples=["read"])
    resource_type: str = Field(examples=["consent"])
    resource_id: str | None
    patient_bsn: str | None
    outcome: str = Field(examples=["success"])
    request_id: str | None


class AuditPage(BaseModel):
    items: list[AuditRecord]


def audit_router(table: Table) -> APIRouter:
    """`GET /v1/audit` over a service's own audit log."""
    router = APIRouter(tags=["audit"])

    @router.get(
        "/v1/audit",
        response_model=AuditPage,
        summary="Read the audit log",
        description="One record per access to personal data (the fields of NEN 7513), oldest first. "
        "Append-only. Needs the scope `audit:read`.",
        responses=problem_responses("validation"),
    )
    async def read_audit(
        request: Request,
        _: Annotated[Principal, Depends(require_scope("audit:read"))],
        since: Annotated[datetime | None, Query(description="only records at or after this time")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> AuditPage:
        async with request.app.state.database.unit_of_work() as uow:
            records = await list_records(uow, table, since=since, limit=limit)
        return AuditPage(items=[AuditRecord(**r) for r in records])

    return router
