"""What the melding service's use cases need of their unit of work, as Protocols: the real one
(`service_layer/unit_of_work.py`, with `adapters/repository.py`) and the in-memory fake of the unit tests
(`tests/unit/melding/fakes.py`) both satisfy them, and mypy checks that they do.

Two sizes. `MeldingTransaction` is what sending, cancelling, reading a melding, the event handlers and the
purge work in, and what the fake implements in full. `FullMeldingTransaction` adds what only the real
repository answers: her own view (found by her keyed hash) and the programme figures (the skeletons of
whole years), tested on the database (tests/integration/melding/)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from services.melding.domain.figures import MeldingFacts
from services.melding.domain.model import (
    ConsentState,
    Delivery,
    HistoryEntry,
    Melding,
    MeldingRecord,
    MeldingStatus,
    NewMelding,
    OpenAsk,
    RoutingReport,
    SenderRef,
)
from shared.contracts.events import ConsentRecorded
from shared.idempotency import KeyStore
from shared.ports import AuditTrail, HookedTransaction, StagingOutbox


class MeldingRecords(Protocol):
    """The meldingen as the sender sees them, their deliveries and history, and the consents' states."""

    async def add(
        self, *, melding_id: str, sender: SenderRef, consent: dict[str, Any], content: dict[str, Any], at: datetime
    ) -> tuple[MeldingRecord, HistoryEntry]: ...

    async def add_all(self, new: Sequence[NewMelding]) -> list[tuple[MeldingRecord, HistoryEntry]]: ...

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

    async def save_all(self, saved: Sequence[tuple[Melding, datetime]]) -> None: ...

    async def add_deliveries(self, new: Sequence[tuple[str, Delivery]]) -> None: ...

    async def update_deliveries(self, changed: Sequence[Delivery]) -> None: ...

    async def mark_overdue(self, delivery_id: str, at: datetime) -> bool: ...

    async def set_routing(self, reports: Sequence[RoutingReport], at: datetime) -> None: ...

    async def add_history(self, melding_id: str, at: datetime, event: str, detail: str | None) -> HistoryEntry: ...

    async def add_histories(self, entries: Sequence[tuple[str, HistoryEntry]]) -> None: ...

    async def lock_patients(self, patients: Collection[tuple[str, str]]) -> None: ...

    async def open_meldingen_for(self, asked: Sequence[OpenAsk]) -> list[str | None]: ...

    async def lock_consent(self, consent_id: str) -> ConsentState: ...

    async def lock_consents(self, consent_ids: Collection[str]) -> dict[str, ConsentState]: ...

    def patient_ref(self, bsn: str) -> str: ...

    async def record_consents(self, recorded: Sequence[ConsentRecorded]) -> None: ...

    async def record_heartbeat(self, at: datetime) -> None: ...

    async def record_withdrawal(self, consent_id: str, at: datetime) -> None: ...

    async def lock_not_withdrawn(self, consent_id: str) -> list[Melding]: ...

    async def remove_personal_data(self, melding_id: str, at: datetime) -> dict[str, Any] | None: ...

    async def count_personal_data_due(self, cutoff: date) -> int: ...

    async def lock_personal_data_due(self, cutoff: date, limit: int) -> list[str]: ...


class MeldingArchive(MeldingRecords, Protocol):
    """All of the melding service's records: also her own meldingen and the programme figures' facts."""

    async def of_patient(self, *, consent_ids: list[str], bsn_ref: str) -> list[MeldingRecord]: ...

    async def figure_facts(
        self, since: datetime, before: datetime, gemeente_code: str | None
    ) -> list[MeldingFacts]: ...

    async def gemeente_names(self, codes: list[str | None]) -> dict[str, str]: ...


class MeldingTransaction(HookedTransaction, Protocol):
    """One transaction of the melding service's unit of work, as its use cases use it."""

    @property
    def meldingen(self) -> MeldingRecords: ...

    @property
    def outbox(self) -> StagingOutbox: ...

    @property
    def audit(self) -> AuditTrail: ...

    @property
    def idempotency(self) -> KeyStore: ...

    async def save(self, melding: Melding, at: datetime) -> None:
        """Write what the model's rules changed, and stage `melding.changed` for it (once per transaction)."""

    async def save_all(self, saved: Sequence[tuple[Melding, datetime]]) -> None:
        """`save` of several meldingen (each with its time), in one statement."""


class FullMeldingTransaction(MeldingTransaction, Protocol):
    """One transaction of the melding service's unit of work with all of its repository (the real one's)."""

    @property
    def meldingen(self) -> MeldingArchive: ...


TransactionFactory = Callable[[], MeldingTransaction]
FullTransactionFactory = Callable[[], FullMeldingTransaction]
