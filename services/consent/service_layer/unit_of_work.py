"""The consent service's unit of work: one transaction and what a use case works with inside it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Self

from services.consent.adapters.orm import audit, idempotency_keys, outbox
from services.consent.adapters.repository import ConsentRepository
from shared.audit import AuditLog
from shared.db import Database, UnitOfWork
from shared.idempotency import IdempotencyKeys
from shared.messaging.outbox import Outbox

SERVICE = "consent"


class ConsentUnitOfWork(UnitOfWork):
    """`consents`, `outbox`, `audit` and `idempotency`, all on this transaction; nothing is written unless
    `commit()` is called."""

    consents: ConsentRepository
    outbox: Outbox
    audit: AuditLog
    idempotency: IdempotencyKeys

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.consents = ConsentRepository(self.session, self.database.cipher)
        self.outbox = Outbox(self, outbox)
        self.audit = AuditLog(self, audit, SERVICE)
        self.idempotency = IdempotencyKeys(self, idempotency_keys)
        return self


UnitOfWorkFactory = Callable[[], ConsentUnitOfWork]


def unit_of_work_factory(database: Database) -> UnitOfWorkFactory:
    return partial(ConsentUnitOfWork, database)
