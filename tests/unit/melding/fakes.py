"""The melding service's repository and unit of work, in memory."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from services.melding.domain.model import (
    ConsentState,
    Delivery,
    HistoryEntry,
    Melding,
    MeldingRecord,
    MeldingStatus,
    NewMelding,
    OpenAsk,
    OpenCandidate,
    RecordedConsent,
    RoutingReport,
    SenderRef,
    bsn_in,
    due_date_in,
    open_melding_among,
    skeleton_of,
)
from services.melding.service_layer.unit_of_work import ChangedMeldingen
from shared.contracts.events import ConsentRecorded
from shared.contracts.vocabulary import DeliveryStatus
from tests.unit.fakes import FakeUnitOfWorkBase


class FakeMeldingRepository:
    def __init__(self) -> None:
        self.records: dict[str, MeldingRecord] = {}
        self.states: dict[str, Melding] = {}
        self.delivery_rows: dict[str, dict[str, Delivery]] = {}
        self.history_rows: dict[str, list[HistoryEntry]] = {}
        self.consents: dict[str, datetime | None] = {}
        self.recorded: dict[str, RecordedConsent] = {}
        self.heard_at: datetime | None = None

    async def add(
        self, *, melding_id: str, sender: SenderRef, consent: dict[str, Any], content: dict[str, Any], at: datetime
    ) -> tuple[MeldingRecord, HistoryEntry]:
        record = MeldingRecord.accepted(
            melding_id=melding_id, sender=sender, consent_id=consent["id"], content=content, at=at
        )
        self.records[melding_id] = record
        self.states[melding_id] = Melding(id=melding_id, status=MeldingStatus.accepted, sender_org_id=sender.org_id)
        self.delivery_rows[melding_id] = {}
        self.history_rows[melding_id] = []
        return record, await self.add_history(melding_id, at, "accepted", None)

    async def add_all(self, new: Sequence[NewMelding]) -> list[tuple[MeldingRecord, HistoryEntry]]:
        return [
            await self.add(melding_id=n.melding_id, sender=n.sender, consent=n.consent, content=n.content, at=n.at)
            for n in new
        ]

    async def get(self, melding_id: str) -> MeldingRecord | None:
        record = self.records.get(melding_id)
        if record is None:
            return None
        state = self.states[melding_id]
        return replace(record, status=state.status, not_delivered_reason=state.not_delivered_reason)

    async def page_for_sender(
        self,
        *,
        org_id: str,
        statuses: frozenset[MeldingStatus] = frozenset(),
        updated_since: datetime | None = None,
        cursor: str | None,
        limit: int,
    ) -> list[MeldingRecord]:
        found = [r for r in self.records.values() if r.sender.org_id == org_id]
        found = [r for r in found if not statuses or self.states[r.id].status in statuses]
        found = [r for r in found if updated_since is None or r.updated_at >= updated_since]
        newest = sorted(found, key=lambda r: r.created_at, reverse=True)[: limit + 1]
        return [replace(r, status=self.states[r.id].status) for r in newest]

    async def deliveries(self, melding_ids: list[str]) -> dict[str, list[Delivery]]:
        return {m: sorted(self.delivery_rows[m].values(), key=lambda d: d.recipient_type) for m in melding_ids}

    async def history(self, melding_ids: list[str]) -> dict[str, list[HistoryEntry]]:
        return {m: list(self.history_rows[m]) for m in melding_ids}

    async def lock(self, melding_id: str) -> Melding | None:
        state = self.states.get(melding_id)
        if state is None:
            return None
        return replace(state, deliveries=dict(state.deliveries))  # the caller works on its own copy, as on a row

    async def lock_all(self, melding_ids: Collection[str]) -> dict[str, Melding]:
        return {i: found for i in sorted(melding_ids) if (found := await self.lock(i)) is not None}

    async def save(self, melding: Melding, at: datetime) -> None:
        self.states[melding.id] = replace(melding, deliveries=dict(melding.deliveries))
        self.records[melding.id] = replace(self.records[melding.id], updated_at=at)

    async def save_all(self, saved: Sequence[tuple[Melding, datetime]]) -> None:
        for melding, at in saved:
            await self.save(melding, at)

    async def add_deliveries(self, new: Sequence[tuple[str, Delivery]]) -> None:
        for melding_id, delivery in new:
            assert delivery.delivery_id not in self.delivery_rows[melding_id]
            self.delivery_rows[melding_id][delivery.delivery_id] = delivery

    async def update_deliveries(self, changed: Sequence[Delivery]) -> None:
        for delivery in changed:
            [rows] = [rows for rows in self.delivery_rows.values() if delivery.delivery_id in rows]
            known = rows[delivery.delivery_id]
            rows[delivery.delivery_id] = replace(
                known,
                status=delivery.status,
                updated_at=delivery.updated_at,
                contact_at=delivery.contact_at or known.contact_at,
                outcome=delivery.outcome or known.outcome,
                returned_reason=delivery.returned_reason or known.returned_reason,
            )

    async def mark_overdue(self, delivery_id: str, at: datetime) -> bool:
        for rows in self.delivery_rows.values():
            if delivery_id in rows and not rows[delivery_id].overdue:
                rows[delivery_id] = replace(rows[delivery_id], overdue=True)
                return True
        return False

    async def set_routing(self, reports: Sequence[RoutingReport], at: datetime) -> None:
        for r in reports:
            record = self.records[r.melding_id]
            self.records[r.melding_id] = replace(
                record,
                gemeente=r.gemeente or record.gemeente,
                unroutable_types=tuple(sorted(r.unroutable_types)),
                skipped_types=tuple(r.skipped),
            )

    async def add_history(self, melding_id: str, at: datetime, event: str, detail: str | None) -> HistoryEntry:
        entry = HistoryEntry(at=at, event=event, detail=detail)
        self.history_rows[melding_id].append(entry)
        return entry

    async def add_histories(self, entries: Sequence[tuple[str, HistoryEntry]]) -> None:
        for melding_id, entry in entries:
            self.history_rows[melding_id].append(entry)

    async def lock_patients(self, patients: Collection[tuple[str, str]]) -> None:
        return None

    async def open_meldingen_for(self, asked: Sequence[OpenAsk]) -> list[str | None]:
        stopped = (MeldingStatus.withdrawn, MeldingStatus.cancelled, MeldingStatus.not_delivered)
        return [
            open_melding_among(
                [
                    OpenCandidate(
                        r.id, r.content["recipient_types"], [d.status for d in self.delivery_rows[r.id].values()]
                    )
                    for r in self.records.values()
                    if r.sender.org_id == a.org_id
                    and r.content is not None
                    and self.states[r.id].status not in stopped
                    and bsn_in(r.content) == a.bsn
                ],
                a.recipient_types,
            )
            for a in asked
        ]

    def _statuses(self, melding_id: str) -> list[DeliveryStatus]:
        return [d.status for d in self.delivery_rows[melding_id].values()]

    async def lock_consent(self, consent_id: str) -> ConsentState:
        return (await self.lock_consents([consent_id]))[consent_id]

    async def lock_consents(self, consent_ids: Collection[str]) -> dict[str, ConsentState]:
        return {
            consent_id: ConsentState(
                consent_id, self.consents.setdefault(consent_id, None), self.recorded.get(consent_id), self.heard_at
            )
            for consent_id in consent_ids
        }

    def patient_ref(self, bsn: str) -> str:
        return f"ref:{bsn}"  # a stand-in for the keyed hash: what matters is that one BSN gives one ref

    async def record_consents(self, recorded: Sequence[ConsentRecorded]) -> None:
        for r in recorded:
            self.recorded[r.consent_id] = RecordedConsent(
                org_id=r.org_id,
                patient_ref=r.patient_ref,
                recipient_types=tuple(r.recipient_types),
                risk_domains=None if r.risk_domains is None else tuple(r.risk_domains),
                informed_about=tuple(r.informed_about),
                valid_until=r.valid_until,
            )

    async def record_heartbeat(self, at: datetime) -> None:
        self.heard_at = at if self.heard_at is None else max(self.heard_at, at)

    async def record_withdrawal(self, consent_id: str, at: datetime) -> None:
        if self.consents.get(consent_id) is None:
            self.consents[consent_id] = at

    async def lock_not_withdrawn(self, consent_id: str) -> list[Melding]:
        ids = [r.id for r in self.records.values() if r.consent_id == consent_id]
        return [m for m in [await self.lock(i) for i in ids] if m is not None and m.withdrawn_at is None]

    async def remove_personal_data(self, melding_id: str, at: datetime) -> dict[str, Any] | None:
        record = self.records[melding_id]
        if record.content is None:
            return None
        self.records[melding_id] = replace(record, content=None, skeleton=skeleton_of(record.content), purged_at=at)
        return record.content

    def _due(self, cutoff: date) -> list[str]:
        return [
            r.id
            for r in self.records.values()
            if r.content is not None
            and (self.states[r.id].withdrawn_at is not None or (due_date_in(r.content) or cutoff) < cutoff)
        ]

    async def count_personal_data_due(self, cutoff: date) -> int:
        return len(self._due(cutoff))

    async def lock_personal_data_due(self, cutoff: date, limit: int) -> list[str]:
        return self._due(cutoff)[:limit]


class FakeMeldingUnitOfWork(FakeUnitOfWorkBase):
    def __init__(self) -> None:
        super().__init__()
        self.meldingen = FakeMeldingRepository()
        self.changes = ChangedMeldingen(self)  # the real one: one `melding.changed` per melding, at commit

    async def save(self, melding: Melding, at: datetime) -> None:
        await self.save_all([(melding, at)])

    async def save_all(self, saved: Sequence[tuple[Melding, datetime]]) -> None:
        """As the real unit of work's: the repository's save, and the meldingen noted as changed."""
        await self.meldingen.save_all(saved)
        self.changes.note(saved)
