"""The routing service's unit of work: one transaction and what a use case works with inside it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Self

from services.routing.adapters.orm import audit, outbox
from services.routing.adapters.repository import DirectoryRepository, RoutingRepository
from services.routing.service_layer.recipient_queue import RecipientQueue
from shared.audit import AuditLog
from shared.db import Database, UnitOfWork
from shared.messaging.outbox import Outbox

SERVICE = "routing"


class RoutingUnitOfWork(UnitOfWork):
    """`routing` (meldingen, deliveries, consents' states, dead letters), `directory`, `outbox`, `recipients`
    (the recipients' queues, numbered at commit) and `audit`, all on this transaction; nothing is written
    unless `commit()` is called."""

    routing: RoutingRepository
    directory: DirectoryRepository
    outbox: Outbox
    recipients: RecipientQueue
    audit: AuditLog

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.routing = RoutingRepository(self.session, lambda: self.database.cipher)
        self.directory = DirectoryRepository(self.session)
        self.outbox = Outbox(self, outbox)
        self.recipients = RecipientQueue(self)
        self.audit = AuditLog(self, audit, SERVICE)
        return self


UnitOfWorkFactory = Callable[[], RoutingUnitOfWork]


def unit_of_work_factory(database: Database) -> UnitOfWorkFactory:
    return partial(RoutingUnitOfWork, database)
