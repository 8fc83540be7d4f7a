"""All SQL of the routing service. Rows become the domain's records here, at the edge: nothing above this
module sees a row, a JSON text or a comma-joined column."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.adapters.orm import (
    cancellations,
    consent_feed,
    consent_states,
    dead_letters,
    deliveries,
    directory_loads,
    gemeente_ranges,
    gemeenten,
    organisation_gemeenten,
    organisation_ranges,
    organisations,
    processed_messages,
    recipient_messages,
    recipient_sequences,
    route_maps,
    routed_meldingen,
    straddling_areas,
)
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
    SkipReason,
    StraddlingArea,
)
from services.routing.domain.operations import ReturnedDelivery
from services.routing.domain.route_map import RecipientRule, RouteMap
from shared.consent_feed import record_heartbeat
from shared.contracts.melding import STORED, MeldingAccepted
from shared.contracts.vocabulary import DeliveryStatus
from shared.crypto import FieldCipher
from shared.db import insert_once, lock_rows_creating
from shared.pagination import newest_first

DEAD_LETTER_KEEPER = "routing-dead-letters"  # its name among the consumers in processed_messages


def _gemeente(row: Any) -> GemeenteRecord:
    return GemeenteRecord(code=row.code, name=row.name, source=row.source, ended_at=row.ended_at)


def _organisation(row: Any) -> Organisation:
    return Organisation(
        org_id=row.org_id,
        name=row.name,
        type=row.type,
        active=bool(row.active),
        created_at=row.created_at,
        updated_at=row.updated_at,
        delivery_mode=row.delivery_mode,
    )


def _types(joined: str) -> tuple[str, ...]:
    return tuple(t for t in joined.split(",") if t)


def _skipped(text: str) -> tuple[Skipped, ...]:
    return tuple(Skipped(s["recipient_type"], SkipReason(s["reason"])) for s in json.loads(text or "[]"))


def _route_map(row: Any) -> RouteMap:
    recipients = {
        recipient_type: RecipientRule(
            risk_domains=None if rule["risk_domains"] == "all" else frozenset(rule["risk_domains"]), note=rule["note"]
        )
        for recipient_type, rule in json.loads(row.recipients).items()
    }
    deadlines = {urgency: timedelta(seconds=s) for urgency, s in json.loads(row.contact_deadline).items()}
    return RouteMap(effective_from=row.effective_from, recipients=recipients, contact_deadline=deadlines)


def _route_map_values(route_map: RouteMap) -> dict[str, str]:
    recipients = {
        recipient_type: {
            "risk_domains": "all" if rule.risk_domains is None else sorted(rule.risk_domains),
            "note": rule.note,
        }
        for recipient_type, rule in route_map.recipients.items()
    }
    deadlines = {urgency: d.total_seconds() for urgency, d in route_map.contact_deadline.items()}
    return {
        "recipients": json.dumps(recipients, sort_keys=True),
        "contact_deadline": json.dumps(deadlines, sort_keys=True),
    }


def _melding(row: Any) -> RoutedMelding:
    return RoutedMelding(
        melding_id=row.melding_id,
        consent_id=row.consent_id,
        sender_org_id=row.sender_org_id,
        status=RoutingStatus(row.status),
        accepted=MeldingAccepted.model_validate(json.loads(row.accepted), context=STORED) if row.accepted else None,
        requested_types=_types(row.requested_types),
        unroutable_types=_types(row.unroutable_types),
        gemeente_code=row.gemeente_code,
        created_at=row.created_at,
        updated_at=row.updated_at,
        purged_at=row.purged_at,
        skipped_types=_skipped(row.skipped_types),
        not_delivered_reason=NotDeliveredReason(row.not_delivered_reason) if row.not_delivered_reason else None,
        returned=tuple(Returned(r["recipient_type"], r["org_id"], r["reason"]) for r in json.loads(row.returned)),
    )


def _delivery(row: Any) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=row.delivery_id,
        melding_id=row.melding_id,
        org_id=row.org_id,
        org_name=row.org_name,
        recipient_type=row.recipient_type,
        status=DeliveryStatus(row.status),
        message=json.loads(row.message) if row.message else {},
        created_at=row.created_at,
        updated_at=row.updated_at,
        status_note=row.status_note,
        contact_due_at=row.contact_due_at,
        overdue_at=row.overdue_at,
        contact_at=row.contact_at,
        outcome=row.outcome,
        returned_reason=row.returned_reason,
    )


def _dead_letter(row: Any) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        queue=row.queue,
        message_id=row.message_id,
        message_type=row.message_type,
        body=row.body,
        body_encoding=row.body_encoding,
        correlation_id=row.correlation_id,
        reason=row.reason,
        died_at=row.died_at,
        replayed_at=row.replayed_at,
    )


class DirectoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # gemeenten
    async def gemeente(self, code: str) -> GemeenteRecord | None:
        row = (await self.session.execute(select(gemeenten).where(gemeenten.c.code == code))).first()
        return _gemeente(row) if row is not None else None

    async def gemeente_names(self, codes: Collection[str]) -> dict[str, str]:
        """The names of these gemeenten (merged-away ones too), by code; unknown codes are left out."""
        if not codes:
            return {}
        query = select(gemeenten.c.code, gemeenten.c.name).where(gemeenten.c.code.in_(sorted(codes)))
        return {row.code: row.name for row in await self.session.execute(query)}

    async def all_gemeenten(self) -> list[GemeenteRecord]:
        return [_gemeente(row) for row in await self.session.execute(select(gemeenten).order_by(gemeenten.c.code))]

    async def ranges_of_gemeenten(self, codes: list[str] | None = None) -> dict[str, list[Pc4Range]]:
        query = select(gemeente_ranges).order_by(gemeente_ranges.c.from_pc4)
        if codes is not None:
            query = query.where(gemeente_ranges.c.gemeente_code.in_(codes))
        out: dict[str, list[Pc4Range]] = {}
        for row in await self.session.execute(query):
            out.setdefault(row.gemeente_code, []).append(Pc4Range(row.from_pc4, row.to_pc4))
        return out

    async def gemeente_ranges_overlapping(self, ranges: list[Pc4Range], *, except_code: str) -> list[str]:
        found: set[str] = set()
        for r in ranges:
            query = select(gemeente_ranges.c.gemeente_code).where(
                gemeente_ranges.c.gemeente_code != except_code,
                gemeente_ranges.c.from_pc4 <= r.end,
                gemeente_ranges.c.to_pc4 >= r.start,
            )
            found.update((await self.session.execute(query)).scalars())
        return sorted(found)

    async def save_gemeente(self, *, code: str, name: str, ranges: list[Pc4Range], source: str, at: datetime) -> bool:
        """Insert or replace a gemeente and its postcode areas. Returns True if it is new."""
        exists = await self.gemeente(code) is not None
        if exists:
            await self.session.execute(
                update(gemeenten)
                .where(gemeenten.c.code == code)
                .values(name=name, source=source, updated_at=at, ended_at=None)
            )
            await self.session.execute(delete(gemeente_ranges).where(gemeente_ranges.c.gemeente_code == code))
        else:
            await self.session.execute(gemeenten.insert().values(code=code, name=name, source=source, updated_at=at))
        if ranges:
            await self.session.execute(
                gemeente_ranges.insert(),
                [{"gemeente_code": code, "from_pc4": r.start, "to_pc4": r.end} for r in ranges],
            )
        return not exists

    async def end_gemeenten_except(self, codes: set[str], at: datetime) -> int:
        """Gemeenten missing from a new edition (merged away) end; their rows stay for history."""
        ended = [
            c
            for c in (
                await self.session.execute(select(gemeenten.c.code).where(gemeenten.c.ended_at.is_(None)))
            ).scalars()
            if c not in codes
        ]
        if ended:
            await self.session.execute(update(gemeenten).where(gemeenten.c.code.in_(ended)).values(ended_at=at))
            await self.session.execute(delete(gemeente_ranges).where(gemeente_ranges.c.gemeente_code.in_(ended)))
        return len(ended)

    async def replace_straddling(self, areas: list[StraddlingArea]) -> None:
        await self.session.execute(delete(straddling_areas))
        if areas:
            await self.session.execute(
                straddling_areas.insert(),
                [{"pc4": a.pc4, "gemeente_code": a.gemeente_code, "share": a.share} for a in areas],
            )

    async def record_load(self, *, edition: str, gemeenten_count: int, areas: int, ended: int, at: datetime) -> None:
        await self.session.execute(
            directory_loads.insert().values(
                at=at, edition=edition, gemeenten=gemeenten_count, postcode_areas=areas, ended=ended
            )
        )

    async def gemeente_for_pc4(self, pc4: str) -> GemeenteRecord | None:
        return (await self.gemeenten_for_pc4s({pc4})).get(pc4)

    async def gemeenten_for_pc4s(self, pc4s: Collection[str]) -> dict[str, GemeenteRecord]:
        """The gemeente (in force) each postcode area lies in, in one statement; areas in none are left out."""
        if not pc4s:
            return {}
        query = (
            select(gemeenten, gemeente_ranges.c.from_pc4, gemeente_ranges.c.to_pc4)
            .join(gemeente_ranges, gemeente_ranges.c.gemeente_code == gemeenten.c.code)
            .where(gemeenten.c.ended_at.is_(None), _containing(gemeente_ranges, pc4s))
        )
        found: dict[str, GemeenteRecord] = {}
        for row in await self.session.execute(query):
            for pc4 in pc4s:
                if row.from_pc4 <= pc4 <= row.to_pc4:
                    found.setdefault(pc4, _gemeente(row))
        return found

    async def straddling(self, pc4: str) -> list[StraddlingArea]:
        query = select(straddling_areas).where(straddling_areas.c.pc4 == pc4).order_by(straddling_areas.c.share.desc())
        return [StraddlingArea(r.pc4, r.gemeente_code, r.share) for r in await self.session.execute(query)]

    # route maps
    async def route_maps(self, code: str) -> list[RouteMap]:
        """Every version of the gemeente's route map, oldest first."""
        query = select(route_maps).where(route_maps.c.gemeente_code == code).order_by(route_maps.c.effective_from)
        return [_route_map(row) for row in await self.session.execute(query)]

    async def route_maps_in_force(self, code: str, today: date) -> list[RouteMap]:
        """The versions that have taken effect by `today` (the latest of them is in force), at most one."""
        return (await self.route_maps_in_force_for({code}, today)).get(code, [])

    async def route_maps_in_force_for(self, codes: Collection[str], today: date) -> dict[str, list[RouteMap]]:
        """`route_maps_in_force` of several gemeenten, in one statement; gemeenten without one are left out."""
        if not codes:
            return {}
        query = (
            select(route_maps)
            .where(route_maps.c.gemeente_code.in_(sorted(codes)), route_maps.c.effective_from <= today)
            .order_by(route_maps.c.gemeente_code, route_maps.c.effective_from.desc())
        )
        found: dict[str, list[RouteMap]] = {}
        for row in await self.session.execute(query):
            if row.gemeente_code not in found:  # the latest that took effect
                found[row.gemeente_code] = [_route_map(row)]
        return found

    async def save_route_map(self, code: str, route_map: RouteMap, at: datetime) -> bool:
        """Add a version, or replace the one with the same `effective_from`. Returns True if the gemeente had
        no route map before."""
        assert route_map.effective_from is not None
        key = (route_maps.c.gemeente_code == code, route_maps.c.effective_from == route_map.effective_from)
        first = (
            await self.session.execute(select(func.count()).where(route_maps.c.gemeente_code == code))
        ).scalar_one() == 0
        values = _route_map_values(route_map)
        replaced = await self.session.execute(update(route_maps).where(*key).values(**values, updated_at=at))
        if not getattr(replaced, "rowcount", 0):
            await self.session.execute(
                route_maps.insert().values(
                    gemeente_code=code, effective_from=route_map.effective_from, updated_at=at, **values
                )
            )
        return first

    # organisations
    async def organisation(self, org_id: str) -> Organisation | None:
        row = (await self.session.execute(select(organisations).where(organisations.c.org_id == org_id))).first()
        return _organisation(row) if row is not None else None

    async def all_organisations(self) -> list[Organisation]:
        query = select(organisations).order_by(organisations.c.org_id)
        return [_organisation(row) for row in await self.session.execute(query)]

    async def coverage(self, org_ids: list[str]) -> dict[str, tuple[list[str], list[Pc4Range]]]:
        out: dict[str, tuple[list[str], list[Pc4Range]]] = {o: ([], []) for o in org_ids}
        for row in await self.session.execute(
            select(organisation_gemeenten)
            .where(organisation_gemeenten.c.org_id.in_(org_ids))
            .order_by(organisation_gemeenten.c.gemeente_code)
        ):
            out[row.org_id][0].append(row.gemeente_code)
        for row in await self.session.execute(
            select(organisation_ranges)
            .where(organisation_ranges.c.org_id.in_(org_ids))
            .order_by(organisation_ranges.c.from_pc4)
        ):
            out[row.org_id][1].append(Pc4Range(row.from_pc4, row.to_pc4))
        return out

    async def conflicting_organisations(
        self, *, org_id: str, org_type: str, gemeente_codes: list[str], ranges: list[Pc4Range]
    ) -> list[str]:
        """Other active organisations of the same type serving one of these gemeenten or overlapping ranges."""
        others = select(organisations.c.org_id).where(
            organisations.c.org_id != org_id, organisations.c.type == org_type, organisations.c.active == 1
        )
        found: set[str] = set()
        if gemeente_codes:
            found.update(
                (
                    await self.session.execute(
                        select(organisation_gemeenten.c.org_id).where(
                            organisation_gemeenten.c.org_id.in_(others),
                            organisation_gemeenten.c.gemeente_code.in_(gemeente_codes),
                        )
                    )
                ).scalars()
            )
        for r in ranges:
            found.update(
                (
                    await self.session.execute(
                        select(organisation_ranges.c.org_id).where(
                            organisation_ranges.c.org_id.in_(others),
                            organisation_ranges.c.from_pc4 <= r.end,
                            organisation_ranges.c.to_pc4 >= r.start,
                        )
                    )
                ).scalars()
            )
        return sorted(found)

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
    ) -> bool:
        exists = await self.organisation(org_id) is not None
        values = {
            "name": name,
            "type": org_type,
            "active": int(active),
            "updated_at": at,
            "delivery_mode": delivery_mode,
        }
        if exists:
            await self.session.execute(update(organisations).where(organisations.c.org_id == org_id).values(**values))
            await self.session.execute(delete(organisation_gemeenten).where(organisation_gemeenten.c.org_id == org_id))
            await self.session.execute(delete(organisation_ranges).where(organisation_ranges.c.org_id == org_id))
        else:
            await self.session.execute(organisations.insert().values(org_id=org_id, created_at=at, **values))
        if gemeente_codes:
            await self.session.execute(
                organisation_gemeenten.insert(), [{"org_id": org_id, "gemeente_code": c} for c in gemeente_codes]
            )
        if ranges:
            await self.session.execute(
                organisation_ranges.insert(), [{"org_id": org_id, "from_pc4": r.start, "to_pc4": r.end} for r in ranges]
            )
        return not exists

    async def deactivate(self, org_id: str, at: datetime) -> None:
        await self.session.execute(
            update(organisations).where(organisations.c.org_id == org_id).values(active=0, updated_at=at)
        )

    async def active_org_ids(self) -> list[str]:
        return list(
            (await self.session.execute(select(organisations.c.org_id).where(organisations.c.active == 1))).scalars()
        )

    async def candidates(self, *, org_type: str, pc4: str, gemeente_code: str | None) -> list[Candidate]:
        key = (org_type, pc4, gemeente_code)
        return (await self.candidates_for({key}))[key]

    async def candidates_for(self, queries: Collection[CandidateQuery]) -> dict[CandidateQuery, list[Candidate]]:
        """The active organisations of each (type, postcode area, gemeente): first those whose postcode ranges
        hold the area, then those serving the whole gemeente. Two statements, however many queries."""
        out: dict[CandidateQuery, list[Candidate]] = {q: [] for q in queries}
        if not queries:
            return out
        org = (organisations.c.org_id, organisations.c.name, organisations.c.delivery_mode, organisations.c.type)
        active = (organisations.c.type.in_(sorted({t for t, _, _ in queries})), organisations.c.active == 1)
        by_range = (
            select(*org, organisation_ranges.c.from_pc4, organisation_ranges.c.to_pc4)
            .join(organisation_ranges, organisation_ranges.c.org_id == organisations.c.org_id)
            .where(*active, _containing(organisation_ranges, {pc4 for _, pc4, _ in queries}))
        )
        for r in await self.session.execute(by_range):
            for org_type, pc4, code in queries:
                if r.type == org_type and r.from_pc4 <= pc4 <= r.to_pc4:
                    out[org_type, pc4, code].append(Candidate(r.org_id, r.name, True, r.delivery_mode))
        codes = sorted({code for _, _, code in queries if code})
        if codes:
            by_gemeente = (
                select(*org, organisation_gemeenten.c.gemeente_code)
                .join(organisation_gemeenten, organisation_gemeenten.c.org_id == organisations.c.org_id)
                .where(*active, organisation_gemeenten.c.gemeente_code.in_(codes))
            )
            for g in await self.session.execute(by_gemeente):
                for org_type, pc4, code in queries:
                    if g.type == org_type and g.gemeente_code == code:
                        out[org_type, pc4, code].append(Candidate(g.org_id, g.name, False, g.delivery_mode))
        return out


