"""All SQL on meldingen, their deliveries, their history and the consents' states. Rows become domain
objects here, at the edge: nothing above this module sees a row, a JSON text or a comma-joined column."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, DateTime, Row, bindparam, func, or_, select, tuple_, type_coerce, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.melding.adapters.orm import (
    consent_feed,
    consent_states,
    melding_deliveries,
    melding_history,
    meldingen,
    sender_patients,
)
from services.melding.domain.figures import DeliveryFacts, MeldingFacts
from services.melding.domain.model import (
    ConsentState,
    Delivery,
    GemeenteRef,
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
    SkippedRef,
    bsn_in,
    due_date_in,
    open_melding_among,
    skeleton_of,
)
from shared.clock import as_nl_date
from shared.consent_feed import heard_at_query, record_heartbeat
from shared.contracts.events import ConsentRecorded
from shared.contracts.vocabulary import DeliveryStatus
from shared.crypto import FieldCipher
from shared.db import lock_rows_creating
from shared.pagination import newest_first


def _record(row: Row[Any]) -> MeldingRecord:
    return MeldingRecord(
        id=row.id,
        status=MeldingStatus(row.status),
        sender=SenderRef(org_id=row.sender_org_id, org_type=row.sender_org_type, sub=row.sender_sub),
        consent_id=row.consent_id,
        content=json.loads(row.content) if row.content is not None else None,
        skeleton=json.loads(row.skeleton) if row.skeleton is not None else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
        purged_at=row.purged_at,
        gemeente=GemeenteRef(row.gemeente_code, row.gemeente_name) if row.gemeente_code else None,
        unroutable_types=tuple(t for t in row.unroutable_types.split(",") if t),
        skipped_types=tuple(
            SkippedRef(s["recipient_type"], s["reason"]) for s in json.loads(row.skipped_types or "[]")
        ),
        not_delivered_reason=row.not_delivered_reason,
    )


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        delivery_id=row.delivery_id,
        org_id=row.org_id,
        org_name=row.org_name,
        recipient_type=row.recipient_type,
        status=DeliveryStatus(row.status),
        updated_at=row.updated_at,
        risk_domains=tuple(d for d in row.risk_domains.split(",") if d),
        contact_due_at=row.contact_due_at,
        overdue=bool(row.overdue),
        contact_at=row.contact_at,
        outcome=row.outcome,
        returned_reason=row.returned_reason,
    )


# What a melding's status depends on; never its content (which would be decrypted for nothing).
_STATE = (
    meldingen.c.id,
    meldingen.c.status,
    meldingen.c.withdrawn_at,
    meldingen.c.routing_reported_unroutable,
    meldingen.c.not_delivered_reason,
    meldingen.c.cancelled_at,
    meldingen.c.cancel_reason,
    meldingen.c.sender_org_id,
)


# A stopped melding no longer counts as open (`open_melding_among` decides the rest).
_STATUSES = {status.value: status for status in DeliveryStatus}
_STOPPED = (MeldingStatus.withdrawn.value, MeldingStatus.cancelled.value, MeldingStatus.not_delivered.value)


# Made once: the consent lock's statement is then built once too (shared.db.lock_rows_creating).
_FEED_HEARD_AT = (heard_at_query(consent_feed).label("heard_at"),)


class MeldingRepository:
    def __init__(self, session: AsyncSession, cipher: Callable[[], FieldCipher]) -> None:
        # The key ring, asked for only where a BSN is hashed (a directory tool's database may have none).
        self.session, self._cipher = session, cipher

    # --- intake and reads --------------------------------------------------------------------------------

    async def add(
        self, *, melding_id: str, sender: SenderRef, consent: dict[str, Any], content: dict[str, Any], at: datetime
    ) -> tuple[MeldingRecord, HistoryEntry]:
        """Store a new melding and its first history entry; both as a read would return them."""
        [added] = await self.add_all([NewMelding(melding_id, sender, consent, content, at)])
        return added

    async def add_all(self, new: Sequence[NewMelding]) -> list[tuple[MeldingRecord, HistoryEntry]]:
        """`add` of several meldingen: one statement for the meldingen, one for their history entries."""
        if not new:
            return []
        cipher = self._cipher()
        rows = [
            {
                "id": n.melding_id,
                "status": MeldingStatus.accepted.value,
                "sender_org_id": n.sender.org_id,
                "sender_org_type": n.sender.org_type,
                "sender_sub": n.sender.sub,
                "consent_id": n.consent["id"],
                "consent": json.dumps(n.consent, default=str),
                "content": json.dumps(n.content),
                "skeleton": json.dumps(skeleton_of(n.content)),
                "expected_due_date": due_date_in(n.content),
                "bsn_ref": cipher.bsn_ref(bsn) if (bsn := bsn_in(n.content)) else None,
                "unroutable_types": "",
                "routing_reported_unroutable": 0,
                "created_at": n.at,
                "updated_at": n.at,
            }
            for n in new
        ]
        await self.session.execute(meldingen.insert(), rows)
        added = [
            (
                MeldingRecord.accepted(
                    melding_id=n.melding_id, sender=n.sender, consent_id=n.consent["id"], content=n.content, at=n.at
                ),
                HistoryEntry(at=n.at, event="accepted", detail=None),
            )
            for n in new
        ]
        await self.add_histories([(record.id, entry) for record, entry in added])
        return added

    async def get(self, melding_id: str) -> MeldingRecord | None:
        row = (await self.session.execute(select(meldingen).where(meldingen.c.id == melding_id))).first()
        return _record(row) if row is not None else None

    async def page_for_sender(
        self,
        *,
        org_id: str,
        statuses: frozenset[MeldingStatus] = frozenset(),
        updated_since: datetime | None = None,
        cursor: str | None,
        limit: int,
    ) -> list[MeldingRecord]:
        """Up to `limit + 1` of the organisation's meldingen in one of `statuses` (any when empty), changed at or
        after `updated_since`, newest first (one more tells there are more)."""
        query = select(meldingen).where(meldingen.c.sender_org_id == org_id)
        if statuses:
            query = query.where(meldingen.c.status.in_(sorted(s.value for s in statuses)))
        if updated_since is not None:
            query = query.where(meldingen.c.updated_at >= updated_since)
        query = newest_first(query, at=meldingen.c.created_at, item_id=meldingen.c.id, cursor=cursor, limit=limit)
        return [_record(row) for row in await self.session.execute(query)]

    async def of_patient(self, *, consent_ids: list[str], bsn_ref: str) -> list[MeldingRecord]:
        """The meldingen sent under her consents, newest first: each names her (keyed hash), or no longer names
        anyone because its personal data is gone (withdrawn, cancelled, past retention)."""
        if not consent_ids:
            return []
        query = (
            select(meldingen)
            .where(
                meldingen.c.consent_id.in_(consent_ids),
                or_(meldingen.c.bsn_ref == bsn_ref, meldingen.c.bsn_ref.is_(None)),
            )
            .order_by(meldingen.c.created_at.desc(), meldingen.c.id)
        )
        return [_record(row) for row in await self.session.execute(query)]

    async def deliveries(self, melding_ids: list[str]) -> dict[str, list[Delivery]]:
        out: dict[str, list[Delivery]] = {m: [] for m in melding_ids}
        query = (
            select(melding_deliveries)
            .where(melding_deliveries.c.melding_id.in_(melding_ids))
            .order_by(melding_deliveries.c.recipient_type)
        )
        for row in await self.session.execute(query):
            out[row.melding_id].append(_delivery(row))
        return out

    async def history(self, melding_ids: list[str]) -> dict[str, list[HistoryEntry]]:
        out: dict[str, list[HistoryEntry]] = {m: [] for m in melding_ids}
        query = (
            select(melding_history)
            .where(melding_history.c.melding_id.in_(melding_ids))
            .order_by(melding_history.c.at, melding_history.c.id)
        )
        for row in await self.session.execute(query):
            out[row.melding_id].append(HistoryEntry(at=row.at, event=row.event, detail=row.detail))
        return out

    # --- what routing and consent report ---------------------------------------------------------------

    async def lock(self, melding_id: str) -> Melding | None:
        """The melding's status and its deliveries', its row locked for this transaction; None if unknown.

        Events about one melding (routed, a delivery's status) may be handled at the same moment; each
        reads then writes, so they must take turns (SQLite's BEGIN IMMEDIATE already does).
        """
        return (await self.lock_all({melding_id})).get(melding_id)

    async def lock_all(self, melding_ids: Collection[str]) -> dict[str, Melding]:
        """`lock` of several meldingen, in two statements; their rows are locked in id order (the order every
        batch takes them in: two never deadlock). Unknown ids are left out."""
        if not melding_ids:
            return {}
        ids = sorted(melding_ids)
        rows = (
            await self.session.execute(
                select(*_STATE).where(meldingen.c.id.in_(ids)).order_by(meldingen.c.id).with_for_update()
            )
        ).all()
        statuses = select(
            melding_deliveries.c.melding_id, melding_deliveries.c.delivery_id, melding_deliveries.c.status
        ).where(melding_deliveries.c.melding_id.in_([row.id for row in rows]))
        deliveries: dict[str, dict[str, DeliveryStatus]] = {row.id: {} for row in rows}
        if rows:
            for d in await self.session.execute(statuses):
                deliveries[d.melding_id][d.delivery_id] = DeliveryStatus(d.status)
        return {
            row.id: Melding(
                id=row.id,
                status=MeldingStatus(row.status),
                withdrawn_at=row.withdrawn_at,
                routing_reported_unroutable=bool(row.routing_reported_unroutable),
                not_delivered_reason=row.not_delivered_reason,
                cancelled_at=row.cancelled_at,
                cancel_reason=row.cancel_reason,
                sender_org_id=row.sender_org_id,
                deliveries=deliveries[row.id],
            )
            for row in rows
        }

    async def save(self, melding: Melding, at: datetime) -> None:
        await self.save_all([(melding, at)])

    async def save_all(self, saved: Sequence[tuple[Melding, datetime]]) -> None:
        """Write what the model's rules changed of each: its status, withdrawal and routing's verdict (one
        statement, executed for every melding)."""
        if not saved:
            return
        statement = (
            update(meldingen)
            .where(meldingen.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                withdrawn_at=bindparam("b_withdrawn_at", type_=meldingen.c.withdrawn_at.type),
                routing_reported_unroutable=bindparam("b_unroutable"),
                not_delivered_reason=bindparam("b_not_delivered"),
                cancelled_at=bindparam("b_cancelled_at", type_=meldingen.c.cancelled_at.type),
                cancel_reason=bindparam("b_cancel_reason"),
                updated_at=bindparam("b_at", type_=meldingen.c.updated_at.type),
            )
        )
        rows = [
            {
                "b_id": melding.id,
                "b_status": melding.status.value,
                "b_withdrawn_at": melding.withdrawn_at,
                "b_unroutable": int(melding.routing_reported_unroutable),
                "b_not_delivered": melding.not_delivered_reason,
                "b_cancelled_at": melding.cancelled_at,
                "b_cancel_reason": melding.cancel_reason,
                "b_at": at,
            }
            for melding, at in saved
        ]
        await self.session.execute(statement, rows)

    async def add_deliveries(self, new: Sequence[tuple[str, Delivery]]) -> None:
        """Deliveries this service did not know yet, by melding id, in one statement."""
        if not new:
            return
        rows = [
            {
                "delivery_id": delivery.delivery_id,
                "melding_id": melding_id,
                "org_id": delivery.org_id,
                "org_name": delivery.org_name,
                "recipient_type": delivery.recipient_type,
                "status": delivery.status.value,
                "updated_at": delivery.updated_at,
                "risk_domains": ",".join(delivery.risk_domains),
                "contact_due_at": delivery.contact_due_at,
                "contact_at": delivery.contact_at,
                "outcome": delivery.outcome,
                "returned_reason": delivery.returned_reason,
            }
            for melding_id, delivery in new
        ]
        await self.session.execute(melding_deliveries.insert(), rows)

    async def update_deliveries(self, changed: Sequence[Delivery]) -> None:
        """Move known deliveries to their new status with what the recipient answered (an answer not given
        keeps what was), in one statement executed for every delivery."""
        if not changed:
            return
        statement = (
            update(melding_deliveries)
            .where(melding_deliveries.c.delivery_id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                updated_at=bindparam("b_at", type_=melding_deliveries.c.updated_at.type),
                contact_at=func.coalesce(
                    bindparam("b_contact_at", type_=melding_deliveries.c.contact_at.type),
                    melding_deliveries.c.contact_at,
                ),
                outcome=func.coalesce(
                    bindparam("b_outcome", type_=melding_deliveries.c.outcome.type), melding_deliveries.c.outcome
                ),
                returned_reason=func.coalesce(
                    bindparam("b_returned", type_=melding_deliveries.c.returned_reason.type),
                    melding_deliveries.c.returned_reason,
                ),
            )
        )
        rows = [
            {
                "b_id": d.delivery_id,
                "b_status": d.status.value,
                "b_at": d.updated_at,
                "b_contact_at": d.contact_at,
                "b_outcome": d.outcome,
                "b_returned": d.returned_reason,
            }
            for d in changed
        ]
        await self.session.execute(statement, rows)

    async def mark_overdue(self, delivery_id: str, at: datetime) -> bool:
        """The delivery passed its contact deadline; False if it was marked before."""
        changed = await self.session.execute(
            update(melding_deliveries)
            .where(melding_deliveries.c.delivery_id == delivery_id, melding_deliveries.c.overdue == 0)
            .values(overdue=1, updated_at=at)
        )
        return bool(changed.rowcount)  # type: ignore[attr-defined]

    async def set_routing(self, reports: Sequence[RoutingReport], at: datetime) -> None:
        """What routing reported of each melding: the gemeente (kept when it names none), the types waiting for
        an organisation, the types skipped. One statement, executed for every report."""
        if not reports:
            return
        statement = (
            update(meldingen)
            .where(meldingen.c.id == bindparam("b_id"))
            .values(
                unroutable_types=bindparam("b_unroutable"),
                skipped_types=bindparam("b_skipped"),
                gemeente_code=func.coalesce(
                    bindparam("b_code", type_=meldingen.c.gemeente_code.type), meldingen.c.gemeente_code
                ),
                gemeente_name=func.coalesce(
                    bindparam("b_name", type_=meldingen.c.gemeente_name.type), meldingen.c.gemeente_name
                ),
                updated_at=bindparam("b_at", type_=meldingen.c.updated_at.type),
            )
        )
        rows = [
            {
                "b_id": r.melding_id,
                "b_unroutable": ",".join(sorted(r.unroutable_types)),
                "b_skipped": json.dumps([{"recipient_type": s.recipient_type, "reason": s.reason} for s in r.skipped]),
                "b_code": r.gemeente.code if r.gemeente else None,
                "b_name": r.gemeente.name if r.gemeente else None,
                "b_at": at,
            }
            for r in reports
        ]
        await self.session.execute(statement, rows)

    async def add_history(self, melding_id: str, at: datetime, event: str, detail: str | None) -> HistoryEntry:
        entry = HistoryEntry(at=at, event=event, detail=detail)
        await self.add_histories([(melding_id, entry)])
        return entry

    async def add_histories(self, entries: Sequence[tuple[str, HistoryEntry]]) -> None:
        """History entries, by melding id, in one statement."""
        if entries:
            rows = [{"melding_id": i, "at": e.at, "event": e.event, "detail": e.detail} for i, e in entries]
            await self.session.execute(melding_history.insert(), rows)

    # --- repeated meldingen ------------------------------------------------------------------------------

    async def lock_patients(self, patients: Collection[tuple[str, str]]) -> None:
        """Take the lock of each organisation's meldingen for each patient (org_id, BSN), in one statement
        (keyed hashes, never the BSN)."""
        cipher = self._cipher()
        keys = [{"org_id": org_id, "bsn_ref": cipher.bsn_ref(bsn)} for org_id, bsn in patients]
        await lock_rows_creating(self.session, sender_patients, keys)

    async def open_meldingen_for(self, asked: Sequence[OpenAsk]) -> list[str | None]:
        """For each (org_id, BSN, recipient types): the id of that organisation's open melding for that patient
        that asked for one of those types (`open_melding_among`), or None. Two statements whatever the number."""
        if not asked:
            return []
        cipher = self._cipher()
        refs = {(a.org_id, cipher.bsn_ref(a.bsn)) for a in asked}
        query = select(meldingen.c.id, meldingen.c.sender_org_id, meldingen.c.bsn_ref, meldingen.c.content).where(
            tuple_(meldingen.c.sender_org_id, meldingen.c.bsn_ref).in_(sorted(refs)),
            meldingen.c.status.not_in(_STOPPED),
            meldingen.c.content.is_not(None),
        )
        found: dict[tuple[str, str], list[tuple[str, list[str]]]] = {}
        for row in await self.session.execute(query.order_by(meldingen.c.id)):
            asked_types = json.loads(row.content).get("recipient_types") or []
            found.setdefault((row.sender_org_id, row.bsn_ref), []).append((str(row.id), asked_types))
        ids = [melding_id for candidates in found.values() for melding_id, _ in candidates]
        deliveries = await self.deliveries(ids) if ids else {}
        return [
            open_melding_among(
                [
                    OpenCandidate(melding_id, asked_types, [d.status for d in deliveries.get(melding_id, [])])
                    for melding_id, asked_types in found.get((a.org_id, cipher.bsn_ref(a.bsn)), [])
                ],
                a.recipient_types,
            )
            for a in asked
        ]

    # --- consent and personal data ---------------------------------------------------------------------

    async def lock_consent(self, consent_id: str) -> ConsentState:
        """The consent's state, locked: an intake and the consent's withdrawal never interleave. With it, in the
        same statement, what the consent allows and when the consent feed was last heard."""
        return (await self.lock_consents([consent_id]))[consent_id]

    async def lock_consents(self, consent_ids: Collection[str]) -> dict[str, ConsentState]:
        """`lock_consent` of several consents in one statement, locked in id order."""
        keys = [{"consent_id": consent_id} for consent_id in consent_ids]
        rows = await lock_rows_creating(self.session, consent_states, keys, also=_FEED_HEARD_AT)
        return {
            row.consent_id: ConsentState(
                consent_id=row.consent_id, withdrawn_at=row.withdrawn_at, recorded=_recorded(row), heard_at=row.heard_at
            )
            for row in rows
        }

    def patient_ref(self, bsn: str) -> str:
        """The keyed hash of a BSN, as `consent.recorded` carries it."""
        return self._cipher().bsn_ref(bsn)

    async def record_consents(self, recorded: Sequence[ConsentRecorded]) -> None:
        """What each consent allows, as `consent.recorded` told it, in one statement. Its withdrawal, when that
        arrived first, stays."""
        if not recorded:
            return
        rows = [
            {
                "consent_id": r.consent_id,
                "org_id": r.org_id,
                "patient_ref": r.patient_ref,
                "scope": json.dumps(
                    {
                        "recipient_types": r.recipient_types,
                        "risk_domains": r.risk_domains,
                        "informed_about": r.informed_about,
                        "valid_until": r.valid_until.isoformat(),
                    }
                ),
            }
            for r in {r.consent_id: r for r in recorded}.values()
        ]
        insert = pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert  # type: ignore[union-attr]
        statement = insert(consent_states)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[consent_states.c.consent_id],
                set_={c: statement.excluded[c] for c in ("org_id", "patient_ref", "scope")},
            ),
            rows,  # as parameters: one multi-row INSERT, cached (shared.db.insert_new)
        )

    async def record_heartbeat(self, at: datetime) -> None:
        await record_heartbeat(self.session, consent_feed, at)

    async def record_withdrawal(self, consent_id: str, at: datetime) -> None:
        """Remember that the consent is withdrawn (holding its lock: intake refuses it from now on)."""
        await self.lock_consent(consent_id)
        await self.session.execute(
            update(consent_states)
            .where(consent_states.c.consent_id == consent_id, consent_states.c.withdrawn_at.is_(None))
            .values(withdrawn_at=at)
        )

    async def lock_not_withdrawn(self, consent_id: str) -> list[Melding]:
        """The consent's meldingen that are not withdrawn yet, locked."""
        query = select(meldingen.c.id).where(meldingen.c.consent_id == consent_id, meldingen.c.withdrawn_at.is_(None))
        # Read holding the consent's lock (record_withdrawal): none of them is withdrawn meanwhile.
        return list((await self.lock_all(set((await self.session.execute(query)).scalars()))).values())

    async def remove_personal_data(self, melding_id: str, at: datetime) -> dict[str, Any] | None:
        """Remove a melding's personal data, keeping its anonymous skeleton. Returns the content removed (None
        if it had been removed before)."""
        stored = (
            await self.session.execute(select(meldingen.c.content).where(meldingen.c.id == melding_id))
        ).scalar_one_or_none()
        if stored is None:
            return None
        content: dict[str, Any] = json.loads(stored)
        # The keyed hash of the BSN goes too: what is left is anonymous, not a pseudonym of the patient.
        await self.session.execute(
            update(meldingen)
            .where(meldingen.c.id == melding_id)
            .values(content=None, skeleton=json.dumps(skeleton_of(content)), purged_at=at, bsn_ref=None)
        )
        return content

    @staticmethod
    def _personal_data_due(cutoff: date) -> tuple[ColumnElement[bool], ...]:
        return (
            meldingen.c.purged_at.is_(None),
            meldingen.c.content.is_not(None),
            or_(meldingen.c.withdrawn_at.is_not(None), meldingen.c.expected_due_date < cutoff),
        )

    async def count_personal_data_due(self, cutoff: date) -> int:
        """How many meldingen keep personal data that is due for removal: withdrawn, or due before `cutoff`."""
        query = select(func.count()).where(*self._personal_data_due(cutoff))
        return int((await self.session.execute(query)).scalar_one())

    async def lock_personal_data_due(self, cutoff: date, limit: int) -> list[str]:
        """Ids of up to `limit` meldingen whose personal data is due for removal, locked."""
        query = select(meldingen.c.id).where(*self._personal_data_due(cutoff)).limit(limit).with_for_update()
        return list((await self.session.execute(query)).scalars())

    # --- programme figures ---------------------------------------------------------------------------------

    async def figure_facts(self, since: datetime, before: datetime, gemeente_code: str | None) -> list[MeldingFacts]:
        """The skeleton of every melding created in [since, before) (of one gemeente, or all), with its
        deliveries' statuses, deadlines, contacts and outcomes: never its content."""
        where = [meldingen.c.created_at >= since, meldingen.c.created_at < before]
        if gemeente_code is not None:
            where.append(meldingen.c.gemeente_code == gemeente_code)
        delivered: dict[str, list[DeliveryFacts]] = {}
        # Tens of thousands of rows: fetched at once, unpacked by position, instants read as the driver gives
        # them (as_nl_date takes SQLite's naive ones as UTC) rather than through UTCDateTime row by row.
        query = select(
            melding_deliveries.c.melding_id,
            melding_deliveries.c.status,
            type_coerce(melding_deliveries.c.contact_due_at, DateTime()),
            melding_deliveries.c.contact_at,
            melding_deliveries.c.outcome,
        ).join(meldingen, meldingen.c.id == melding_deliveries.c.melding_id)
        for melding_id, status, due_at, contact_at, outcome in (await self.session.execute(query.where(*where))).all():
            due_on = as_nl_date(due_at) if due_at else None
            delivered.setdefault(melding_id, []).append(DeliveryFacts(_STATUSES[status], due_on, contact_at, outcome))
        query = select(
            meldingen.c.id,
            type_coerce(meldingen.c.created_at, DateTime()),
            meldingen.c.gemeente_code,
            meldingen.c.sender_org_type,
            meldingen.c.status,
            meldingen.c.skeleton,
        )
        facts = []
        for melding_id, created_at, gemeente_code, sender_type, status, skeleton in (
            await self.session.execute(query.where(*where))
        ).all():
            kept = json.loads(skeleton or "{}")
            facts.append(
                MeldingFacts(
                    created_on=as_nl_date(created_at),
                    gemeente_code=gemeente_code,
                    sender_type=sender_type,
                    status=status,
                    risk_domains=tuple(kept.get("risk_domains") or ()),
                    recipient_types=tuple(kept.get("recipient_types") or ()),
                    deliveries=tuple(delivered.get(melding_id, ())),
                )
            )
        return facts

    async def gemeente_names(self, codes: list[str | None]) -> dict[str, str]:
        """The names routing reported for these gemeente codes (CBS), where a melding went there; the latest
        name where a gemeente was renamed."""
        query = (
            select(meldingen.c.gemeente_code, meldingen.c.gemeente_name)
            .where(meldingen.c.gemeente_code.in_([c for c in codes if c]))
            .group_by(meldingen.c.gemeente_code, meldingen.c.gemeente_name)
            .order_by(func.max(meldingen.c.created_at))
        )
        return {row.gemeente_code: row.gemeente_name for row in await self.session.execute(query)}


def _recorded(row: Row[Any]) -> RecordedConsent | None:
    """What `consent.recorded` told of a consent (None: not heard of it)."""
    if row.org_id is None or row.patient_ref is None or row.scope is None:
        return None
    scope = json.loads(row.scope)
    domains = scope["risk_domains"]
    return RecordedConsent(
        org_id=row.org_id,
        patient_ref=row.patient_ref,
        recipient_types=tuple(scope["recipient_types"]),
        risk_domains=None if domains is None else tuple(domains),
        informed_about=tuple(scope["informed_about"]),
        valid_until=date.fromisoformat(scope["valid_until"]),
    )
