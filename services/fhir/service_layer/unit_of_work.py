"""The FHIR facade's unit of work: its outbox and audit log on one transaction."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Self

from services.fhir.adapters.orm import audit, outbox
from services.fhir.adapters.repository import SubscriptionRepository
from shared.audit import AuditLog
from shared.db import Database, UnitOfWork
from shared.messaging.outbox import Outbox

SERVICE = "fhir"


class FhirUnitOfWork(UnitOfWork):
    """`subscriptions` (and their notifications), `outbox` and `audit`, all on this transaction."""

    subscriptions: SubscriptionRepository
    outbox: Outbox
    audit: AuditLog

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.subscriptions = SubscriptionRepository(self.session)
        self.outbox = Outbox(self, outbox)
        self.audit = AuditLog(self, audit, SERVICE)
        return self


UnitOfWorkFactory = Callable[[], FhirUnitOfWork]


def unit_of_work_factory(database: Database) -> UnitOfWorkFactory:
    return partial(FhirUnitOfWork, database)
