"""The melding service's unit of work: one transaction and what a use case works with inside it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Self

from services.melding.adapters.orm import audit, idempotency_keys, outbox
from services.melding.adapters.repository import MeldingRepository
from services.melding.domain.model import Melding
from services.melding.service_layer.ports import MeldingTransaction
from shared.audit import AuditLog
from shared.contracts.melding import MELDING_CHANGED, MeldingChanged
from shared.db import Database, UnitOfWork
from shared.idempotency import IdempotencyKeys
from shared.messaging.outbox import Outbox
from shared.messaging.topology import EVENTS_EXCHANGE

SERVICE = "melding"


class ChangedMeldingen:
    """Says which meldingen a transaction changed: one `melding.changed` per melding and transaction (ids only),
    staged in the outbox just before the commit, for those who follow the sender's meldingen (the FHIR
    facade's subscriptions). The fake unit of work of the unit tests carries the same."""

    def __init__(self, uow: MeldingTransaction) -> None:
        self.uow = uow
        self._changed: dict[str, MeldingChanged] = {}

    def note(self, meldingen: Sequence[tuple[Melding, datetime]]) -> None:
        for melding, at in meldingen:
            self._changed[melding.id] = MeldingChanged(
                melding_id=melding.id, sender_org_id=melding.sender_org_id, status=melding.status.value, at=at
            )
        self.uow.before_commit(MELDING_CHANGED, self._stage)

    async def _stage(self, _uow: object, _key: str) -> None:
        changed, self._changed = self._changed, {}
        # Not `mandatory`: where no FHIR facade runs, no queue takes these, and that is as it should be.
        rows = [
            self.uow.outbox.row(
                exchange=EVENTS_EXCHANGE,
                routing_key=MELDING_CHANGED,
                message_type=MELDING_CHANGED,
                body=event,
                correlation_id=event.melding_id,
                mandatory=False,
            )
            for event in changed.values()
        ]
        await self.uow.outbox.add_rows(rows)  # one statement for all of them


class MeldingUnitOfWork(UnitOfWork):
    """`meldingen`, `outbox`, `audit` and `idempotency`, all on this transaction; nothing is written unless
    `commit()` is called."""

    meldingen: MeldingRepository
    outbox: Outbox
    audit: AuditLog
    idempotency: IdempotencyKeys
    changes: ChangedMeldingen

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.meldingen = MeldingRepository(self.session, lambda: self.database.cipher)
        self.outbox = Outbox(self, outbox)
        self.audit = AuditLog(self, audit, SERVICE)
        self.idempotency = IdempotencyKeys(self, idempotency_keys)
        self.changes = ChangedMeldingen(self)
        return self

    async def save(self, melding: Melding, at: datetime) -> None:
        await self.save_all([(melding, at)])

    async def save_all(self, saved: Sequence[tuple[Melding, datetime]]) -> None:
        """Write what the model's rules changed, and say that the meldingen changed (`ChangedMeldingen`)."""
        await self.meldingen.save_all(saved)
        self.changes.note(saved)


UnitOfWorkFactory = Callable[[], MeldingUnitOfWork]


def unit_of_work_factory(database: Database) -> UnitOfWorkFactory:
    return partial(MeldingUnitOfWork, database)
