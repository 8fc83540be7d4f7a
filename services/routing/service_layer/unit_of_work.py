"""The routing service's unit of work: one transaction and what a use case works with inside it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
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

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A part of this transaction that may fail on its own: on an exception what it wrote is rolled back
        (the exception goes on), and the rest of the transaction can still commit. What is staged in memory
        for the commit (queue messages, audit records) is not rolled back: stage it last, after the writes."""
        async with self.session.begin_nested():
            yield


UnitOfWorkFactory = Callable[[], RoutingUnitOfWork]


def unit_of_work_factory(database: Database) -> UnitOfWorkFactory:
    return partial(RoutingUnitOfWork, database)
