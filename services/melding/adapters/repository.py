"""All SQL on meldingen, their deliveries and their history."""

from __future__ import annotations

import json
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select, update

from services.melding.adapters.orm import consent_states, melding_deliveries, melding_history, meldingen
from services.melding.domain.model import DeliveryView, later_delivery_status, melding_status, skeleton_of
from shared.db import UnitOfWork, lock_row_creating
from shared.pagination import newest_first


def _due_date(content: dict[str, Any]) -> date | None:
    due = (content.get("pregnancy") or {}).get("expected_due_date")
    return date.fromisoformat(due) if due else None


class MeldingRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self.session = uow.session

    async def add(
        self, *, melding_id: str, sender: dict[str, str], consent: dict[str, Any], content: dict[str, Any], at: datetime
    ) -> tuple[Any, Any]:
        """Store a new melding and its first history entry; both rows as a read would return them."""
        row = {column.name: None for column in meldingen.columns} | dict(
            id=melding_id,
            status="accepted",
            sender_org_id=sender["org_id"],
            sender_org_type=sender["org_type"],
            sender_sub=sender["sub"],
            consent_id=consent["id"],
            consent=json.dumps(consent, default=str),
            content=json.dumps(content),
            expected_due_date=_due_date(content),
            unroutable_types="",
            routing_reported_unroutable=0,
            created_at=at,
            updated_at=at,
        )
        await self.session.execute(meldingen.insert().values(row))
        await self.add_history(melding_id, at, "accepted", None)
        return SimpleNamespace(**row), SimpleNamespace(melding_id=melding_id, at=at, event="accepted", detail=None)

    async def get(self, melding_id: str) -> Any | None:
        return (await self.session.execute(select(meldingen).where(meldingen.c.id == melding_id))).first()

    async def lock(self, melding_id: str) -> bool:
        """Take the melding's row lock for this transaction; False if there is no such melding.

        Events about one melding (routed, a delivery's status) may be handled at the same moment; each
        reads then writes its deliveries, so they must take turns (SQLite's BEGIN IMMEDIATE already does).
        """
        query = select(meldingen.c.id).where(meldingen.c.id == melding_id).with_for_update()
        return (await self.session.execute(query)).first() is not None

    async def page_for_sender(self, *, org_id: str, status: str | None, cursor: str | None, limit: int) -> list[Any]:
        query = select(meldingen).where(meldingen.c.sender_org_id == org_id)
        if status:
            query = query.where(meldingen.c.status == status)
        query = newest_first(query, at=meldingen.c.created_at, item_id=meldingen.c.id, cursor=cursor, limit=limit)
        return list(await self.session.execute(query))

    async def deliveries(self, melding_ids: list[str]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {m: [] for m in melding_ids}
        query = (
            select(melding_deliveries)
            .where(melding_deliveries.c.melding_id.in_(melding_ids))
            .order_by(melding_deliveries.c.recipient_type)
        )
        for row in await self.session.execute(query):
            out[row.melding_id].append(row)
        return out

    async def history(self, melding_ids: list[str]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {m: [] for m in melding_ids}
        query = (
            select(melding_history)
            .where(melding_history.c.melding_id.in_(melding_ids))
            .order_by(melding_history.c.at, melding_history.c.id)
        )
        for row in await self.session.execute(query):
            out[row.melding_id].append(row)
        return out

    async def add_history(self, melding_id: str, at: datetime, event: str, detail: str | None) -> None:
        await self.session.execute(
            melding_history.insert().values(melding_id=melding_id, at=at, event=event, detail=detail)
        )

    async def record_delivery(self, melding_id: str, delivery: DeliveryView, at: datetime) -> bool:
        """Insert or move a delivery forward. Returns whether anything changed."""
        current = (
            await self.session.execute(
                select(melding_deliveries.c.status).where(melding_deliveries.c.delivery_id == delivery.delivery_id)
            )
        ).scalar_one_or_none()
        status = later_delivery_status(current, delivery.status)
        if current is None:
            await self.session.execute(
                melding_deliveries.insert().values(
                    delivery_id=delivery.delivery_id,
                    melding_id=melding_id,
                    org_id=delivery.org_id,
                    org_name=delivery.org_name,
                    recipient_type=delivery.recipient_type,
                    status=status,
                    updated_at=at,
                )
            )
            return True
        if status != current:
            await self.session.execute(
                update(melding_deliveries)
                .where(melding_deliveries.c.delivery_id == delivery.delivery_id)
                .values(status=status, updated_at=at)
            )
            return True
        return False

    async def set_routing(
        self,
        melding_id: str,
        *,
        gemeente: dict[str, str] | None,
        unroutable_types: list[str],
        reported_unroutable: bool,
        at: datetime,
    ) -> None:
        values: dict[str, Any] = {"unroutable_types": ",".join(sorted(unroutable_types)), "updated_at": at}
        if gemeente:
            values.update(gemeente_code=gemeente["code"], gemeente_name=gemeente["name"])
        if reported_unroutable:
            values["routing_reported_unroutable"] = 1
        await self.session.execute(update(meldingen).where(meldingen.c.id == melding_id).values(**values))
        await self.refresh_status(melding_id, at)

    async def lock_consent(self, consent_id: str) -> Any:
        """The consent's state, locked: an intake and the consent's withdrawal never interleave."""
        return await lock_row_creating(self.session, consent_states, consent_id=consent_id)

    async def withdraw_for_consent(self, consent_id: str, at: datetime) -> list[tuple[str, str | None]]:
        """Record the consent's withdrawal, then withdraw its meldingen and remove their personal data at once.

        Returns each melding withdrawn now with the BSN its personal data named (for the audit log). Holding
        the consent's lock: a melding whose intake commits after this sees the withdrawal and is refused.
        """
        await self.lock_consent(consent_id)
        await self.session.execute(
            update(consent_states)
            .where(consent_states.c.consent_id == consent_id, consent_states.c.withdrawn_at.is_(None))
            .values(withdrawn_at=at)
        )
        rows = list(
            await self.session.execute(
                select(meldingen.c.id, meldingen.c.content).where(
                    meldingen.c.consent_id == consent_id, meldingen.c.withdrawn_at.is_(None)
                )
            )
        )
        withdrawn = []
        for row in rows:
            await self.session.execute(
                update(meldingen).where(meldingen.c.id == row.id).values(withdrawn_at=at, updated_at=at)
            )
            await self.add_history(row.id, at, "withdrawn", "consent withdrawn")
            bsn = await self.purge(row.id, row.content, at, "personal data removed (consent withdrawn)")
            await self.refresh_status(row.id, at)
            withdrawn.append((row.id, bsn))
        return withdrawn

    async def purge(self, melding_id: str, content_json: str | None, at: datetime, detail: str) -> str | None:
        """Remove a melding's personal data, keeping its anonymous skeleton. Returns the BSN it named."""
        if content_json is None:
            return None  # removed before
        content = json.loads(content_json)
        await self.session.execute(
            update(meldingen)
            .where(meldingen.c.id == melding_id)
            .values(content=None, skeleton=json.dumps(skeleton_of(content)), purged_at=at)
        )
        await self.add_history(melding_id, at, "purged", detail)
        return (content.get("patient") or {}).get("bsn")

    async def refresh_status(self, melding_id: str, at: datetime) -> None:
        # Only what the status depends on: the full row would decrypt the melding's content for nothing.
        delivery_count = select(func.count()).where(melding_deliveries.c.melding_id == melding_id).scalar_subquery()
        row = (
            await self.session.execute(
                select(
                    meldingen.c.status,
                    meldingen.c.withdrawn_at,
                    meldingen.c.routing_reported_unroutable,
                    delivery_count.label("deliveries"),
                ).where(meldingen.c.id == melding_id)
            )
        ).first()
        if row is None:
            return
        status = melding_status(
            withdrawn=row.withdrawn_at is not None,
            deliveries=row.deliveries,
            routing_reported_unroutable=bool(row.routing_reported_unroutable),
        )
        if status != row.status:
            await self.session.execute(
                update(meldingen).where(meldingen.c.id == melding_id).values(status=status.value, updated_at=at)
            )
