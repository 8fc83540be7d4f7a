"""What the melding service's in-memory fake promises of the real repository
(services/melding/adapters/repository.py): the methods the unit tests drive the use cases through, with the real
signatures. mypy holds the fake and the real repository to this Protocol
(tests/integration/melding/test_repository_contract.py assigns both to it and runs one test set on both)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from services.melding.domain.model import (
    ConsentState,
    Delivery,
    HistoryEntry,
    Melding,
    MeldingRecord,
    MeldingStatus,
    RoutingReport,
    SenderRef,
)


class MeldingRecords(Protocol):
    """The meldingen as the sender sees them, their deliveries and history, and the consents' states."""

    async def add(
        self, *, melding_id: str, sender: SenderRef, consent: dict[str, Any], content: dict[str, Any], at: datetime
    ) -> tuple[MeldingRecord, HistoryEntry]: ...

    async def get(self, melding_id: str) -> MeldingRecord | None: ...

    async def page_for_sender(
        self,
        *,
        org_id: str,
        statuses: frozenset[MeldingStatus] = frozenset(),
        updated_since: datetime | None = None,
        cursor: str | None,
        limit: int,
    ) -> list[MeldingRecord]: ...

    async def deliveries(self, melding_ids: list[str]) -> dict[str, list[Delivery]]: ...

    async def history(self, melding_ids: list[str]) -> dict[str, list[HistoryEntry]]: ...

    async def lock(self, melding_id: str) -> Melding | None: ...

    async def lock_all(self, melding_ids: Collection[str]) -> dict[str, Melding]: ...

    async def save(self, melding: Melding, at: datetime) -> None: ...

    async def save_all(self, saved: Sequence[Melding], at: datetime) -> None: ...

    async def add_deliveries(self, new: Sequence[tuple[str, Delivery]]) -> None: ...

    async def save_delivery(self, melding_id: str, delivery: Delivery) -> None: ...

    async def mark_overdue(self, delivery_id: str, at: datetime) -> bool: ...

    async def set_routing(self, reports: Sequence[RoutingReport], at: datetime) -> None: ...

    async def add_history(self, melding_id: str, at: datetime, event: str, detail: str | None) -> HistoryEntry: ...

    async def add_histories(self, entries: Sequence[tuple[str, HistoryEntry]]) -> None: ...

    async def lock_patient(self, org_id: str, bsn: str) -> None: ...

    async def open_melding_for(self, org_id: str, bsn: str, recipient_types: list[str]) -> str | None: ...

    async def lock_consent(self, consent_id: str) -> ConsentState: ...

    async def record_withdrawal(self, consent_id: str, at: datetime) -> None: ...

    async def lock_not_withdrawn(self, consent_id: str) -> list[Melding]: ...

    async def remove_personal_data(self, melding_id: str, at: datetime) -> dict[str, Any] | None: ...

    async def count_personal_data_due(self, cutoff: date) -> int: ...

    async def lock_personal_data_due(self, cutoff: date, limit: int) -> list[str]: ...


class MeldingTransaction(Protocol):
    """One transaction of the melding service's unit of work, as far as the repository contract goes."""

    @property
    def meldingen(self) -> MeldingRecords: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...
