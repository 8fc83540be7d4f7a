"""What routing's in-memory fakes promise of the real repositories (services/routing/adapters/repository.py):
the methods the unit tests drive the use cases through, with the real signatures. mypy holds both the fake and
the real repository to these Protocols (tests/integration/routing/test_repository_contract.py assigns both to
them), and that test runs one test set against both, on SQLite and PostgreSQL.

The service layer itself takes the concrete RoutingUnitOfWork, so a unit test still passes the fake unit of
work with `# type: ignore[arg-type]`; the Protocols are what keeps that fake honest meanwhile."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from services.routing.domain.model import (
    Candidate,
    CandidateQuery,
    ConsentState,
    DeadLetter,
    DeliveryRecord,
    GemeenteRecord,
    LoggedMessage,
    NotDeliveredReason,
    Organisation,
    PatientDelivery,
    Returned,
    RoutedMelding,
    RoutingOutcome,
    RoutingStatus,
    Skipped,
)
from services.routing.domain.route_map import RouteMap
from shared.contracts.melding import MeldingAccepted
from shared.contracts.vocabulary import DeliveryStatus


class RoutingRecords(Protocol):
    """Routing's meldingen, deliveries, consents' states, cancellations, sequences and dead letters."""

    async def lock_consent(self, consent_id: str) -> ConsentState: ...

    async def lock_consents(self, consent_ids: set[str]) -> dict[str, ConsentState]: ...

    async def consents_of(self, melding_ids: Collection[str]) -> dict[str, str]: ...

    async def consent_of(self, *, melding_id: str | None = None, delivery_id: str | None = None) -> str | None: ...

    async def mark_consent_withdrawn(self, consent_id: str, at: datetime) -> None: ...

    async def melding(self, melding_id: str) -> RoutedMelding | None: ...

    async def meldingen_by_id(self, melding_ids: Collection[str]) -> dict[str, RoutedMelding]: ...

    async def known_meldingen(self, melding_ids: Collection[str]) -> set[str]: ...

    async def add_melding(self, melding: RoutedMelding) -> None: ...

    async def add_meldingen(self, meldingen: Sequence[RoutedMelding]) -> None: ...

    async def patient_deliveries(
        self, patients: Sequence[MeldingAccepted], org_ids: Collection[str]
    ) -> dict[str, list[PatientDelivery]]: ...

    async def set_routed(self, outcomes: Sequence[RoutingOutcome], at: datetime) -> None: ...

    async def close(
        self,
        melding_id: str,
        status: RoutingStatus,
        at: datetime,
        *,
        reason: NotDeliveredReason | None = None,
        skipped: Sequence[Skipped] = (),
        gemeente_code: str | None = None,
    ) -> None: ...

    async def meldingen_of_consent(self, consent_id: str) -> list[RoutedMelding]: ...

    async def waiting(self, limit: int = 100) -> list[RoutedMelding]: ...

    async def deliveries_of(self, melding_id: str) -> list[DeliveryRecord]: ...

    async def deliveries_of_meldingen(self, melding_ids: Collection[str]) -> dict[str, list[DeliveryRecord]]: ...

    async def add_delivery(self, delivery: DeliveryRecord) -> None: ...

    async def add_deliveries(self, records: Sequence[DeliveryRecord]) -> None: ...

    async def take_sequences(self, org_id: str, count: int) -> int: ...

    async def log_recipient_messages(self, messages: Sequence[LoggedMessage], at: datetime) -> None: ...

    async def delivery(self, delivery_id: str, *, for_update: bool = False) -> DeliveryRecord | None: ...

    async def set_delivery_status(
        self,
        delivery_id: str,
        status: DeliveryStatus,
        *,
        note: str | None,
        at: datetime,
        contact_at: date | None = None,
        outcome: str | None = None,
        returned_reason: str | None = None,
    ) -> None: ...

    async def record_return(self, melding: RoutedMelding, returned: Returned, at: datetime) -> None: ...

    async def lock_newly_overdue(self, at: datetime, limit: int) -> list[DeliveryRecord]: ...

    async def mark_overdue(self, delivery_id: str, at: datetime) -> None: ...

    async def cancellation(self, melding_id: str) -> str | None: ...

    async def cancelled_among(self, melding_ids: Collection[str]) -> set[str]: ...

    async def record_cancellation(self, melding_id: str, reason: str, at: datetime) -> bool: ...

    async def retract_delivery(self, delivery_id: str, retraction: dict[str, Any], at: datetime) -> None: ...

    async def clear_delivery(self, delivery: DeliveryRecord, at: datetime) -> None: ...

    async def first_death(self, key: str, at: datetime) -> bool: ...

    async def add_dead_letter(self, letter: DeadLetter) -> None: ...

    async def dead_letter(self, dead_letter_id: str, *, for_update: bool = False) -> DeadLetter | None: ...

    async def mark_replayed(self, dead_letter_id: str, at: datetime) -> None: ...


class DirectoryRecords(Protocol):
    """The directory as routing reads it: gemeenten, route maps, organisations and who serves where."""

    async def gemeente_for_pc4(self, pc4: str) -> GemeenteRecord | None: ...

    async def gemeenten_for_pc4s(self, pc4s: Collection[str]) -> dict[str, GemeenteRecord]: ...

    async def route_maps_in_force(self, code: str, today: date) -> list[RouteMap]: ...

    async def route_maps_in_force_for(self, codes: Collection[str], today: date) -> dict[str, list[RouteMap]]: ...

    async def organisation(self, org_id: str) -> Organisation | None: ...

    async def active_org_ids(self) -> list[str]: ...

    async def candidates(self, *, org_type: str, pc4: str, gemeente_code: str | None) -> list[Candidate]: ...

    async def candidates_for(self, queries: Collection[CandidateQuery]) -> dict[CandidateQuery, list[Candidate]]: ...


class RoutingTransaction(Protocol):
    """One transaction of routing's unit of work, as far as the repository contract goes."""

    @property
    def routing(self) -> RoutingRecords: ...

    @property
    def directory(self) -> DirectoryRecords: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...
