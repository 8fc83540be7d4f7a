"""All SQL of the FHIR facade: its subscriptions and the notifications waiting for their endpoints."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.fhir.adapters.orm import notifications, subscription_owners, subscriptions
from services.fhir.domain.subscription import Event, SubscriptionRequest, SubscriptionView
from shared.db import lock_row_creating

ACTIVE, ERROR = "active", "error"


@dataclass(frozen=True)
class Target:
    """Where a subscription's notifications go, and what goes with them."""

    view: SubscriptionView
    headers: list[str]


def _view(row: Row[Any]) -> SubscriptionView:
    return SubscriptionView(
        id=row.id,
        org_id=row.org_id,
        endpoint=row.endpoint,
        heartbeat_seconds=row.heartbeat_seconds,
        reason=row.reason,
        status=row.status,
        error=row.error,
        events=row.events,
    )


class SubscriptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, *, subscription_id: str, org_id: str, request: SubscriptionRequest, created_by: str, at: datetime
    ) -> SubscriptionView:
        await self.session.execute(
            subscriptions.insert().values(
                id=subscription_id,
                org_id=org_id,
                endpoint=request.endpoint,
                headers=json.dumps(request.headers),
                heartbeat_seconds=request.heartbeat_seconds,
                reason=request.reason,
                status=ACTIVE,
                events=0,
                created_at=at,
                created_by=created_by,
                last_sent_at=at,
            )
        )
        view = await self.get(subscription_id, org_id)
        assert view is not None
        return view

    async def lock_and_count(self, org_id: str) -> int:
        """How many Subscriptions the organisation has, counted under its lock (held until the transaction
        ends), so that two creations at once cannot both take the last free place."""
        await lock_row_creating(self.session, subscription_owners, org_id=org_id)
        counted = await self.session.execute(
            select(func.count()).select_from(subscriptions).where(subscriptions.c.org_id == org_id)
        )
        return int(counted.scalar_one())

    async def get(self, subscription_id: str, org_id: str) -> SubscriptionView | None:
        row = (
            await self.session.execute(
                select(subscriptions).where(subscriptions.c.id == subscription_id, subscriptions.c.org_id == org_id)
            )
        ).first()
        return _view(row) if row is not None else None

    async def delete(self, subscription_id: str, org_id: str) -> bool:
        await self.session.execute(delete(notifications).where(notifications.c.subscription_id == subscription_id))
        removed = await self.session.execute(
            delete(subscriptions).where(subscriptions.c.id == subscription_id, subscriptions.c.org_id == org_id)
        )
        return bool(removed.rowcount)  # type: ignore[attr-defined]

    async def active_for(self, org_id: str) -> list[str]:
        return (await self.active_of({org_id})).get(org_id, [])

    async def active_of(self, org_ids: Collection[str]) -> dict[str, list[str]]:
        """These organisations' active subscriptions by organisation, each list by id: the order every
        transaction locks them in (their event counters), so that two never wait on each other (a deadlock on
        PostgreSQL). One statement; organisations without any are left out."""
        if not org_ids:
            return {}
        rows = await self.session.execute(
            select(subscriptions.c.org_id, subscriptions.c.id)
            .where(subscriptions.c.org_id.in_(sorted(org_ids)), subscriptions.c.status == ACTIVE)
            .order_by(subscriptions.c.id)
        )
        found: dict[str, list[str]] = {}
        for row in rows:
            found.setdefault(row.org_id, []).append(row.id)
        return found

    async def next_event_number(self, subscription_id: str) -> int:
        return await self.take_event_numbers(subscription_id, 1)

    async def take_event_numbers(self, subscription_id: str, count: int) -> int:
        """Count `count` event numbers off the subscription's counter under its row lock; returns the last."""
        number = await self.session.execute(
            update(subscriptions)
            .where(subscriptions.c.id == subscription_id)
            .values(events=subscriptions.c.events + count)
            .returning(subscriptions.c.events)
        )
        return int(number.scalar_one())

    async def add_notification(self, subscription_id: str, event: Event) -> None:
        await self.add_notifications([(subscription_id, event)])

    async def add_notifications(self, events: Sequence[tuple[str, Event]]) -> None:
        """Notifications for subscriptions, in one statement."""
        if not events:
            return
        rows = [
            {
                "subscription_id": subscription_id,
                "event_number": event.number,
                "task_id": event.task_id,
                "created_at": event.at,
                "attempts": 0,
                "next_attempt_at": event.at,
            }
            for subscription_id, event in events
        ]
        await self.session.execute(notifications.insert(), rows)

    # --- the notifier ------------------------------------------------------------------------------------

    async def due(self, now: datetime, limit: int, *, per_organisation: int) -> list[tuple[str, str]]:
        """Active subscriptions whose oldest unsent notification is due and not being sent by another, as
        (id, organisation): at most `per_organisation` of each organisation, taken in turns — each
        organisation's first, then each one's second, … — so that one organisation's backlog cannot fill
        the batch and starve another's."""
        head = (
            select(notifications.c.subscription_id, func.min(notifications.c.event_number).label("first"))
            .where(notifications.c.sent_at.is_(None))
            .group_by(notifications.c.subscription_id)
            .subquery()
        )
        turn = func.row_number().over(partition_by=subscriptions.c.org_id, order_by=notifications.c.next_attempt_at)
        ranked = (
            select(
                notifications.c.subscription_id,
                subscriptions.c.org_id,
                notifications.c.next_attempt_at,
                turn.label("turn"),
            )
            .join(
                head,
                and_(
                    head.c.subscription_id == notifications.c.subscription_id,
                    head.c.first == notifications.c.event_number,
                ),
            )
            .join(subscriptions, subscriptions.c.id == notifications.c.subscription_id)
            .where(
                subscriptions.c.status == ACTIVE,
                notifications.c.next_attempt_at <= now,
                or_(notifications.c.locked_until.is_(None), notifications.c.locked_until < now),
            )
            .subquery()
        )
        rows = await self.session.execute(
            select(ranked.c.subscription_id, ranked.c.org_id)
            .where(ranked.c.turn <= per_organisation)
            .order_by(ranked.c.turn, ranked.c.next_attempt_at, ranked.c.subscription_id)
            .limit(limit)
        )
        return [(row.subscription_id, row.org_id) for row in rows]

    async def claim(self, subscription_id: str, now: datetime, lease: timedelta, limit: int) -> tuple[list[Event], int]:
        """The subscription's unsent notifications, oldest first, leased to this sender (none if another
        took them meanwhile), and how often the oldest was tried before."""
        pending = (
            await self.session.execute(
                select(notifications)
                .where(notifications.c.subscription_id == subscription_id, notifications.c.sent_at.is_(None))
                .order_by(notifications.c.event_number)
                .limit(limit)
            )
        ).all()
        if not pending:
            return [], 0
        taken = await self.session.execute(
            update(notifications)
            .where(
                notifications.c.subscription_id == subscription_id,
                notifications.c.event_number == pending[0].event_number,
                or_(notifications.c.locked_until.is_(None), notifications.c.locked_until < now),
            )
            .values(locked_until=now + lease)
        )
        if not taken.rowcount:  # type: ignore[attr-defined]
            return [], 0
        return [Event(row.event_number, row.task_id, row.created_at) for row in pending], pending[0].attempts

    async def target(self, subscription_id: str) -> Target | None:
        row = (await self.session.execute(select(subscriptions).where(subscriptions.c.id == subscription_id))).first()
        return Target(_view(row), json.loads(row.headers)) if row is not None else None

    async def sent(self, subscription_id: str, numbers: list[int], at: datetime) -> None:
        await self.session.execute(
            update(notifications)
            .where(notifications.c.subscription_id == subscription_id, notifications.c.event_number.in_(numbers))
            .values(sent_at=at, locked_until=None, last_error=None)
        )
        await self.session.execute(
            update(subscriptions).where(subscriptions.c.id == subscription_id).values(last_sent_at=at)
        )

    async def failed(self, subscription_id: str, first: int, *, attempts: int, error: str, retry_at: datetime) -> None:
        """The attempt at the oldest notification failed: its `attempts`-th; it waits until `retry_at`. One that
        another notifier sent meanwhile (this one's lease ran out) stays sent."""
        await self.session.execute(
            update(notifications)
            .where(
                notifications.c.subscription_id == subscription_id,
                notifications.c.event_number == first,
                notifications.c.sent_at.is_(None),
            )
            .values(attempts=attempts, next_attempt_at=retry_at, locked_until=None, last_error=error)
        )

    async def set_error(self, subscription_id: str, error: str) -> None:
        await self.session.execute(
            update(subscriptions).where(subscriptions.c.id == subscription_id).values(status=ERROR, error=error)
        )

    async def heartbeats_due(self, now: datetime) -> list[tuple[str, str]]:
        """Active subscriptions with a heartbeat period that have sent nothing for that long, as (id,
        organisation)."""
        rows = await self.session.execute(
            select(
                subscriptions.c.id,
                subscriptions.c.org_id,
                subscriptions.c.heartbeat_seconds,
                subscriptions.c.last_sent_at,
            ).where(subscriptions.c.status == ACTIVE, subscriptions.c.heartbeat_seconds.is_not(None))
        )
        return [
            (row.id, row.org_id)
            for row in rows
            if row.last_sent_at is None or row.last_sent_at + timedelta(seconds=row.heartbeat_seconds) <= now
        ]

    async def touch(self, subscription_id: str, at: datetime) -> None:
        await self.session.execute(
            update(subscriptions).where(subscriptions.c.id == subscription_id).values(last_sent_at=at)
        )

    async def backlog(self, now: datetime) -> tuple[int, float, int]:
        """For /metrics: notifications not yet taken by their endpoint, the age in seconds of the oldest,
        and the subscriptions in error."""
        pending, oldest = (
            await self.session.execute(
                select(func.count(), func.min(notifications.c.created_at))
                .select_from(notifications.join(subscriptions))
                .where(notifications.c.sent_at.is_(None), subscriptions.c.status == ACTIVE)
            )
        ).one()
        in_error = (
            await self.session.execute(
                select(func.count()).select_from(subscriptions).where(subscriptions.c.status == ERROR)
            )
        ).scalar_one()
        return int(pending), (now - oldest).total_seconds() if oldest else 0.0, int(in_error)
