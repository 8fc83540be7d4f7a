"""What routing's in-memory fakes promise of the real repositories (services/routing/adapters/repository.py):
the methods the unit tests drive the use cases through, with the real signatures. mypy holds both the fake and
the real repository to these Protocols (tests/integration/routing/test_repository_contract.py assigns both to
them), and that test runs one test set against both, on SQLite and PostgreSQL.

The service layer itself takes the concrete RoutingUnitOfWork, so a unit test still passes the fake unit of
work with `# type: ignore[arg-type]`; the Protocols are what keeps that fake honest meanwhile."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from services.routing.domain.model import (
    Candidate,
    ConsentState,
    DeadLetter,
    DeliveryRecord,
    GemeenteRecord,
    LoggedMessage,
    NotDeliveredReason,
    Organisation,
    Returned,
    RoutedMelding,
    RoutingStatus,
    Skipped,
)
from services.routing.domain.route_map import RouteMap
from shared.contracts.melding import MeldingAccepted
from shared.contracts.vocabulary import DeliveryStatus


class RoutingRecords(Protocol):
    """Routing's meldingen, deliveries, consents' states, cancellations, sequences and dead letters."""

    async def lock_consent(self, consent_id: str) -> ConsentState: ...

    async def consent_of(self, *, melding_id: str | None = None, delivery_id: str | None = None) -> str | None: ...

    async def mark_consent_withdrawn(self, consent_id: str, at: datetime) -> None: ...

    async def melding(self, melding_id: str) -> RoutedMelding | None: ...

    async def has_melding(self, melding_id: str) -> bool: ...

    async def add_melding(self, melding: RoutedMelding) -> None: ...

    async def related_deliveries(self, accepted: MeldingAccepted, org_id: str) -> list[str]: ...

    async def set_routed(
        self,
        melding_id: str,
        status: RoutingStatus,
        *,
        unroutable_types: Sequence[str],
        skipped: Sequence[Skipped],
        gemeente_code: str | None,
        at: datetime,
    ) -> None: ...

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

    async def add_delivery(self, delivery: DeliveryRecord) -> None: ...

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

    async def route_maps_in_force(self, code: str, today: date) -> list[RouteMap]: ...

    async def organisation(self, org_id: str) -> Organisation | None: ...

    async def active_org_ids(self) -> list[str]: ...

    async def candidates(self, *, org_type: str, pc4: str, gemeente_code: str | None) -> list[Candidate]: ...


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
