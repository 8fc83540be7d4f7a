"""What routing's use cases need of their unit of work, as Protocols: the real one
(`service_layer/unit_of_work.py`, with `adapters/repository.py`) and the in-memory fakes of the unit tests
(`tests/unit/routing/fakes.py`) both satisfy them, and mypy checks that they do.

Two sizes. `RoutingTransaction` is what the commands and the event handlers work in — routing a melding,
a recipient's answer, a withdrawal, a cancellation, a dead letter — and what the fakes implement in full.
`FullRoutingTransaction` adds what the read side, the housekeeping and the directory's administration ask
of the repositories (counts, pages, the recipients' log, the purge, gemeenten and organisations): SQL that
only the real repositories answer, tested on the database (tests/integration/routing/)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from typing import Any, Protocol

from pydantic import BaseModel

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
    Pc4Range,
    Returned,
    RoutedMelding,
    RoutingOutcome,
    RoutingStatus,
    Skipped,
    StraddlingArea,
)
from services.routing.domain.operations import ReturnedDelivery
from services.routing.domain.route_map import RouteMap
from shared.contracts.melding import MeldingAccepted
from shared.contracts.vocabulary import DeliveryStatus
from shared.ports import AuditTrail, HookedTransaction, StagingOutbox


class RoutingRecords(Protocol):
    """Routing's meldingen, deliveries, consents' states, cancellations, sequences and dead letters, as the
    commands and event handlers use them."""

    async def lock_consent(self, consent_id: str) -> ConsentState: ...

    async def lock_consents(self, consent_ids: set[str]) -> dict[str, ConsentState]: ...

    async def consents_of(self, melding_ids: Collection[str]) -> dict[str, str]: ...

    async def consent_of(self, *, melding_id: str | None = None, delivery_id: str | None = None) -> str | None: ...

    async def mark_consent_withdrawn(self, consent_id: str, at: datetime) -> None: ...

    async def record_heartbeat(self, at: datetime) -> None: ...

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


class RoutingOverview(RoutingRecords, Protocol):
    """All of routing's records: also what the read side and the housekeeping ask (counts, pages, the
    recipients' log, the overdue and returned deliveries, the personal-data purge, old dead letters)."""

    async def count_waiting(self) -> int: ...

    async def recipient_messages_after(
        self, org_id: str, after: int, limit: int
    ) -> list[tuple[LoggedMessage, DeliveryRecord | None]]: ...

    async def returned_deliveries(self, melding_ids: Collection[str]) -> list[ReturnedDelivery]: ...

    async def count_overdue(self) -> int: ...

    async def overdue(self, limit: int) -> list[tuple[DeliveryRecord, str | None]]: ...

    async def deliveries_page(
        self, *, org_id: str, status: DeliveryStatus | None, cursor: str | None, limit: int
    ) -> list[DeliveryRecord]: ...

    async def count_personal_data_due(self, cutoff: date) -> int: ...

    async def lock_personal_data_due(self, cutoff: date, limit: int) -> list[RoutedMelding]: ...

    async def remove_personal_data(self, melding: RoutedMelding, at: datetime) -> None: ...

    async def dead_letters(self, *, include_replayed: bool, limit: int) -> list[DeadLetter]: ...

    async def count_dead_letters(self) -> int: ...

    async def count_replayed_dead_letters(self, *, before: datetime) -> int: ...

    async def delete_replayed_dead_letters(self, *, before: datetime) -> int: ...


class DirectoryRecords(Protocol):
    """The directory as routing reads it to plan: gemeenten, route maps, organisations and who serves where."""

    async def gemeente_for_pc4(self, pc4: str) -> GemeenteRecord | None: ...

    async def gemeenten_for_pc4s(self, pc4s: Collection[str]) -> dict[str, GemeenteRecord]: ...

    async def route_maps_in_force(self, code: str, today: date) -> list[RouteMap]: ...

    async def route_maps_in_force_for(self, codes: Collection[str], today: date) -> dict[str, list[RouteMap]]: ...

    async def organisation(self, org_id: str) -> Organisation | None: ...

    async def active_org_ids(self) -> list[str]: ...

    async def candidates(self, *, org_type: str, pc4: str, gemeente_code: str | None) -> list[Candidate]: ...

    async def candidates_for(self, queries: Collection[CandidateQuery]) -> dict[CandidateQuery, list[Candidate]]: ...


