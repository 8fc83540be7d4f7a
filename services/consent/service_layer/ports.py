"""What the consent service's use cases need of their unit of work, as a Protocol: the real one
(`service_layer/unit_of_work.py`, with `adapters/repository.py`) satisfies it, and so must any in-memory fake
a unit test hands a use case (mypy checks both)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Protocol

from services.consent.domain.model import Consent
from shared.crypto import FieldCipher
from shared.idempotency import KeyStore
from shared.ports import AuditTrail, StagingOutbox, Transaction


class ConsentRecords(Protocol):
    """The consents: recorded, withdrawn, found for an organisation's patient or for the woman herself."""

    @property
    def cipher(self) -> FieldCipher:
        """The keys the BSN is hashed with (`bsn_ref`): her own reads find her consents by it."""

    async def add(self, consent: Consent) -> None: ...

    async def get(self, consent_id: str) -> Consent | None: ...

    async def save_withdrawal(self, consent: Consent) -> None: ...

    async def for_patient(self, *, org_id: str, bsn: str) -> list[Consent]: ...

    async def of_patient(self, bsn_ref: str) -> list[Consent]: ...

    async def count_past_retention(self, *, withdrawn_before: datetime, valid_before: date) -> int: ...

    async def delete_past_retention(self, *, withdrawn_before: datetime, valid_before: date) -> int: ...


class ConsentTransaction(Transaction, Protocol):
    """One transaction of the consent service's unit of work, as its use cases use it."""

    @property
    def consents(self) -> ConsentRecords: ...

    @property
    def outbox(self) -> StagingOutbox: ...

    @property
    def audit(self) -> AuditTrail: ...

    @property
    def idempotency(self) -> KeyStore: ...


TransactionFactory = Callable[[], ConsentTransaction]
