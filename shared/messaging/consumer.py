"""Idempotent consumers: a message's effect and its `message_id` are committed together; ack after commit.

Redelivery (a crash before the ack, a broker failover) finds the id already recorded and only acks.
A handler that raises is nacked and requeued; the quorum queue counts deliveries and, past the
delivery limit, dead-letters the message (see `topology`), so a poison message never loops forever.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage
from opentelemetry import trace
from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, select
from sqlalchemy.exc import IntegrityError

from shared.clock import now
from shared.contracts.subscriptions import EventQueue
from shared.db import UnitOfWork, UTCDateTime, is_database_unavailable
from shared.errors import Unavailable
from shared.messaging.broker import Broker
from shared.messaging.topology import declare_event_queue
from shared.observability import Metrics
from shared.tracing import continued

log = structlog.get_logger(__name__)

MAX_DEPENDENCY_WAIT_S = 10.0  # the longest pause between two tries while a dependency is away


def processed_messages_table(metadata: MetaData) -> Table:
    return Table(
        "processed_messages",
        metadata,
        Column("consumer", String(64), nullable=False),
        Column("message_id", String(64), nullable=False),
        Column("processed_at", UTCDateTime(), nullable=False),
        PrimaryKeyConstraint("consumer", "message_id"),
    )


@dataclass(frozen=True)
class IncomingEvent:
    message_id: str
    type: str
    body: dict[str, Any]
    correlation_id: str | None = None
    request_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    prepared: Any = None  # what the type's `prepare` step found before the transaction
    redelivered: bool = False  # the broker delivered it before (to us or to a consumer that died)


U = TypeVar("U", bound=UnitOfWork)
# A handler applies an event in the service's own unit of work (its repositories, outbox and audit log).
Handler = Callable[[U, IncomingEvent], Awaitable[None]]
# Work that must not run inside the transaction (an HTTP call): its result reaches the handler as `prepared`.
Prepare = Callable[[IncomingEvent], Awaitable[Any]]


class PoisonMessage(Exception):
    """A message that can never be processed (no id, not JSON): it goes straight to the dead letters."""


class IdempotentConsumer(Generic[U]):
    """Consumes one service's queue on kansrijk.events (shared.contracts.subscriptions); each message
    is handled in a unit of work of the service's own kind, from `unit_of_work()`."""

    def __init__(
        self,
        unit_of_work: Callable[[], U],
        broker: Broker,
        table: Table,
        *,
        name: str,
        queue: EventQueue,
        handlers: dict[str, Handler[U]],
        prepare: dict[str, Prepare] | None = None,
        prefetch: int = 20,
        metrics: Metrics | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        # Every type the queue is bound to has its handler (more may be handled: leftovers of a retired binding).
        if missing := set(queue.event_types) - set(handlers):
            raise ValueError(f"consumer {name!r} has no handler for {', '.join(sorted(missing))} bound to {queue.name}")
        self.metrics = metrics
        self.tracer = tracer or trace.NoOpTracer()
        self.unit_of_work, self.broker, self.table = unit_of_work, broker, table
        self.name, self.queue = name, queue
        self.queue_name = queue.name
        self.handlers = handlers
        self.prepare = prepare or {}
        self.prefetch = prefetch
        self._in_flight: set[asyncio.Task[None]] = set()
        self._consuming = asyncio.Event()

    async def declare(self) -> None:
        connection = await self.broker.connect()
        channel = await connection.channel()
        await declare_event_queue(channel, self.queue)
        await channel.close()

    async def run(self, stop: asyncio.Event) -> None:
        connection = await self.broker.connect()
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        # A robust channel re-declares this queue and restarts the consumer after a reconnect.
        queue = await declare_event_queue(channel, self.queue)
        tag = await queue.consume(self._on_message)
        self._consuming.set()
        await stop.wait()
        await queue.cancel(tag)
        if self._in_flight:  # finish what was taken before stopping
            await asyncio.wait(self._in_flight, timeout=10)
        await channel.close()

    async def caught_up(self, *, timeout: float, poll: float = 0.05) -> bool:
        """Wait until this consumer runs and has applied everything on its queue (nothing ready, nothing
        in hand). False if that did not happen within `timeout` (the broker away, a message that waits
        for the database): the caller goes on and relies on what it does when this is behind."""
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            await asyncio.wait_for(self._consuming.wait(), timeout)
            connection = await self.broker.connect()
            channel = await connection.channel()
            try:
                quiet = 0  # twice in a row: a message on its way from the broker to a handler is in neither
                while asyncio.get_running_loop().time() < deadline:
                    queue = await channel.declare_queue(self.queue_name, passive=True)
                    quiet = quiet + 1 if not queue.declaration_result.message_count and not self._in_flight else 0
                    if quiet == 2:
                        return True
                    await asyncio.sleep(poll)
            finally:
                await channel.close()
        except (TimeoutError, aio_pika.exceptions.AMQPError, ConnectionError) as exc:
            log.warning("consumer_not_caught_up", consumer=self.name, error_type=type(exc).__name__)
            return False
        log.warning("consumer_not_caught_up", consumer=self.name, error_type="TimeoutError")
        return False

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self.handle(message)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            event = _decode(message)
        except PoisonMessage as exc:
            log.error("message_rejected", consumer=self.name, reason=str(exc), message_type=message.type)
            self._count_failure(exc)
            await message.reject(requeue=False)  # dead-lettered at once
            return
        delay = 0.5
        while True:
            try:
                handled = await self.process(event)
                break
            except Exception as exc:  # noqa: BLE001 - a dependency away, or a defect of the message: sorted below
                if not (isinstance(exc, Unavailable) or is_database_unavailable(exc)):
                    await self._give_back(message, exc)
                    return
                # The consent service or the database is away: not the message's fault, so it must not use
                # up the delivery limit. Wait it out here (the message stays unacked, nothing is lost).
                log.warning(
                    "message_waits_for_dependency",
                    consumer=self.name,
                    message_type=event.type,
                    error_type=type(exc).__name__,
                    retry_in_s=delay,
                )
                self._count_failure(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DEPENDENCY_WAIT_S)
        await message.ack()
        if not handled:
            log.info("message_duplicate_dropped", consumer=self.name, message_id=message.message_id)

    def _count_failure(self, exc: Exception) -> None:
        if self.metrics is not None:  # the exception's type only: its message may quote the message's content
            self.metrics.consumer_failures.labels(self.metrics.service, self.name, type(exc).__name__).inc()

    async def _give_back(self, message: AbstractIncomingMessage, exc: Exception) -> None:
        """A failure of the message itself: counted by the quorum queue, dead-lettered after DELIVERY_LIMIT."""
        self._count_failure(exc)
        count = (message.headers or {}).get("x-delivery-count") or 0
        attempt = int(count) if isinstance(count, int | str) else 0
        log.warning(
            "message_failed",
            consumer=self.name,
            message_type=message.type,
            message_id=message.message_id,
            error_type=type(exc).__name__,
            attempt=attempt + 1,
        )
        await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        await message.nack(requeue=True)

    async def process(self, event: IncomingEvent) -> bool:
        """Apply the event once. Returns False if it had been processed before."""
        handler = self.handlers.get(event.type)
        if handler is None:
            raise PoisonMessage(f"no handler for message type {event.type!r}")
        structlog.contextvars.bind_contextvars(request_id=event.request_id or event.correlation_id)
        try:
            with continued(self.tracer, f"consume {event.type}", event.headers, trace.SpanKind.CONSUMER):
                return await self._process(event, handler)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")

    async def _process(self, event: IncomingEvent, handler: Handler[U]) -> bool:
        if event.type in self.prepare:
            # A redelivery was most likely processed already: look before preparing (an HTTP call). A first
            # delivery skips the look; the insert below is what guarantees once, for every message.
            if event.redelivered and await self._already_processed(event):
                return False
            event = replace(event, prepared=await self.prepare[event.type](event))
        async with self.unit_of_work() as uow:
            try:
                # First, so that a concurrent duplicate waits on this row and then finds it taken.
                await uow.session.execute(
                    self.table.insert().values(consumer=self.name, message_id=event.message_id, processed_at=now())
                )
            except IntegrityError:
                return False
            await handler(uow, event)
            await uow.commit()
            return True

    async def _already_processed(self, event: IncomingEvent) -> bool:
        """A cheap look before any preparation; the insert in the transaction is what guarantees once."""
        async with self.unit_of_work() as uow:
            found = await uow.session.execute(
                select(self.table.c.message_id).where(
                    self.table.c.consumer == self.name, self.table.c.message_id == event.message_id
                )
            )
            return found.first() is not None


def _decode(message: AbstractIncomingMessage) -> IncomingEvent:
    if not message.message_id:
        raise PoisonMessage("message without message_id")
    try:
        body = json.loads(message.body)
    except ValueError as exc:
        raise PoisonMessage("body is not JSON") from exc
    if not isinstance(body, dict):
        raise PoisonMessage("body is not a JSON object")
    headers = dict(message.headers or {})
    request_id = headers.get("x-request-id")
    return IncomingEvent(
        message_id=message.message_id,
        type=message.type or message.routing_key or "",
        body=body,
        correlation_id=message.correlation_id,
        request_id=request_id.decode() if isinstance(request_id, bytes) else str(request_id) if request_id else None,
        headers=headers,
        redelivered=bool(message.redelivered),
    )
