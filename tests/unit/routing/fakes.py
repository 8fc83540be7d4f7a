"""The routing service's repositories and unit of work, in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import date, datetime
from typing import Any

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
from services.routing.service_layer.recipient_queue import RecipientQueue
from shared.contracts.melding import MeldingAccepted
from shared.contracts.vocabulary import DeliveryStatus
from tests.unit.fakes import FakeUnitOfWorkBase


class FakeDirectory:
    """One gemeente for every postcode, and the organisations that serve it by type."""

    def __init__(self, gemeente: GemeenteRecord | None = None) -> None:
        self.gemeente = gemeente
        self.serving: dict[str, list[Candidate]] = {}
        self.route_maps: list[RouteMap] = []

    async def route_maps_in_force(self, code: str, today: date) -> list[RouteMap]:
        started = [m for m in self.route_maps if m.effective_from is not None and m.effective_from <= today]
        return sorted(started, key=lambda m: m.effective_from or today)[-1:]

    async def route_maps_in_force_for(self, codes: Collection[str], today: date) -> dict[str, list[RouteMap]]:
        return {code: found for code in codes if (found := await self.route_maps_in_force(code, today))}

    async def gemeente_for_pc4(self, pc4: str) -> GemeenteRecord | None:
        return self.gemeente

    async def gemeenten_for_pc4s(self, pc4s: Collection[str]) -> dict[str, GemeenteRecord]:
        return {pc4: self.gemeente for pc4 in pc4s if self.gemeente is not None}

    async def candidates(self, *, org_type: str, pc4: str, gemeente_code: str | None) -> list[Candidate]:
        return list(self.serving.get(org_type, []))

    async def candidates_for(self, queries: Collection[CandidateQuery]) -> dict[CandidateQuery, list[Candidate]]:
        return {q: list(self.serving.get(q[0], [])) for q in queries}

    async def organisation(self, org_id: str) -> Organisation | None:
        return None

    async def active_org_ids(self) -> list[str]:
        return sorted({c.org_id for candidates in self.serving.values() for c in candidates})


class FakeRoutingRepository:
    def __init__(self) -> None:
        self.consents: dict[str, datetime | None] = {}
        self.heard_at: datetime | None = None
        self.meldingen: dict[str, RoutedMelding] = {}
        self.deliveries: dict[str, DeliveryRecord] = {}
        self.letters: dict[str, DeadLetter] = {}
        self.deaths: set[str] = set()  # dead-letter keys seen
        self.cancelled: dict[str, str] = {}
        self.sequences: dict[str, int] = {}
        self.logged: list[LoggedMessage] = []

    async def take_sequences(self, org_id: str, count: int) -> int:
        self.sequences[org_id] = self.sequences.get(org_id, 0) + count
        return self.sequences[org_id]

    async def log_recipient_messages(self, messages: Sequence[LoggedMessage], at: datetime) -> None:
        self.logged.extend(messages)

    async def lock_consent(self, consent_id: str) -> ConsentState:
        return ConsentState(consent_id, self.consents.setdefault(consent_id, None))

    async def lock_consents(self, consent_ids: set[str]) -> dict[str, ConsentState]:
        return {consent_id: await self.lock_consent(consent_id) for consent_id in consent_ids}

    async def consents_of(self, melding_ids: Collection[str]) -> dict[str, str]:
        return {i: self.meldingen[i].consent_id for i in melding_ids if i in self.meldingen}

    async def mark_consent_withdrawn(self, consent_id: str, at: datetime) -> None:
        self.consents[consent_id] = at

    async def record_heartbeat(self, at: datetime) -> None:
        self.heard_at = at if self.heard_at is None else max(self.heard_at, at)

    async def consent_of(self, *, melding_id: str | None = None, delivery_id: str | None = None) -> str | None:
        if delivery_id is not None:
            delivery = self.deliveries.get(delivery_id)
            melding_id = delivery.melding_id if delivery is not None else None
        melding = self.meldingen.get(melding_id or "")
        return melding.consent_id if melding is not None else None

    async def melding(self, melding_id: str) -> RoutedMelding | None:
        return self.meldingen.get(melding_id)

    async def meldingen_by_id(self, melding_ids: Collection[str]) -> dict[str, RoutedMelding]:
        return {i: self.meldingen[i] for i in melding_ids if i in self.meldingen}

    async def known_meldingen(self, melding_ids: Collection[str]) -> set[str]:
        return {i for i in melding_ids if i in self.meldingen}

    async def add_melding(self, melding: RoutedMelding) -> None:
        self.meldingen[melding.melding_id] = melding

    async def add_meldingen(self, meldingen: Sequence[RoutedMelding]) -> None:
        for melding in meldingen:
            await self.add_melding(melding)

    async def set_routed(self, outcomes: Sequence[RoutingOutcome], at: datetime) -> None:
        for o in outcomes:
            self.meldingen[o.melding_id] = replace(
                self.meldingen[o.melding_id],
                status=o.status,
                unroutable_types=o.unroutable_types,
                skipped_types=o.skipped,
                gemeente_code=o.gemeente_code,
                updated_at=at,
            )

    async def close(
        self,
        melding_id: str,
        status: RoutingStatus,
        at: datetime,
        *,
        reason: NotDeliveredReason | None = None,
        skipped: Sequence[Skipped] = (),
        gemeente_code: str | None = None,
    ) -> None:
        self.meldingen[melding_id] = replace(
            self.meldingen[melding_id],
            status=status,
            accepted=None,
            updated_at=at,
            not_delivered_reason=reason,
            skipped_types=tuple(skipped),
            gemeente_code=gemeente_code or self.meldingen[melding_id].gemeente_code,
        )

    async def meldingen_of_consent(self, consent_id: str) -> list[RoutedMelding]:
        return [m for m in self.meldingen.values() if m.consent_id == consent_id]

    async def waiting(self, limit: int = 100) -> list[RoutedMelding]:
        return [m for m in self.meldingen.values() if m.status is RoutingStatus.waiting and m.purged_at is None][:limit]

    async def deliveries_of(self, melding_id: str) -> list[DeliveryRecord]:
        return sorted(
            (d for d in self.deliveries.values() if d.melding_id == melding_id), key=lambda d: d.recipient_type
        )

    async def deliveries_of_meldingen(self, melding_ids: Collection[str]) -> dict[str, list[DeliveryRecord]]:
        return {i: found for i in melding_ids if (found := await self.deliveries_of(i))}

    async def add_delivery(self, delivery: DeliveryRecord) -> None:
        self.deliveries[delivery.delivery_id] = delivery

    async def add_deliveries(self, records: Sequence[DeliveryRecord]) -> None:
        for delivery in records:
            await self.add_delivery(delivery)

    async def delivery(self, delivery_id: str, *, for_update: bool = False) -> DeliveryRecord | None:
        return self.deliveries.get(delivery_id)

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
    ) -> None:
        known = self.deliveries[delivery_id]
        self.deliveries[delivery_id] = replace(
            known,
            status=status,
            status_note=note,
            updated_at=at,
            contact_at=contact_at or known.contact_at,
            outcome=outcome or known.outcome,
            returned_reason=returned_reason or known.returned_reason,
        )

    async def record_return(self, melding: RoutedMelding, returned: Returned, at: datetime) -> None:
        self.meldingen[melding.melding_id] = replace(
            melding, status=RoutingStatus.waiting, returned=(*melding.returned, returned), updated_at=at
        )

    async def lock_newly_overdue(self, at: datetime, limit: int) -> list[DeliveryRecord]:
        waiting = (DeliveryStatus.queued, DeliveryStatus.received)
        return [
            d
            for d in self.deliveries.values()
            if d.overdue_at is None and d.contact_due_at is not None and d.contact_due_at <= at and d.status in waiting
        ][:limit]

    async def mark_overdue(self, delivery_id: str, at: datetime) -> None:
        self.deliveries[delivery_id] = replace(self.deliveries[delivery_id], overdue_at=at)

    async def patient_deliveries(
        self, patients: Sequence[MeldingAccepted], org_ids: Collection[str]
    ) -> dict[str, list[PatientDelivery]]:
        return {}

    async def cancellation(self, melding_id: str) -> str | None:
        return self.cancelled.get(melding_id)

    async def cancelled_among(self, melding_ids: Collection[str]) -> set[str]:
        return {i for i in melding_ids if i in self.cancelled}

    async def record_cancellation(self, melding_id: str, reason: str, at: datetime) -> bool:
        if melding_id in self.cancelled:
            return False
        self.cancelled[melding_id] = reason
        return True

    async def retract_delivery(self, delivery_id: str, retraction: dict[str, Any], at: datetime) -> None:
        self.deliveries[delivery_id] = replace(
            self.deliveries[delivery_id],
            status=DeliveryStatus.retracted,
            message=retraction,
            status_note=None,
            updated_at=at,
        )

    async def clear_delivery(self, delivery: DeliveryRecord, at: datetime) -> None:
        document = {"delivery_id": delivery.delivery_id, "melding_id": delivery.melding_id, "purged_at": at.isoformat()}
        self.deliveries[delivery.delivery_id] = replace(self.deliveries[delivery.delivery_id], message=document)

    async def first_death(self, key: str, at: datetime) -> bool:
        first = key not in self.deaths
        self.deaths.add(key)
        return first

    async def add_dead_letter(self, letter: DeadLetter) -> None:
        self.letters[letter.id] = letter

    async def dead_letter(self, dead_letter_id: str, *, for_update: bool = False) -> DeadLetter | None:
        return self.letters.get(dead_letter_id)

    async def mark_replayed(self, dead_letter_id: str, at: datetime) -> None:
        self.letters[dead_letter_id] = replace(self.letters[dead_letter_id], replayed_at=at)


class FakeRoutingUnitOfWork(FakeUnitOfWorkBase):
    def __init__(self, directory: FakeDirectory | None = None) -> None:
        super().__init__()
        self.routing = FakeRoutingRepository()
        self.directory = directory or FakeDirectory()
        self.recipients = RecipientQueue(self)  # the real numbering, on the fakes

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """As the database's: on an exception, what was written inside is undone."""
        saved = (dict(self.routing.meldingen), dict(self.routing.deliveries), list(self.outbox.messages))
        try:
            yield
        except BaseException:
            self.routing.meldingen, self.routing.deliveries, self.outbox.messages = saved
            raise
