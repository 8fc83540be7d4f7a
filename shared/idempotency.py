"""`Idempotency-Key` on the EHR-facing POSTs: a retry gets the first answer back, never a second resource.

The key is stored with a fingerprint of the request in the same transaction as the resource it
created. A repeat with the same key and the same body returns the first response (same status, same
id); the same key with another body is `409 idempotency-conflict`. Keys are scoped per organisation.
Only the resource id is kept, not the response body, so no personal data is stored twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Annotated, Protocol, Self, TypeVar

from fastapi import Header
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, PrimaryKeyConstraint, String, Table, delete, select, tuple_
from sqlalchemy.exc import IntegrityError

from shared.clock import now as utcnow
from shared.db import UnitOfWork, UTCDateTime, insert_new
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
) -> bool:
    """Store the key's first answer unless the key is taken; True if this call stored it. A concurrent request
    with the same key waits here for the other transaction, and finds the key taken once that one commits."""
    request = IdempotentRequest(org_id, key, request_fingerprint, status_code)
    return bool(await remember_all(uow, table, [(request, resource_id)]))


async def remember_all(uow: UnitOfWork, table: Table, requests: Sequence[tuple[IdempotentRequest, str]]) -> set[str]:
    """`remember` for several requests (each with its new resource's id) in one statement: the resource ids
    whose keys this call stored. Two requests of one batch must not share a key."""
    at = utcnow()
    rows = [
        {
            "org_id": request.org_id,
            "key": request.key,
            "fingerprint": request.fingerprint,
            "status_code": request.status_code,
            "resource_id": resource_id,
            "created_at": at,
        }
        for request, resource_id in requests
    ]
    return await insert_new(uow.session, table, rows, returning=table.c.resource_id)


async def forget(uow: UnitOfWork, table: Table, requests: Sequence[IdempotentRequest]) -> None:
    """Take back keys this transaction stored for creates that in the end stored nothing (refused), in one
    statement, so that the transaction can still commit what the others created."""
    if requests:
        pairs = [(request.org_id, request.key) for request in requests]
        await uow.session.execute(delete(table).where(tuple_(table.c.org_id, table.c.key).in_(pairs)))


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
    ) -> bool:
        return await remember(
            self.uow,
            self.table,
            org_id=org_id,
            key=key,
            request_fingerprint=request_fingerprint,
            status_code=status_code,
            resource_id=resource_id,
        )

    async def remember_all(self, requests: Sequence[tuple[IdempotentRequest, str]]) -> set[str]:
        return await remember_all(self.uow, self.table, requests)

    async def forget(self, requests: Sequence[IdempotentRequest]) -> None:
        await forget(self.uow, self.table, requests)


@dataclass(frozen=True)
class IdempotentRequest:
    """A create asked with an Idempotency-Key: the asking organisation, the key, the request's fingerprint
    and the status the first answer had (201, 202)."""

    org_id: str
    key: str
    fingerprint: str
    status_code: int


class KeyStore(Protocol):
    """What a create needs of the Idempotency-Keys: `IdempotencyKeys`, or a unit test's in-memory keys."""

    async def find_previous(self, *, org_id: str, key: str, request_fingerprint: str) -> StoredResponse | None: ...

    async def remember(
        self, *, org_id: str, key: str, request_fingerprint: str, status_code: int, resource_id: str
    ) -> bool:
        """Store the key's first answer; False (nothing stored) if the key is taken."""

    async def remember_all(self, requests: Sequence[tuple[IdempotentRequest, str]]) -> set[str]:
        """`remember` of several requests (no two with one key), each with its resource's id: the ids stored."""

    async def forget(self, requests: Sequence[IdempotentRequest]) -> None:
        """Take back keys this transaction stored (their creates were refused)."""


class KeyedUnitOfWork(Protocol):
    """A service's unit of work that keeps Idempotency-Keys on its transaction."""

    @property
    def idempotency(self) -> KeyStore: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


U = TypeVar("U", bound=KeyedUnitOfWork)
T = TypeVar("T")


async def replay_of(
    unit_of_work: Callable[[], U], request: IdempotentRequest, replay: Callable[[U, str], Awaitable[T]]
) -> T | None:
    """The first answer to this key, read in a transaction of its own (409 for another request), or None if
    the key is new: for a create that asks another service first and must not ask it again on a retry."""
    async with unit_of_work() as uow:
        previous = await uow.idempotency.find_previous(
            org_id=request.org_id, key=request.key, request_fingerprint=request.fingerprint
        )
        return None if previous is None else await replay(uow, previous.resource_id)


async def create_once(
    unit_of_work: Callable[[], U],
    request: IdempotentRequest | None,
    *,
    new_id: Callable[[], str],
    create: Callable[[U, str], Awaitable[T]],
    replay: Callable[[U, str], Awaitable[T]],
) -> T:
    """The one idempotent create, in one transaction: the key is stored first (`INSERT … ON CONFLICT DO
    NOTHING`), then `create` stores the resource under `new_id()` and commits (raising, or returning without
    commit, stores nothing, the key neither). A key seen before is taken: its first answer is read and given
    again (`replay`). A concurrent request with the same key waits on the key's row until the first commits,
    and then answers as it did. Without a key it is a plain create."""
    for attempt in (1, 2):
        try:
            async with unit_of_work() as uow:
                if request is None:
                    return await create(uow, new_id())
                # The key first (one statement for a new key, the usual case); a taken one is read.
                resource_id = new_id()
                if await uow.idempotency.remember(
                    org_id=request.org_id,
                    key=request.key,
                    request_fingerprint=request.fingerprint,
                    status_code=request.status_code,
                    resource_id=resource_id,
                ):
                    return await create(uow, resource_id)
                previous = await uow.idempotency.find_previous(
                    org_id=request.org_id, key=request.key, request_fingerprint=request.fingerprint
                )
                if previous is not None:
                    return await replay(uow, previous.resource_id)
                # Taken, yet gone when read (pruned in between): the next round stores it afresh.
        except IntegrityError:
            # A concurrent request with the same key committed first: the next round answers as it did.
            if request is None or attempt == 2:
                raise
    raise RuntimeError("the Idempotency-Key was taken yet gone when read, twice")