class DirectoryRegister(DirectoryRecords, Protocol):
    """The whole directory: also what its administration reads and writes (gemeenten and their postcodes,
    route maps' versions, organisations and their coverage, the loads of the reference data)."""

    async def gemeente(self, code: str) -> GemeenteRecord | None: ...

    async def gemeente_names(self, codes: Collection[str]) -> dict[str, str]: ...

    async def all_gemeenten(self) -> list[GemeenteRecord]: ...

    async def ranges_of_gemeenten(self, codes: list[str] | None = None) -> dict[str, list[Pc4Range]]: ...

    async def gemeente_ranges_overlapping(self, ranges: list[Pc4Range], *, except_code: str) -> list[str]: ...

    async def save_gemeente(
        self, *, code: str, name: str, ranges: list[Pc4Range], source: str, at: datetime
    ) -> bool: ...

    async def end_gemeenten_except(self, codes: set[str], at: datetime) -> int: ...

    async def replace_straddling(self, areas: list[StraddlingArea]) -> None: ...

    async def record_load(
        self, *, edition: str, gemeenten_count: int, areas: int, ended: int, at: datetime
    ) -> None: ...

    async def straddling(self, pc4: str) -> list[StraddlingArea]: ...

    async def route_maps(self, code: str) -> list[RouteMap]: ...

    async def save_route_map(self, code: str, route_map: RouteMap, at: datetime) -> bool: ...

    async def all_organisations(self) -> list[Organisation]: ...

    async def coverage(self, org_ids: list[str]) -> dict[str, tuple[list[str], list[Pc4Range]]]: ...

    async def conflicting_organisations(
        self, *, org_id: str, org_type: str, gemeente_codes: list[str], ranges: list[Pc4Range]
    ) -> list[str]: ...

    async def save_organisation(
        self,
        *,
        org_id: str,
        name: str,
        org_type: str,
        active: bool,
        gemeente_codes: list[str],
        ranges: list[Pc4Range],
        at: datetime,
        delivery_mode: str = "full",
    ) -> bool: ...

    async def deactivate(self, org_id: str, at: datetime) -> None: ...


class RecipientMessages(Protocol):
    """The recipients' queues (`service_layer/recipient_queue.py`'s `RecipientQueue`): a message staged here
    is numbered for its organisation and put in the outbox when the transaction commits."""

    def stage(
        self,
        org_id: str,
        message_type: str,
        message: BaseModel,
        *,
        message_id: str,
        delivery_id: str,
        correlation_id: str,
        request_id: str | None,
        kept: BaseModel | None = None,
    ) -> None: ...


class RoutingTransaction(HookedTransaction, Protocol):
    """One transaction of routing's unit of work, as the commands and event handlers use it."""

    @property
    def routing(self) -> RoutingRecords: ...

    @property
    def directory(self) -> DirectoryRecords: ...

    @property
    def outbox(self) -> StagingOutbox: ...

    @property
    def recipients(self) -> RecipientMessages: ...

    @property
    def audit(self) -> AuditTrail: ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A part of the transaction that may fail on its own: on an exception what it wrote is undone."""


class FullRoutingTransaction(RoutingTransaction, Protocol):
    """One transaction of routing's unit of work with all of its repositories (the real one's)."""

    @property
    def routing(self) -> RoutingOverview: ...

    @property
    def directory(self) -> DirectoryRegister: ...


TransactionFactory = Callable[[], RoutingTransaction]
FullTransactionFactory = Callable[[], FullRoutingTransaction]
