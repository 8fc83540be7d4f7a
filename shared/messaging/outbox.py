"""The transactional outbox: messages are written in the caller's transaction and published by a relay.

A state change and the message announcing it commit together or not at all. The hand-off: a row is
staged with a lease (`locked_until`) held by the relay of the process that writes it, and after COMMIT
the unit of work hands exactly those rows to that relay in memory — no claim query — which publishes
them with publisher confirms, all in flight at once, each with a timeout, and marks the confirmed ones
sent with one statement per batch. The sweep publishes what a crash (or a failed publish) left: one
statement claims unsent rows whose lease ran out (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
relays never claim the same rows; SQLite serialises writers) and returns them. It runs when the relay
starts and then once per sweep period (the lease, by default), not at every commit: an outbox the
hand-off keeps empty is not polled. A row staged while no relay of its process takes hand-offs (the
broker away, `kansrijk serve` without a relay) has no lease and waits for the sweep. Delivery is
at-least-once and every message carries a stable `message_id` for consumers to dedupe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
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
from shared.db import Database, EncryptedText, UnitOfWork, UTCDateTime
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
        """Stage several messages (`row()`s) in one statement. If this process's relay takes hand-offs, they
        are staged under its lease and handed to it after COMMIT; otherwise the sweep finds them."""
        if not rows:
            return
        receiver = self.uow.database.hand_off(self.table.name)
        until = receiver.lease_until() if receiver is not None else None
        if until is not None:
            for row in rows:
                row["locked_until"], row["attempts"] = until, 1
        await self.uow.session.execute(self.table.insert(), rows)
        if receiver is not None and until is not None:
            self.uow.hand_off_after_commit(receiver, rows)

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
        staged_in: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A message as the outbox keeps it, with the trace context it is staged in (for `add_rows`):
        `staged_in`, for a message made later than its use case ran (numbered at commit), else the current one."""
        if isinstance(body, str):
            text = body  # already the exact bytes to publish (a replayed dead letter)
        elif isinstance(body, BaseModel):
            text = json.dumps(body.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)
        else:
            text = json.dumps(body, separators=(",", ":"), sort_keys=True)
        traced = staged_in or current_context()
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
    locked_until: Any = None


_COLUMNS = (
    "id",
    "exchange",
    "routing_key",
    "message_type",
    "body",
    "correlation_id",
    "request_id",
    "mandatory",
    "created_at",
    "trace_context",
)

# Rows handed off and not yet published, at most: beyond it (the broker slower than the commits) new rows are
# staged without a lease and left to the sweep, so the relay's memory stays bounded.
MAX_HANDED = 10_000


