"""All SQL of the routing service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from services.routing.adapters.orm import (
    consent_states,
    dead_letters,
    deliveries,
    directory_loads,
    gemeente_ranges,
    gemeenten,
    organisation_gemeenten,
    organisation_ranges,
    organisations,
    routed_meldingen,
    straddling_areas,
)
from services.routing.domain.model import Candidate, Pc4Range
from shared.db import UnitOfWork, lock_row_creating
from shared.pagination import newest_first


class DirectoryRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self.session = uow.session

    # gemeenten
    async def gemeente(self, code: str) -> Any | None:
        return (await self.session.execute(select(gemeenten).where(gemeenten.c.code == code))).first()

    async def all_gemeenten(self) -> list[Any]:
        return list(await self.session.execute(select(gemeenten).order_by(gemeenten.c.code)))

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

    async def replace_straddling(self, rows: list[dict[str, Any]]) -> None:
        await self.session.execute(delete(straddling_areas))
        if rows:
            await self.session.execute(straddling_areas.insert(), rows)

    async def record_load(self, *, edition: str, gemeenten_count: int, areas: int, ended: int, at: datetime) -> None:
        await self.session.execute(
            directory_loads.insert().values(
                at=at, edition=edition, gemeenten=gemeenten_count, postcode_areas=areas, ended=ended
            )
        )

    async def gemeente_for_pc4(self, pc4: str) -> Any | None:
        query = (
            select(gemeenten)
            .join(gemeente_ranges, gemeente_ranges.c.gemeente_code == gemeenten.c.code)
            .where(gemeente_ranges.c.from_pc4 <= pc4, gemeente_ranges.c.to_pc4 >= pc4, gemeenten.c.ended_at.is_(None))
            .limit(1)
        )
        return (await self.session.execute(query)).first()

    async def straddling(self, pc4: str) -> list[Any]:
        query = select(straddling_areas).where(straddling_areas.c.pc4 == pc4).order_by(straddling_areas.c.share.desc())
        return list(await self.session.execute(query))

    # organisations
    async def organisation(self, org_id: str) -> Any | None:
        return (await self.session.execute(select(organisations).where(organisations.c.org_id == org_id))).first()

    async def all_organisations(self) -> list[Any]:
        return list(await self.session.execute(select(organisations).order_by(organisations.c.org_id)))

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
    ) -> bool:
        exists = await self.organisation(org_id) is not None
        values = {"name": name, "type": org_type, "active": int(active), "updated_at": at}
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
        active = [organisations.c.type == org_type, organisations.c.active == 1]
        out = [
            Candidate(r.org_id, r.name, True)
            for r in await self.session.execute(
                select(organisations.c.org_id, organisations.c.name)
                .join(organisation_ranges, organisation_ranges.c.org_id == organisations.c.org_id)
                .where(*active, organisation_ranges.c.from_pc4 <= pc4, organisation_ranges.c.to_pc4 >= pc4)
            )
        ]
        if gemeente_code:
            out += [
                Candidate(r.org_id, r.name, False)
                for r in await self.session.execute(
                    select(organisations.c.org_id, organisations.c.name)
                    .join(organisation_gemeenten, organisation_gemeenten.c.org_id == organisations.c.org_id)
                    .where(*active, organisation_gemeenten.c.gemeente_code == gemeente_code)
                )
            ]
        return out


class RoutingRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.session = uow.session

    async def lock_consent(self, consent_id: str) -> Any:
        """The consent's row, locked: routing and withdrawal of one consent never interleave."""
        return await lock_row_creating(self.session, consent_states, consent_id=consent_id)

    async def mark_consent_withdrawn(self, consent_id: str, at: datetime) -> None:
        await self.session.execute(
            update(consent_states).where(consent_states.c.consent_id == consent_id).values(withdrawn_at=at)
        )

    async def melding(self, melding_id: str) -> Any | None:
        return (
            await self.session.execute(select(routed_meldingen).where(routed_meldingen.c.melding_id == melding_id))
        ).first()

    async def add_melding(self, **values: Any) -> None:
        await self.session.execute(routed_meldingen.insert().values(**values))

    async def update_melding(self, melding_id: str, **values: Any) -> None:
        await self.session.execute(
            update(routed_meldingen).where(routed_meldingen.c.melding_id == melding_id).values(**values)
        )

    async def meldingen_of_consent(self, consent_id: str) -> list[Any]:
        return list(
            await self.session.execute(select(routed_meldingen).where(routed_meldingen.c.consent_id == consent_id))
        )

    async def waiting(self, limit: int = 100) -> list[Any]:
        """Meldingen waiting for a recipient that can still be delivered (not purged by retention)."""
        return list(
            await self.session.execute(
                select(routed_meldingen)
                .where(routed_meldingen.c.status == "waiting", routed_meldingen.c.purged_at.is_(None))
                .order_by(routed_meldingen.c.created_at)
                .limit(limit)
            )
        )

    async def count_waiting(self) -> int:
        """How many meldingen `waiting()` would list (purged ones can never go out and are not counted)."""
        return (
            await self.session.execute(
                select(func.count())
                .select_from(routed_meldingen)
                .where(routed_meldingen.c.status == "waiting", routed_meldingen.c.purged_at.is_(None))
            )
        ).scalar_one()

    async def count_dead_letters(self) -> int:
        """Dead letters an operator has not replayed yet."""
        return (
            await self.session.execute(
                select(func.count()).select_from(dead_letters).where(dead_letters.c.replayed_at.is_(None))
            )
        ).scalar_one()

    async def deliveries_of(self, melding_id: str) -> list[Any]:
        return list(
            await self.session.execute(
                select(deliveries).where(deliveries.c.melding_id == melding_id).order_by(deliveries.c.recipient_type)
            )
        )

    async def add_delivery(self, **values: Any) -> None:
        await self.session.execute(deliveries.insert().values(**values))

    async def delivery(self, delivery_id: str, *, for_update: bool = False) -> Any | None:
        query = select(deliveries).where(deliveries.c.delivery_id == delivery_id)
        return (await self.session.execute(query.with_for_update() if for_update else query)).first()

    async def update_delivery(self, delivery_id: str, **values: Any) -> None:
        await self.session.execute(update(deliveries).where(deliveries.c.delivery_id == delivery_id).values(**values))

    async def deliveries_page(self, *, org_id: str, status: str | None, cursor: str | None, limit: int) -> list[Any]:
        query = select(deliveries).where(deliveries.c.org_id == org_id)
        if status:
            query = query.where(deliveries.c.status == status)
        return list(
            await self.session.execute(
                newest_first(
                    query, at=deliveries.c.created_at, item_id=deliveries.c.delivery_id, cursor=cursor, limit=limit
                )
            )
        )

    # dead letters
    async def add_dead_letter(self, **values: Any) -> None:
        await self.session.execute(dead_letters.insert().values(**values))

    async def dead_letters(self, *, include_replayed: bool, limit: int) -> list[Any]:
        query = select(dead_letters).order_by(dead_letters.c.died_at.desc()).limit(limit)
        if not include_replayed:
            query = query.where(dead_letters.c.replayed_at.is_(None))
        return list(await self.session.execute(query))

    async def dead_letter(self, dead_letter_id: str, *, for_update: bool = False) -> Any | None:
        query = select(dead_letters).where(dead_letters.c.id == dead_letter_id)
        return (await self.session.execute(query.with_for_update() if for_update else query)).first()

    async def mark_replayed(self, dead_letter_id: str, at: datetime) -> None:
        await self.session.execute(
            update(dead_letters).where(dead_letters.c.id == dead_letter_id).values(replayed_at=at)
        )
