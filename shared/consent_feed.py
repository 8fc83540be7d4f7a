"""The consent feed: how a service knows that its own record of consents is current (CONTRACT v1.2, decision 6).

The consent service publishes `consent.heartbeat` every `consent_heartbeat_seconds` on the exchange its consent
events go to, so each heartbeat queues behind every consent event published before it. A service that keeps a
record of consents (the melding service: consents and withdrawals; routing: withdrawals) stores the time of the
last heartbeat it applied (`consent_feed`, one row) in the transaction that applies it. Its record is current
while that heartbeat is younger than `consent_feed_max_lag_seconds` (`shared.consent_rules.feed_is_current`);
otherwise it asks the consent service, as it did for every melding before.

What this does not see: an event that a crash left in the consent service's outbox until its sweep (the lease,
12 s). That window was there before (a withdrawal reaches routing as an event either way), and what it lets
through is withdrawn and retracted as soon as the event arrives.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime, timedelta
from typing import Any

import aio_pika
import structlog
from sqlalchemy import Column, Executable, Integer, MetaData, ScalarSelect, Table, bindparam, case, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clock import now
from shared.consent_rules import feed_is_current
from shared.contracts.events import CONSENT_HEARTBEAT, ConsentHeartbeat
from shared.db import Database, UTCDateTime
from shared.messaging.broker import Broker
from shared.messaging.topology import EVENTS_EXCHANGE

log = structlog.get_logger(__name__)

FEED_ROW = 1


def consent_feed_table(metadata: MetaData) -> Table:
    return Table(
        "consent_feed",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("heard_at", UTCDateTime(), nullable=False, comment="the last consent.heartbeat applied"),
    )


async def record_heartbeat(session: AsyncSession, table: Table, at: datetime) -> None:
    """The feed was heard at `at` (the latest of a batch's heartbeats); an older one never moves it back."""
    assert session.bind is not None
    await session.execute(_heartbeat_upsert(table, session.bind.dialect.name), {"heard_at": at})


@functools.cache
def _heartbeat_upsert(table: Table, dialect: str) -> Executable:
    """Built once: it runs every second in every process that keeps a record, even when nothing else happens."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    row = insert(table).values(id=FEED_ROW, heard_at=bindparam("heard_at"))
    later = case((table.c.heard_at > row.excluded.heard_at, table.c.heard_at), else_=row.excluded.heard_at)
    return row.on_conflict_do_update(index_elements=[table.c.id], set_={"heard_at": later})


def heard_at_query(table: Table) -> ScalarSelect[Any]:
    """The last heartbeat's time as a scalar subquery (None before the first), to ride on another statement."""
    return select(table.c.heard_at).where(table.c.id == FEED_ROW).scalar_subquery()


class FeedClock:
    """Whether the record is current, for a worker that decides many times a second (routing's `prepare`):
    the stored time is read again only once the one it holds no longer says current. The stored time only
    moves forward, so one that says current is never wrong for being held."""

    def __init__(self, database: Database, table: Table, *, max_lag: timedelta) -> None:
        self.database, self.table, self.max_lag = database, table, max_lag
        self.heard_at: datetime | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> bool:
        if feed_is_current(self.heard_at, now(), max_lag=self.max_lag):
            return True
        if self.max_lag <= timedelta(0):
            return False
        async with self._lock:
            if not feed_is_current(self.heard_at, now(), max_lag=self.max_lag):
                async with self.database.unit_of_work() as uow:
                    self.heard_at = (await uow.session.execute(select(self.table.c.heard_at))).scalar_one_or_none()
        return feed_is_current(self.heard_at, now(), max_lag=self.max_lag)


class HeartbeatWorker:
    """The consent service's heartbeat: `consent.heartbeat` every `every_seconds`, on the exchange its outbox
    publishes to. Not through the outbox: it is about now, and one lost is replaced by the next. Each expires
    on the queues after a minute, so a consumer stopped for long does not find a pile of them; routing's
    dead-letter keeper drops the expired ones (they are dead-lettered like any expired message)."""

    def __init__(self, broker: Broker, *, every_seconds: float) -> None:
        self.broker, self.every_seconds = broker, every_seconds
        self.sent = 0

    async def run(self, stop: asyncio.Event) -> None:
        if self.every_seconds <= 0:
            return
        expires = max(60.0, 10 * self.every_seconds)
        while not stop.is_set():
            try:
                await self.beat(expires)
            except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError, TimeoutError) as exc:
                # The broker is away: the services behind it stop hearing us and ask over HTTP, as they should.
                log.warning("consent_heartbeat_not_sent", error_type=type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), self.every_seconds)
            except TimeoutError:
                pass

    async def beat(self, expires: float = 60.0) -> None:
        at = now()
        channel = await self.broker.channel()
        exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        message = aio_pika.Message(
            body=ConsentHeartbeat(at=at).model_dump_json().encode(),
            content_type="application/json",
            message_id=f"heartbeat:{at.isoformat()}",
            type=CONSENT_HEARTBEAT,
            expiration=expires,
        )
        await exchange.publish(message, routing_key=CONSENT_HEARTBEAT, timeout=5)
        self.sent += 1
