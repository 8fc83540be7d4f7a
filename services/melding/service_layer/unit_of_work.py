"""The melding service's unit of work: one transaction and what a use case works with inside it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Self

from services.melding.adapters.orm import audit, idempotency_keys, outbox
from services.melding.adapters.repository import MeldingRepository
from shared.audit import AuditLog
from shared.db import Database, UnitOfWork
from shared.idempotency import IdempotencyKeys
from shared.messaging.outbox import Outbox

SERVICE = "melding"


class MeldingUnitOfWork(UnitOfWork):
    """`meldingen`, `outbox`, `audit` and `idempotency`, all on this transaction; nothing is written unless
    `commit()` is called."""

    meldingen: MeldingRepository
    outbox: Outbox
    audit: AuditLog
    idempotency: IdempotencyKeys

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.meldingen = MeldingRepository(self.session, lambda: self.database.cipher)
        self.outbox = Outbox(self, outbox)
        self.audit = AuditLog(self, audit, SERVICE)
        self.idempotency = IdempotencyKeys(self, idempotency_keys)
        return self


UnitOfWorkFactory = Callable[[], MeldingUnitOfWork]


def unit_of_work_factory(database: Database) -> UnitOfWorkFactory:
    return partial(MeldingUnitOfWork, database)
