"""`Idempotency-Key` on the EHR-facing POSTs: a retry gets the first answer back, never a second resource.

The key is stored with a fingerprint of the request in the same transaction as the resource it
created. A repeat with the same key and the same body returns the first response (same status, same
id); the same key with another body is `409 idempotency-conflict`. Keys are scoped per organisation.
Only the resource id is kept, not the response body, so no personal data is stored twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated

from fastapi import Header
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, PrimaryKeyConstraint, String, Table, select

from shared.clock import now as utcnow
from shared.db import UnitOfWork, UTCDateTime
from shared.errors import IdempotencyConflict

KEY_PATTERN = r"^[\x20-\x7E]{1,200}$"  # 1-200 printable ASCII characters

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=KEY_PATTERN,
        description="1-200 printable characters. A retry with the same key and body returns the first "
        "response and creates nothing; the same key with another body is 409. Keys are kept 24 hours at least.",
        examples=["3f1c2a9e-7d1b-4c55-9a7e-0b6f2d1e8c41"],
    ),
]


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_keys",
        metadata,
        Column("org_id", String(64), nullable=False),
        Column("key", String(200), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("resource_id", String(36), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        PrimaryKeyConstraint("org_id", "key"),
    )


def fingerprint(operation: str, body: BaseModel) -> str:
    """A hash of what was asked: the operation and the body as parsed (whitespace and key order don't count)."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{operation}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    resource_id: str


async def find_previous(
    uow: UnitOfWork, table: Table, *, org_id: str, key: str, request_fingerprint: str
) -> StoredResponse | None:
    row = (
        await uow.session.execute(
            select(table.c.fingerprint, table.c.status_code, table.c.resource_id).where(
                table.c.org_id == org_id, table.c.key == key
            )
        )
    ).first()
    if row is None:
        return None
    if row.fingerprint != request_fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was used before with a different request")
    return StoredResponse(status_code=row.status_code, resource_id=row.resource_id)


async def remember(
    uow: UnitOfWork,
    table: Table,
    *,
    org_id: str,
    key: str,
    request_fingerprint: str,
    status_code: int,
    resource_id: str,
) -> None:
    await uow.session.execute(
        table.insert().values(
            org_id=org_id,
            key=key,
            fingerprint=request_fingerprint,
            status_code=status_code,
            resource_id=resource_id,
            created_at=utcnow(),
        )
    )


class IdempotencyKeys:
    """The Idempotency-Keys of one service as a use case sees them, bound to its unit of work."""

    def __init__(self, uow: UnitOfWork, table: Table) -> None:
        self.uow, self.table = uow, table

    async def find_previous(self, *, org_id: str, key: str, request_fingerprint: str) -> StoredResponse | None:
        """The first answer to this key (IdempotencyConflict for another request), or None if it is new."""
        return await find_previous(
            self.uow, self.table, org_id=org_id, key=key, request_fingerprint=request_fingerprint
        )

    async def remember(
        self, *, org_id: str, key: str, request_fingerprint: str, status_code: int, resource_id: str
    ) -> None:
        await remember(
            self.uow,
            self.table,
            org_id=org_id,
            key=key,
            request_fingerprint=request_fingerprint,
            status_code=status_code,
            resource_id=resource_id,
        )
