"""The audit log (fields of NEN 7513): one append-only record per access to personal data.

Each record is written in the same transaction as the access it describes, so an access that
happened is never missing from the log. Nothing updates or deletes audit rows.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, Index, MetaData, String, Table, select

from shared.auth import Principal
from shared.clock import now as utcnow
from shared.db import UnitOfWork, UTCDateTime


def audit_table(metadata: MetaData) -> Table:
    return Table(
        "audit_log",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("at", UTCDateTime(), nullable=False),
        Column("service", String(32), nullable=False),
        Column("actor_sub", String(200), nullable=False),
        Column("actor_org_id", String(64), nullable=False),
        Column("actor_org_type", String(32), nullable=False),
        Column("action", String(32), nullable=False),
        Column("resource_type", String(32), nullable=False),
        Column("resource_id", String(64), nullable=True),
        Column("patient_bsn", String(9), nullable=True),
        Column("outcome", String(32), nullable=False),
        Column("request_id", String(128), nullable=True),
        Index("ix_audit_log_at", "at"),
    )


async def record_access(
    uow: UnitOfWork,
    table: Table,
    *,
    service: str,
    principal: Principal,
    action: str,
    resource_type: str,
    resource_id: str | None,
    patient_bsn: str | None,
    request_id: str | None,
    outcome: str = "success",
) -> None:
    await uow.session.execute(
        table.insert().values(
            id=str(uuid.uuid4()), at=utcnow(), service=service, actor_sub=principal.sub,
            actor_org_id=principal.org_id, actor_org_type=principal.org_type, action=action,
            resource_type=resource_type, resource_id=resource_id, patient_bsn=patient_bsn,
            outcome=outcome, request_id=request_id,
        )
    )


async def list_records(uow: UnitOfWork, table: Table, *, since: datetime | None, limit: int) -> list[dict]:
    query = select(table).order_by(table.c.at, table.c.id).limit(limit)
    if since is not None:
        query = query.where(table.c.at >= since)
    return [dict(row._mapping) for row in await uow.session.execute(query)]