def _containing(ranges: Any, pc4s: Collection[str]) -> ColumnElement[bool]:
    """A postcode range table's rows that hold any of these areas."""
    return or_(*(and_(ranges.c.from_pc4 <= pc4, ranges.c.to_pc4 >= pc4) for pc4 in sorted(pc4s)))


def _skipped_json(skipped: Sequence[Skipped]) -> str:
    return json.dumps([{"recipient_type": s.recipient_type, "reason": s.reason.value} for s in skipped])


class RoutingRepository:
    """The meldingen routing has taken, their deliveries, the consents' states and the dead letters."""

    def __init__(self, session: AsyncSession, cipher: Callable[[], FieldCipher]) -> None:
        # The key ring, asked for only where a BSN is hashed (a directory tool's database may have none).
        self.session, self._cipher = session, cipher

    # --- consents ---------------------------------------------------------------------------------------

    async def lock_consent(self, consent_id: str) -> ConsentState:
        """The consent's state, locked: routing and withdrawal of one consent never interleave."""
        return (await self.lock_consents({consent_id}))[consent_id]

    async def lock_consents(self, consent_ids: set[str]) -> dict[str, ConsentState]:
        """`lock_consent` of several, in one statement, locked in one order (no deadlock between batches)."""
        rows = await lock_rows_creating(self.session, consent_states, [{"consent_id": c} for c in consent_ids])
        return {row.consent_id: ConsentState(consent_id=row.consent_id, withdrawn_at=row.withdrawn_at) for row in rows}

    async def consents_of(self, melding_ids: Collection[str]) -> dict[str, str]:
        """The consent each melding was sent under, by melding id (ids routing does not know are left out)."""
        if not melding_ids:
            return {}
        query = select(routed_meldingen.c.melding_id, routed_meldingen.c.consent_id).where(
            routed_meldingen.c.melding_id.in_(sorted(melding_ids))
        )
        return {row.melding_id: row.consent_id for row in await self.session.execute(query)}

    async def consent_of(self, *, melding_id: str | None = None, delivery_id: str | None = None) -> str | None:
        """The consent a melding (or the melding of a delivery) was sent under: what to lock before changing
        its routing. None for an id routing does not know."""
        query = select(routed_meldingen.c.consent_id)
        if delivery_id is not None:
            query = query.join(deliveries, deliveries.c.melding_id == routed_meldingen.c.melding_id).where(
                deliveries.c.delivery_id == delivery_id
            )
        else:
            query = query.where(routed_meldingen.c.melding_id == melding_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def mark_consent_withdrawn(self, consent_id: str, at: datetime) -> None:
        await self.session.execute(
            update(consent_states).where(consent_states.c.consent_id == consent_id).values(withdrawn_at=at)
        )

    async def record_heartbeat(self, at: datetime) -> None:
        """The consent feed was heard at `at`: every withdrawal published before it has been applied."""
        await record_heartbeat(self.session, consent_feed, at)

    # --- meldingen --------------------------------------------------------------------------------------

    async def melding(self, melding_id: str) -> RoutedMelding | None:
        query = select(routed_meldingen).where(routed_meldingen.c.melding_id == melding_id)
        row = (await self.session.execute(query)).first()
        return _melding(row) if row is not None else None

    async def meldingen_by_id(self, melding_ids: Collection[str]) -> dict[str, RoutedMelding]:
        """Several meldingen by id, in one statement (ids routing does not know are left out)."""
        if not melding_ids:
            return {}
        query = select(routed_meldingen).where(routed_meldingen.c.melding_id.in_(sorted(melding_ids)))
        return {row.melding_id: _melding(row) for row in await self.session.execute(query)}

    async def known_meldingen(self, melding_ids: Collection[str]) -> set[str]:
        """Which of these meldingen routing has taken before."""
        if not melding_ids:
            return set()
        query = select(routed_meldingen.c.melding_id).where(routed_meldingen.c.melding_id.in_(sorted(melding_ids)))
        return set((await self.session.execute(query)).scalars())

    async def add_meldingen(self, meldingen: Sequence[RoutedMelding]) -> None:
        """Store meldingen routing has just taken, in one statement."""
        if not meldingen:
            return
        cipher = self._cipher()
        rows = []
        for melding in meldingen:
            assert melding.accepted is not None
            rows.append(
                {
                    "melding_id": melding.melding_id,
                    "consent_id": melding.consent_id,
                    "sender_org_id": melding.sender_org_id,
                    "status": melding.status.value,
                    "accepted": melding.accepted.model_dump_json(),
                    "requested_types": ",".join(melding.requested_types),
                    "unroutable_types": ",".join(melding.unroutable_types),
                    "created_at": melding.created_at,
                    "updated_at": melding.updated_at,
                    "expected_due_date": melding.accepted.content.pregnancy.expected_due_date,
                    "bsn_ref": cipher.bsn_ref(melding.accepted.content.patient.bsn),
                }
            )
        await self.session.execute(routed_meldingen.insert(), rows)

    async def add_melding(self, melding: RoutedMelding) -> None:
        await self.add_meldingen([melding])

    async def patient_deliveries(
        self, patients: Sequence[MeldingAccepted], org_ids: Collection[str]
    ) -> dict[str, list[PatientDelivery]]:
        """Per melding (by id), the deliveries to these organisations of its patient's meldingen (matched by
        the keyed BSN hash), not retracted, oldest first, in one statement: what `related_deliveries` (the
        domain's rule) chooses from."""
        if not patients or not org_ids:
            return {}
        cipher = self._cipher()
        refs = {accepted.melding_id: cipher.bsn_ref(accepted.content.patient.bsn) for accepted in patients}
        query = (
            select(
                deliveries.c.delivery_id,
                deliveries.c.org_id,
                routed_meldingen.c.melding_id,
                routed_meldingen.c.sender_org_id,
                routed_meldingen.c.expected_due_date,
                routed_meldingen.c.bsn_ref,
            )
            .join(routed_meldingen, routed_meldingen.c.melding_id == deliveries.c.melding_id)
            .where(
                routed_meldingen.c.bsn_ref.in_(sorted(set(refs.values()))),
                deliveries.c.org_id.in_(sorted(org_ids)),
                deliveries.c.status != DeliveryStatus.retracted.value,
            )
            .order_by(deliveries.c.created_at)
        )
        by_ref: dict[str, list[PatientDelivery]] = {}
        for row in await self.session.execute(query):
            by_ref.setdefault(row.bsn_ref, []).append(
                PatientDelivery(row.delivery_id, row.org_id, row.melding_id, row.sender_org_id, row.expected_due_date)
            )
        return {melding_id: by_ref.get(ref, []) for melding_id, ref in refs.items()}

    async def set_routed(self, outcomes: Sequence[RoutingOutcome], at: datetime) -> None:
        """What routing attempts found, one per melding: routed, or waiting for the types no organisation
        serves yet; and the types the route map skipped. One statement (executed for every row)."""
        if not outcomes:
            return
        statement = (
            update(routed_meldingen)
            .where(routed_meldingen.c.melding_id == bindparam("b_melding_id"))
            .values(
                status=bindparam("b_status"),
                unroutable_types=bindparam("b_unroutable"),
                skipped_types=bindparam("b_skipped"),
                gemeente_code=bindparam("b_gemeente"),
                updated_at=bindparam("b_at", type_=routed_meldingen.c.updated_at.type),
            )
        )
        rows = [
            {
                "b_melding_id": o.melding_id,
                "b_status": o.status.value,
                "b_unroutable": ",".join(o.unroutable_types),
                "b_skipped": _skipped_json(o.skipped),
                "b_gemeente": o.gemeente_code,
                "b_at": at,
            }
            for o in outcomes
        ]
        await self.session.execute(statement, rows)

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
        """Nothing more goes out for this melding (withdrawn, not delivered): its personal data goes at once."""
        values: dict[str, Any] = {"status": status.value, "accepted": None, "updated_at": at}
        if reason is not None:
            values.update(not_delivered_reason=reason.value, skipped_types=_skipped_json(skipped))
        if gemeente_code is not None:
            values["gemeente_code"] = gemeente_code
        await self.session.execute(
            update(routed_meldingen).where(routed_meldingen.c.melding_id == melding_id).values(**values)
        )

    async def meldingen_of_consent(self, consent_id: str) -> list[RoutedMelding]:
        query = select(routed_meldingen).where(routed_meldingen.c.consent_id == consent_id)
        return [_melding(row) for row in await self.session.execute(query)]

    def _waiting(self) -> tuple[ColumnElement[bool], ...]:
        # Purged ones can never go out: not waiting, and not counted.
        return (routed_meldingen.c.status == RoutingStatus.waiting.value, routed_meldingen.c.purged_at.is_(None))

    async def waiting(self, limit: int = 100) -> list[RoutedMelding]:
        """Meldingen waiting for a recipient that can still be delivered (not purged by retention)."""
        query = select(routed_meldingen).where(*self._waiting()).order_by(routed_meldingen.c.created_at).limit(limit)
        return [_melding(row) for row in await self.session.execute(query)]

    async def count_waiting(self) -> int:
        """How many meldingen `waiting()` would list."""
        query = select(func.count()).select_from(routed_meldingen).where(*self._waiting())
        return int((await self.session.execute(query)).scalar_one())

    # --- deliveries -------------------------------------------------------------------------------------

    async def deliveries_of(self, melding_id: str) -> list[DeliveryRecord]:
        return (await self.deliveries_of_meldingen({melding_id})).get(melding_id, [])

    async def deliveries_of_meldingen(self, melding_ids: Collection[str]) -> dict[str, list[DeliveryRecord]]:
        """Each melding's deliveries by recipient type, in one statement (meldingen without any left out)."""
        if not melding_ids:
            return {}
        query = (
            select(deliveries)
            .where(deliveries.c.melding_id.in_(sorted(melding_ids)))
            .order_by(deliveries.c.melding_id, deliveries.c.recipient_type)
        )
        found: dict[str, list[DeliveryRecord]] = {}
        for row in await self.session.execute(query):
            found.setdefault(row.melding_id, []).append(_delivery(row))
        return found

    async def add_delivery(self, delivery: DeliveryRecord) -> None:
        await self.add_deliveries([delivery])

    async def add_deliveries(self, records: Sequence[DeliveryRecord]) -> None:
        """Store new deliveries, in one statement."""
        if not records:
            return
        rows = [
            {
                "delivery_id": delivery.delivery_id,
                "melding_id": delivery.melding_id,
                "org_id": delivery.org_id,
                "org_name": delivery.org_name,
                "recipient_type": delivery.recipient_type,
                "status": delivery.status.value,
                "message": json.dumps(delivery.message, separators=(",", ":")),
                "created_at": delivery.created_at,
                "updated_at": delivery.updated_at,
                "contact_due_at": delivery.contact_due_at,
            }
            for delivery in records
        ]
        await self.session.execute(deliveries.insert(), rows)

    # --- the recipients' queues: numbered messages ----------------------------------------------------

    async def take_sequences(self, org_id: str, count: int) -> int:
        """Count numbers off the organisation's sequence; returns the last. The counter's row stays locked
        until the transaction ends (a rollback gives the numbers back)."""
        assert self.session.bind is not None
        insert = pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert
        statement = (
            insert(recipient_sequences)
            .values(org_id=org_id, last_sequence=count)
            .on_conflict_do_update(
                index_elements=[recipient_sequences.c.org_id],
                set_={"last_sequence": recipient_sequences.c.last_sequence + count},
            )
            .returning(recipient_sequences.c.last_sequence)
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def log_recipient_messages(self, messages: Sequence[LoggedMessage], at: datetime) -> None:
        if not messages:
            return
        await self.session.execute(
            recipient_messages.insert(),
            [
                {
                    "org_id": m.org_id,
                    "sequence": m.sequence,
                    "message_id": m.message_id,
                    "message_type": m.message_type,
                    "delivery_id": m.delivery_id,
                    "body": json.dumps(m.body, separators=(",", ":")),
                    "full": m.full,
                    "created_at": at,
                }
                for m in messages
            ],
        )

    async def recipient_messages_after(
        self, org_id: str, after: int, limit: int
    ) -> list[tuple[LoggedMessage, DeliveryRecord | None]]:
        """The organisation's messages numbered after `after`, in order, each a full delivery with its delivery."""
        rows = list(
            await self.session.execute(
                select(recipient_messages)
                .where(recipient_messages.c.org_id == org_id, recipient_messages.c.sequence > after)
                .order_by(recipient_messages.c.sequence)
                .limit(limit)
            )
        )
        full = [r.delivery_id for r in rows if r.full]
        held = (
            {
                r.delivery_id: _delivery(r)
                for r in await self.session.execute(select(deliveries).where(deliveries.c.delivery_id.in_(full)))
            }
            if full
            else {}
        )
        return [
            (
                LoggedMessage(
                    org_id=r.org_id,
                    sequence=r.sequence,
                    message_id=r.message_id,
                    message_type=r.message_type,
                    delivery_id=r.delivery_id,
                    body=json.loads(r.body),
                    full=bool(r.full),
                ),
                held.get(r.delivery_id) if r.full else None,
            )
            for r in rows
        ]

    async def delivery(self, delivery_id: str, *, for_update: bool = False) -> DeliveryRecord | None:
        query = select(deliveries).where(deliveries.c.delivery_id == delivery_id)
        row = (await self.session.execute(query.with_for_update() if for_update else query)).first()
        return _delivery(row) if row is not None else None

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
        """The recipient's answer: the new status, its note, and what goes with it (contact day, outcome, the
        reason it sent the melding back)."""
        values: dict[str, Any] = {"status": status.value, "status_note": note, "updated_at": at}
        for name, value in (("contact_at", contact_at), ("outcome", outcome), ("returned_reason", returned_reason)):
            if value is not None:
                values[name] = value
        await self.session.execute(update(deliveries).where(deliveries.c.delivery_id == delivery_id).values(**values))

    async def record_return(self, melding: RoutedMelding, returned: Returned, at: datetime) -> None:
        """A recipient sent the melding back: it waits (GET /v1/unroutable) until an operator routes it again."""
        entries = [*melding.returned, returned]
        await self.session.execute(
            update(routed_meldingen)
            .where(routed_meldingen.c.melding_id == melding.melding_id)
            .values(
                status=RoutingStatus.waiting.value,
                returned=json.dumps(
                    [{"recipient_type": r.recipient_type, "org_id": r.org_id, "reason": r.reason} for r in entries]
                ),
                updated_at=at,
            )
        )

    async def returned_deliveries(self, melding_ids: Collection[str]) -> list[ReturnedDelivery]:
        """The deliveries of these meldingen their recipients sent back, with when (no personal data read)."""
        if not melding_ids:
            return []
        query = select(
            deliveries.c.melding_id,
            deliveries.c.recipient_type,
            deliveries.c.org_id,
            deliveries.c.org_name,
            deliveries.c.updated_at,
        ).where(deliveries.c.melding_id.in_(sorted(melding_ids)), deliveries.c.status == DeliveryStatus.returned.value)
        return [
            ReturnedDelivery(row.melding_id, row.recipient_type, row.org_id, row.org_name, row.updated_at)
            for row in await self.session.execute(query)
        ]

    # --- contact deadlines --------------------------------------------------------------------------------

    def _waiting_for_contact(self) -> ColumnElement[bool]:
        return deliveries.c.status.in_((DeliveryStatus.queued.value, DeliveryStatus.received.value))

    async def lock_newly_overdue(self, at: datetime, limit: int) -> list[DeliveryRecord]:
        """Deliveries past their deadline without contact and not yet marked overdue, locked; on PostgreSQL
        those another routing replica holds are skipped (it marks them), so each gets one reminder."""
        query = (
            select(deliveries)
            .where(deliveries.c.overdue_at.is_(None), deliveries.c.contact_due_at <= at, self._waiting_for_contact())
            .order_by(deliveries.c.contact_due_at)
            .limit(limit)
        )
        dialect = self.session.bind.dialect.name if self.session.bind is not None else ""
        query = query.with_for_update(skip_locked=True) if dialect == "postgresql" else query
        return [_delivery(row) for row in await self.session.execute(query)]

    async def mark_overdue(self, delivery_id: str, at: datetime) -> None:
        await self.session.execute(
            update(deliveries).where(deliveries.c.delivery_id == delivery_id).values(overdue_at=at)
        )

    def _overdue(self) -> tuple[ColumnElement[bool], ...]:
        return (deliveries.c.overdue_at.is_not(None), self._waiting_for_contact())

    async def count_overdue(self) -> int:
        """How many deliveries `overdue()` would list (without its limit)."""
        query = select(func.count()).select_from(deliveries).where(*self._overdue())
        return int((await self.session.execute(query)).scalar_one())

    async def overdue(self, limit: int) -> list[tuple[DeliveryRecord, str | None]]:
        """Overdue deliveries still without contact, oldest deadline first, with their melding's gemeente."""
        query = (
            select(deliveries, routed_meldingen.c.gemeente_code)
            .join(routed_meldingen, routed_meldingen.c.melding_id == deliveries.c.melding_id)
            .where(*self._overdue())
            .order_by(deliveries.c.contact_due_at)
            .limit(limit)
        )
        return [(_delivery(row), row.gemeente_code) for row in await self.session.execute(query)]

    # --- the sender's cancellation ------------------------------------------------------------------------

    async def cancelled_among(self, melding_ids: Collection[str]) -> set[str]:
        """Which of these meldingen their sender cancelled (read holding their consents' locks)."""
        if not melding_ids:
            return set()
        query = select(cancellations.c.melding_id).where(cancellations.c.melding_id.in_(sorted(melding_ids)))
        return set((await self.session.execute(query)).scalars())

    async def cancellation(self, melding_id: str) -> str | None:
        """The sender's reason if it cancelled the melding. Read holding the consent's lock, which the
        cancellation takes too: routing and the cancellation of one melding never interleave."""
        query = select(cancellations.c.reason).where(cancellations.c.melding_id == melding_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def record_cancellation(self, melding_id: str, reason: str, at: datetime) -> bool:
        """Remember the cancellation (it may arrive before the melding: it travels on another queue).
        False if it was recorded before."""
        if await self.cancellation(melding_id) is not None:
            return False
        await self.session.execute(cancellations.insert().values(melding_id=melding_id, reason=reason, cancelled_at=at))
        return True

    async def retract_delivery(self, delivery_id: str, retraction: dict[str, Any], at: datetime) -> None:
        """The delivery is retracted: its message becomes the retraction, and its personal content goes."""
        await self.session.execute(
            update(deliveries)
            .where(deliveries.c.delivery_id == delivery_id)
            .values(
                status=DeliveryStatus.retracted.value,
                message=json.dumps(retraction, separators=(",", ":")),
                status_note=None,
                updated_at=at,
            )
        )

    async def deliveries_page(
        self, *, org_id: str, status: DeliveryStatus | None, cursor: str | None, limit: int
    ) -> list[DeliveryRecord]:
        """Up to `limit + 1` of the organisation's deliveries, newest first (one more tells there are more)."""
        query = select(deliveries).where(deliveries.c.org_id == org_id)
        if status:
            query = query.where(deliveries.c.status == status.value)
        query = newest_first(
            query, at=deliveries.c.created_at, item_id=deliveries.c.delivery_id, cursor=cursor, limit=limit
        )
        return [_delivery(row) for row in await self.session.execute(query)]

    # --- retention --------------------------------------------------------------------------------------

    @staticmethod
    def _personal_data_due(cutoff: date) -> tuple[ColumnElement[bool], ...]:
        closed = (
            RoutingStatus.withdrawn.value,
            RoutingStatus.not_delivered.value,
            RoutingStatus.cancelled.value,
            RoutingStatus.refused.value,
        )
        return (
            routed_meldingen.c.purged_at.is_(None),
            or_(routed_meldingen.c.status.in_(closed), routed_meldingen.c.expected_due_date < cutoff),
        )

    async def count_personal_data_due(self, cutoff: date) -> int:
        """Meldingen whose personal data is due: withdrawn or not delivered, or due before `cutoff`."""
        query = select(func.count()).where(*self._personal_data_due(cutoff))
        return int((await self.session.execute(query)).scalar_one())

    async def lock_personal_data_due(self, cutoff: date, limit: int) -> list[RoutedMelding]:
        query = select(routed_meldingen).where(*self._personal_data_due(cutoff)).limit(limit).with_for_update()
        return [_melding(row) for row in list(await self.session.execute(query))]

    async def remove_personal_data(self, melding: RoutedMelding, at: datetime) -> None:
        """The melding's accepted body goes; each delivery keeps an anonymous document (ids, when its data
        was removed). A retracted delivery's message is its retraction: nothing personal, it stays."""
        await self.session.execute(
            update(routed_meldingen)
            .where(routed_meldingen.c.melding_id == melding.melding_id)
            .values(accepted=None, purged_at=at)
        )
        for delivery in await self.deliveries_of(melding.melding_id):
            if delivery.status is not DeliveryStatus.retracted:
                await self.clear_delivery(delivery, at)

    async def clear_delivery(self, delivery: DeliveryRecord, at: datetime) -> None:
        """The delivery's personal content goes; it keeps an anonymous document (ids, when it was removed) and
        its status."""
        document = {"delivery_id": delivery.delivery_id, "melding_id": delivery.melding_id, "purged_at": at.isoformat()}
        await self.session.execute(
            update(deliveries)
            .where(deliveries.c.delivery_id == delivery.delivery_id)
            .values(message=json.dumps(document), status_note=None)
        )

    # --- dead letters -----------------------------------------------------------------------------------

    async def first_death(self, key: str, at: datetime) -> bool:
        """Record this death of a message (KeepDeadLetter.key) as the dead-letter keeper's processed message;
        False if it was recorded before: the same dead letter, delivered again."""
        return await insert_once(
            self.session, processed_messages, consumer=DEAD_LETTER_KEEPER, message_id=key, processed_at=at
        )

    async def add_dead_letter(self, letter: DeadLetter) -> None:
        await self.session.execute(
            dead_letters.insert().values(
                id=letter.id,
                queue=letter.queue,
                message_id=letter.message_id,
                message_type=letter.message_type,
                body=letter.body,
                body_encoding=letter.body_encoding,
                correlation_id=letter.correlation_id,
                reason=letter.reason,
                died_at=letter.died_at,
            )
        )

    async def dead_letters(self, *, include_replayed: bool, limit: int) -> list[DeadLetter]:
        query = select(dead_letters).order_by(dead_letters.c.died_at.desc()).limit(limit)
        if not include_replayed:
            query = query.where(dead_letters.c.replayed_at.is_(None))
        return [_dead_letter(row) for row in await self.session.execute(query)]

    async def dead_letter(self, dead_letter_id: str, *, for_update: bool = False) -> DeadLetter | None:
        query = select(dead_letters).where(dead_letters.c.id == dead_letter_id)
        row = (await self.session.execute(query.with_for_update() if for_update else query)).first()
        return _dead_letter(row) if row is not None else None

    async def mark_replayed(self, dead_letter_id: str, at: datetime) -> None:
        await self.session.execute(
            update(dead_letters).where(dead_letters.c.id == dead_letter_id).values(replayed_at=at)
        )

    async def count_dead_letters(self) -> int:
        """Dead letters an operator has not replayed yet."""
        query = select(func.count()).select_from(dead_letters).where(dead_letters.c.replayed_at.is_(None))
        return int((await self.session.execute(query)).scalar_one())

    @staticmethod
    def _replayed_before(before: datetime) -> ColumnElement[bool]:
        return and_(dead_letters.c.replayed_at.is_not(None), dead_letters.c.replayed_at < before)

    async def count_replayed_dead_letters(self, *, before: datetime) -> int:
        query = select(func.count()).select_from(dead_letters).where(self._replayed_before(before))
        return int((await self.session.execute(query)).scalar_one())

    async def delete_replayed_dead_letters(self, *, before: datetime) -> int:
        """Dead letters replayed before `before` go (their message lives on as the replay)."""
        removed = await self.session.execute(delete(dead_letters).where(self._replayed_before(before)))
        return int(getattr(removed, "rowcount", 0) or 0)
