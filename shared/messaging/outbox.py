"""The transactional outbox: messages are written in the caller's transaction and published by a relay.

A state change and the message announcing it commit together or not at all. The relay claims a batch
of unsent rows with a short lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several relays never
claim the same rows; SQLite serialises writers), publishes the batch with publisher confirms — all of
it in flight at once, each publish with a timeout — and marks a row sent only after its confirm. A row
whose publish failed, or whose relay died mid-way, is published again when its lease runs out:
delivery is at-least-once and every message carries a stable `message_id` for consumers to dedupe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Required, TypedDict, Unpack

import aio_pika
import structlog
from aio_pika.abc import AbstractExchange
from opentelemetry import trace
from pamqp.commands import Basic
from pydantic import BaseModel
from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    or_,
    select,
    update,
)

from shared.clock import now as utcnow
from shared.crypto import EncryptedText
from shared.db import Database, UnitOfWork, UTCDateTime
from shared.messaging.broker import Broker
from shared.observability import Metrics
from shared.tracing import continued, current_context

log = structlog.get_logger(__name__)

RETRY_UNCONFIRMED_AFTER = timedelta(seconds=1)


def outbox_table(metadata: MetaData) -> Table:
    """The `outbox` table, defined on a service's metadata (each service has its own)."""
    return Table(
        "outbox",
        metadata,
        Column("id", String(64), primary_key=True, comment="the AMQP message_id"),
        Column("exchange", String(100), nullable=False),
        Column("routing_key", String(200), nullable=False),
        Column("message_type", String(100), nullable=False),
        Column("body", EncryptedText("outbox.body"), nullable=False, comment="the exact JSON published, encrypted"),
        Column("correlation_id", String(128), nullable=True),
        Column("request_id", String(128), nullable=True, comment="sent as the x-request-id header"),
        Column("trace_context", Text, nullable=True, comment="JSON: the W3C trace context it was staged in"),
        Column("mandatory", Boolean, nullable=False, default=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("sent_at", UTCDateTime(), nullable=True),
        Column("locked_until", UTCDateTime(), nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Index("ix_outbox_pending", "sent_at", "created_at"),
    )


class OutboxMessage(TypedDict, total=False):
    """A message to stage (`Outbox.add`, `Outbox.row`): where it goes, what it says, how it is known."""

    exchange: Required[str]
    routing_key: Required[str]
    message_type: Required[str]
    body: Required[BaseModel | dict[str, Any] | str]
    correlation_id: str | None
    request_id: str | None
    mandatory: bool
    message_id: str | None


class Outbox:
    """The outbox as a use case sees it, bound to its unit of work: what is added is published after commit."""

    def __init__(self, uow: UnitOfWork, table: Table) -> None:
        self.uow, self.table = uow, table

    async def add(self, **message: Unpack[OutboxMessage]) -> str:
        """Stage a message in the unit of work's transaction; it is published after commit. Returns its id.

        `mandatory`: a message no queue takes is returned by the broker and retried, never silently dropped.
        """
        row = self.row(**message)
        await self.add_rows([row])
        return str(row["id"])

    async def add_rows(self, rows: list[dict[str, Any]]) -> None:
        """Stage several messages (`row()`s) in one statement."""
        if rows:
            await self.uow.session.execute(self.table.insert(), rows)
            self.uow.notify_after_commit()

    def row(
        self,
        *,
        exchange: str,
        routing_key: str,
        message_type: str,
        body: BaseModel | dict[str, Any] | str,
        correlation_id: str | None = None,
        request_id: str | None = None,
        mandatory: bool = True,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        """A message as the outbox keeps it, with the trace context it is staged in (for `add_rows`)."""
        if isinstance(body, str):
            text = body  # already the exact bytes to publish (a replayed dead letter)
        elif isinstance(body, BaseModel):
            text = json.dumps(body.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)
        else:
            text = json.dumps(body, separators=(",", ":"), sort_keys=True)
        traced = current_context()
        return {
            "id": message_id or str(uuid.uuid4()),
            "exchange": exchange,
            "routing_key": routing_key,
            "message_type": message_type,
            "body": text,
            "correlation_id": correlation_id,
            "request_id": request_id,
            "trace_context": json.dumps(traced) if traced else None,
            "mandatory": mandatory,
            "created_at": utcnow(),
            "sent_at": None,
            "locked_until": None,
            "attempts": 0,
        }

    async def stage_again(self, *, message_id: str, **message: Any) -> str:
        """Stage a message under an id the outbox may still hold: a replayed dead letter keeps its message_id
        (consumers dedupe by it), while its first publication's row waits for the pruning. That row is
        replaced."""
        await self.uow.session.execute(delete(self.table).where(self.table.c.id == message_id))
        return await self.add(message_id=message_id, **message)


async def report_backlog(database: Database, table: Table, metrics: Metrics) -> None:
    """Set the outbox gauges: how many messages wait for the broker, and how long the oldest has waited."""
    async with database.unit_of_work() as uow:
        count, oldest = (
            await uow.session.execute(
                select(func.count(), func.min(table.c.created_at)).where(table.c.sent_at.is_(None))
            )
        ).one()
    metrics.outbox_backlog.labels(metrics.service).set(count)
    age = (utcnow() - _aware(oldest)).total_seconds() if oldest is not None else 0.0
    metrics.outbox_oldest.labels(metrics.service).set(max(age, 0.0))


def _aware(moment: Any) -> Any:
    # An aggregate bypasses the column's type on SQLite: the naive UTC text comes back as it is stored.
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass(frozen=True)
class _Row:
    id: str
    exchange: str
    routing_key: str
    message_type: str
    body: str
    correlation_id: str | None
    request_id: str | None
    mandatory: bool
    created_at: Any
    trace_context: str | None = None


class OutboxRelay:
    """Publishes a service's outbox. Run one or several; `run()` ends after a last flush when stopped."""

    def __init__(
        self,
        database: Database,
        broker: Broker,
        table: Table,
        *,
        service: str,
        metrics: Metrics | None = None,
        batch_size: int = 100,
        poll_seconds: float = 1.0,
        publish_timeout: float = 10.0,
        lease_seconds: float = 12.0,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.database = database
        self.broker = broker
        self.table = table
        self.service = service
        self.metrics = metrics
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.publish_timeout = publish_timeout
        self.lease = timedelta(seconds=max(lease_seconds, publish_timeout * 2))
        self.tracer = tracer or trace.NoOpTracer()
        self.published = 0  # confirmed by the broker, by this relay
        self._wake = asyncio.Event()
        self._exchanges: dict[str, AbstractExchange] = {}
        database.on_commit(self._wake.set)  # a commit that staged a message wakes the relay at once

    async def run(self, stop: asyncio.Event) -> None:
        await self.broker.connect()
        delay = 0.5
        while not stop.is_set():
            try:
                claimed = await self.relay_once()
                delay = 0.5
            except Exception as exc:  # noqa: BLE001 - database or broker away: back off and go on
                log.warning("outbox_relay_error", error_type=type(exc).__name__, retry_in_s=delay)
                claimed = 0
                await _wait_any(stop, None, delay)
                delay = min(delay * 2, 10.0)
                continue
            if claimed < self.batch_size:
                await _wait_any(stop, self._wake, self.poll_seconds)
                self._wake.clear()
        # Stopping: publish what was committed up to now, once, so a clean shutdown leaves nothing behind.
        try:
            await asyncio.wait_for(self._flush(), timeout=self.publish_timeout)
        except Exception as exc:  # noqa: BLE001 - a last flush may fail for any reason: logged
            log.warning("outbox_final_flush_incomplete", error_type=type(exc).__name__)

    async def _flush(self) -> None:
        while await self.relay_once() == self.batch_size:
            pass

    async def relay_once(self) -> int:
        """Claim, publish and mark one batch. Returns how many rows were claimed."""
        if not self.broker.is_connected:
            return 0
        rows = await self._claim()
        if not rows:
            return 0
        results = await asyncio.gather(*(self._publish(row) for row in rows), return_exceptions=True)
        sent = [row.id for row, ok in zip(rows, results, strict=True) if ok is True]
        failed = len(rows) - len(sent)
        if sent:
            async with self.database.unit_of_work() as uow:
                await uow.session.execute(
                    update(self.table).where(self.table.c.id.in_(sent)).values(sent_at=utcnow(), locked_until=None)
                )
                await uow.commit()
        self.published += len(sent)
        if self.metrics is not None:
            self.metrics.outbox_published.labels(self.service).inc(len(sent))
            self.metrics.outbox_failed.labels(self.service).inc(failed)
        if failed:
            # Not confirmed (timed out, returned, nacked): offered again in a moment rather than when the lease
            # runs out. A late confirm makes it a duplicate publish, which consumers drop by message_id.
            retry = [row.id for row in rows if row.id not in set(sent)]
            with contextlib.suppress(Exception):  # the database is away: then the lease brings them back
                async with self.database.unit_of_work() as uow:
                    await uow.session.execute(
                        update(self.table)
                        .where(self.table.c.id.in_(retry))
                        .values(locked_until=utcnow() + RETRY_UNCONFIRMED_AFTER)
                    )
                    await uow.commit()
            log.warning("outbox_publish_unconfirmed", count=failed)
        return len(rows)

    async def _claim(self) -> list[_Row]:
        t = self.table
        now = utcnow()
        pending = (
            select(t.c.id)
            .where(t.c.sent_at.is_(None), or_(t.c.locked_until.is_(None), t.c.locked_until < now))
            .order_by(t.c.created_at)
            .limit(self.batch_size)
        )
        if not self.database.is_sqlite:
            pending = pending.with_for_update(skip_locked=True)
        async with self.database.unit_of_work() as uow:
            ids = list((await uow.session.execute(pending)).scalars())
            if not ids:
                return []
            await uow.session.execute(
                update(t).where(t.c.id.in_(ids)).values(locked_until=now + self.lease, attempts=t.c.attempts + 1)
            )
            result = await uow.session.execute(
                select(
                    t.c.id,
                    t.c.exchange,
                    t.c.routing_key,
                    t.c.message_type,
                    t.c.body,
                    t.c.correlation_id,
                    t.c.request_id,
                    t.c.mandatory,
                    t.c.created_at,
                    t.c.trace_context,
                )
                .where(t.c.id.in_(ids))
                .order_by(t.c.created_at)
            )
            rows = [_Row(**r._mapping) for r in result]
            await uow.commit()
        return rows

    async def _exchange(self, name: str) -> AbstractExchange:
        if name not in self._exchanges:
            channel = await self.broker.channel()
            # "" is the default exchange, which routes by queue name (used to replay a dead letter).
            self._exchanges[name] = (
                channel.default_exchange if name == "" else await channel.get_exchange(name, ensure=False)
            )
        return self._exchanges[name]

    async def _publish(self, row: _Row) -> bool:
        # The trace of the transaction that staged it goes on: a publish span, its context in the headers.
        staged_in = json.loads(row.trace_context) if row.trace_context else None
        with continued(self.tracer, f"publish {row.message_type}", staged_in, trace.SpanKind.PRODUCER):
            return await self._publish_traced(row)

    async def _publish_traced(self, row: _Row) -> bool:
        headers: dict[str, Any] = {"x-request-id": row.request_id} if row.request_id else {}
        headers.update(current_context() or {})
        message = aio_pika.Message(
            body=row.body.encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=row.id,
            correlation_id=row.correlation_id,
            type=row.message_type,
            timestamp=row.created_at,
            app_id=self.service,
            headers=headers or None,
        )
        exchange = await self._exchange(row.exchange)
        confirmation = await exchange.publish(
            message, routing_key=row.routing_key, mandatory=row.mandatory, timeout=self.publish_timeout
        )
        # An Ack is the broker's promise the message is stored; a returned (unroutable) message is not.
        return isinstance(confirmation, Basic.Ack)


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