class OutboxRelay:
    """Publishes a service's outbox: what its own process commits (the hand-off), and, with `sweep`, what is
    left unsent (a crash, a failed publish, another process). `run()` ends after a last flush when stopped.

    `kill_after_commit` is for the fault suite only (shared.settings refuses it outside development): the
    process kills itself (SIGKILL) right after the first COMMIT that staged a message, before publishing.
    """

    def __init__(
        self,
        database: Database,
        broker: Broker,
        table: Table,
        *,
        service: str,
        metrics: Metrics | None = None,
        batch_size: int = 100,
        sweep_seconds: float | None = None,
        publish_timeout: float = 10.0,
        lease_seconds: float = 12.0,
        sweep: bool = True,
        kill_after_commit: bool = False,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.database = database
        self.broker = broker
        self.table = table
        self.service = service
        self.metrics = metrics
        self.batch_size = batch_size
        self.publish_timeout = publish_timeout
        self.lease = timedelta(seconds=max(lease_seconds, publish_timeout * 2))
        self.sweep_seconds = self.lease.total_seconds() if sweep_seconds is None else sweep_seconds
        self.sweep = sweep
        self.kill_after_commit = kill_after_commit
        self.tracer = tracer or trace.NoOpTracer()
        self.published = 0  # confirmed by the broker, by this relay
        self.sweeps = 0  # sweep statements run
        self._handed: list[_Row] = []
        self._taking = False
        self._sweep_at = 0.0  # time.monotonic() of the next sweep: at once when started
        self._wake = asyncio.Event()
        self._exchanges: dict[str, AbstractExchange] = {}

    # -- the hand-off (shared.db.HandOff) ------------------------------------------------------------------

    def lease_until(self) -> datetime | None:
        if not self._taking or not self.broker.is_connected or len(self._handed) >= MAX_HANDED:
            return None
        return utcnow() + self.lease

    def take(self, rows: list[dict[str, Any]]) -> None:
        if self.kill_after_commit:
            os.kill(os.getpid(), signal.SIGKILL)
        self._handed.extend(
            _Row(**{name: row[name] for name in _COLUMNS}, locked_until=row["locked_until"]) for row in rows
        )
        self._wake.set()

    # -- running -------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        if not await _connected(self.broker, stop):
            return  # stopped before the broker was there: nothing was handed off, the sweeps find the rest
        self.database.hand_off_to(self.table.name, self)
        self._taking = True
        delay = 0.5
        try:
            while not stop.is_set():
                try:
                    busy = await self.relay_once()
                    delay = 0.5
                except Exception as exc:  # noqa: BLE001 - database or broker away: back off and go on
                    log.warning("outbox_relay_error", error_type=type(exc).__name__, retry_in_s=delay)
                    await _wait_any(stop, None, delay)
                    delay = min(delay * 2, 10.0)
                    continue
                if not busy:
                    wait = self._sweep_at - time.monotonic() if self.sweep else 3600.0
                    await _wait_any(stop, self._wake, max(wait, 0.0))
                    self._wake.clear()
        finally:
            self._taking = False
            self.database.hand_off_to(self.table.name, None)
        # Stopping: publish what was committed up to now, once, so a clean shutdown leaves nothing behind.
        try:
            await asyncio.wait_for(self._flush(), timeout=self.publish_timeout)
        except Exception as exc:  # noqa: BLE001 - a last flush may fail for any reason: logged
            log.warning("outbox_final_flush_incomplete", error_type=type(exc).__name__)

    async def _flush(self) -> None:
        while self._handed:
            await self._publish_handed()
        while self.sweep and await self.sweep_once() == self.batch_size:
            pass

    async def relay_once(self) -> bool:
        """Publish what was handed off, and sweep if it is time. True if there is more to do at once."""
        if self._handed:
            await self._publish_handed()
        if self.sweep and time.monotonic() >= self._sweep_at:
            claimed = await self.sweep_once()
            if claimed == self.batch_size:
                self._sweep_at = time.monotonic()  # more is left (a backlog: the broker was away): sweep again at once
                return True
        return bool(self._handed)

    async def _publish_handed(self) -> None:
        rows, self._handed = self._handed[: self.batch_size], self._handed[self.batch_size :]
        if not self.broker.is_connected:
            return  # the lease runs out and the sweep publishes them (this process's or another's)
        # A row whose lease is about to run out may be swept by another relay: left to the sweeps.
        margin = utcnow() + timedelta(seconds=self.publish_timeout)
        await self._publish_batch([row for row in rows if row.locked_until is None or row.locked_until > margin])

    async def sweep_once(self) -> int:
        """Claim unsent rows whose lease ran out (one statement), publish and mark them. Returns how many."""
        self._sweep_at = time.monotonic() + self.sweep_seconds
        if not self.broker.is_connected:
            return 0
        t = self.table
        now = utcnow()
        due = (
            select(t.c.id)
            .where(t.c.sent_at.is_(None), or_(t.c.locked_until.is_(None), t.c.locked_until < now))
            .order_by(t.c.created_at)
            .limit(self.batch_size)
        )
        if not self.database.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        claim = (
            update(t)
            .where(t.c.id.in_(due))
            .values(locked_until=now + self.lease, attempts=t.c.attempts + 1)
            .returning(*(t.c[name] for name in _COLUMNS))
        )
        async with self.database.unit_of_work() as uow:
            rows = [_Row(**r._mapping) for r in await uow.session.execute(claim)]
            await uow.commit()
        self.sweeps += 1
        rows.sort(key=lambda row: row.created_at)
        await self._publish_batch(rows)
        return len(rows)

    async def _publish_batch(self, rows: list[_Row]) -> None:
        if not rows:
            return
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
            self._sweep_at = min(self._sweep_at, time.monotonic() + RETRY_UNCONFIRMED_AFTER.total_seconds())
            log.warning("outbox_publish_unconfirmed", count=failed)

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


async def _connected(broker: Broker, stop: asyncio.Event) -> bool:
    """Connect (the broker retries with backoff), unless told to stop first. True once connected."""
    connecting, stopping = asyncio.ensure_future(broker.connect()), asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
    if connecting.cancelled():
        return False
    connecting.result()  # raises what connecting raised, as before
    return True


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
