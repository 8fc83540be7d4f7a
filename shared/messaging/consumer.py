"""Idempotent consumers that take a batch: the effects of a batch of messages and their `message_id`s are
committed in one transaction; the batch is acked after the commit.

A consumer takes what its prefetch holds — up to `batch_size` messages, waiting `batch_wait` seconds at
most for more — and applies them in ONE unit of work: one statement records the batch's ids
(`INSERT … ON CONFLICT DO NOTHING RETURNING`), the handlers run, in arrival order, for the ids that were
new, one commit, then one ack (`ack(multiple=True)` on the batch's last delivery). Redelivery (a crash
before the ack, a broker failover) finds the ids already recorded and only acks. A batch of one is the
same code.

Each message is decoded and validated once, here at the edge, into its contract's typed model
(`IncomingEvent.message`); one that cannot be (no id, not JSON, not its contract) is rejected at once and
dead-lettered. While a dependency is away (the database, the consent service) the whole batch waits,
unacked, and is tried again. Any other failure of a batch is retried one message per transaction, so the
good messages commit and only the one that fails is given back: the quorum queue counts its deliveries
and, past the delivery limit, dead-letters it (see `topology`), so a poison message never loops forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Generic, TypeVar

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage
from opentelemetry import trace
from pydantic import ValidationError
from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, select

from shared.clock import now
from shared.contracts.melding import STORED
from shared.contracts.subscriptions import EVENT_CONTRACTS, UNRECORDED_TYPES, EventQueue
from shared.db import UnitOfWork, UTCDateTime, insert_new, is_database_unavailable
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


M = TypeVar("M")


@dataclass(frozen=True)
class IncomingEvent(Generic[M]):
    """A message as a handler gets it: `message` is its body decoded and validated once, at the edge, into
    its type's contract (a pydantic model of shared.contracts)."""

    message_id: str
    type: str
    message: M
    correlation_id: str | None = None
    request_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    prepared: Any = None  # what the type's `prepare` step found before the transaction
    redelivered: bool = False  # the broker delivered it before (to us or to a consumer that died)
    # The message's consume span, current inside: what a batch handler stages for this message, it stages in it.
    traced: Callable[[], AbstractContextManager[None]] = field(default=nullcontext, compare=False, repr=False)


U = TypeVar("U", bound=UnitOfWork)
# A handler applies an event in the service's own unit of work (its repositories, outbox and audit log).
Handler = Callable[[U, IncomingEvent[Any]], Awaitable[None]]


@dataclass(frozen=True)
class Batched(Generic[U]):
    """A handler that applies the events of its type set-based: the consumer hands it each run of consecutive
    events of that type in a batch at once (a batch of one is a run of one). It enters `event.traced()`
    around what it does for each event, so that what it stages carries that message's trace."""

    handle: Callable[[U, list[IncomingEvent[Any]]], Awaitable[None]]


Handlers = dict[str, Handler[U] | Batched[U]]
# Work that must not run inside the transaction (an HTTP call): its result reaches the handler as `prepared`.
Prepare = Callable[[IncomingEvent[Any]], Awaitable[Any]]
# A message type's decoder: the JSON body to the typed message (raises ValueError, e.g. ValidationError).
Decode = Callable[[dict[str, Any]], Any]


def contract_decoders(event_types: Sequence[str] | set[str]) -> dict[str, Decode]:
    """Each type's contract, validated as a stored event (rules relative to today held when it was made)."""
    return {t: partial(EVENT_CONTRACTS[t].model_validate, context=STORED) for t in event_types if t in EVENT_CONTRACTS}


class PoisonMessage(Exception):
    """A message that can never be processed (no id, not JSON, not its contract): straight to the dead letters."""


@dataclass(frozen=True)
class _Delivery:
    message: AbstractIncomingMessage
    event: IncomingEvent[Any]


class IdempotentConsumer(Generic[U]):
    """Consumes one service's queue on kansrijk.events (shared.contracts.subscriptions) in batches; each
    batch is applied in one unit of work of the service's own kind, from `unit_of_work()`."""

    def __init__(
        self,
        unit_of_work: Callable[[], U],
        broker: Broker,
        table: Table,
        *,
        name: str,
        queue: EventQueue,
        handlers: Handlers[U],
        prepare: dict[str, Prepare] | None = None,
        contracts: Mapping[str, Decode] | None = None,
        batch_size: int = 50,
        batch_wait: float = 0.005,
        metrics: Metrics | None = None,
        tracer: trace.Tracer | None = None,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        """`after_commit` is called after each transaction that applied a message (e.g. to wake a worker that
        acts on what the handlers stored, instead of polling for it)."""
        # Every type the queue is bound to has its handler (more may be handled: leftovers of a retired binding).
        if missing := set(queue.event_types) - set(handlers):
            raise ValueError(f"consumer {name!r} has no handler for {', '.join(sorted(missing))} bound to {queue.name}")
        self.contracts = dict(contracts) if contracts is not None else contract_decoders(set(handlers))
        if missing := set(handlers) - set(self.contracts):
            raise ValueError(f"consumer {name!r} has no contract to decode {', '.join(sorted(missing))}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.metrics = metrics
        self.tracer = tracer or trace.NoOpTracer()
        self.unit_of_work, self.broker, self.table = unit_of_work, broker, table
        self.name, self.queue = name, queue
        self.queue_name = queue.name
        self.handlers = handlers
        self.prepare = prepare or {}
        self.batch_size, self.batch_wait = batch_size, batch_wait
        # Twice a batch: the next batch is on its way from the broker while this one is applied.
        self.prefetch = 2 * batch_size
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._held = 0  # taken from the broker and not yet acked or given back
        self._consuming = asyncio.Event()
        self.after_commit = after_commit

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
        taker = asyncio.create_task(self._take_batches())
        try:
            tag = await queue.consume(self._on_message)
            self._consuming.set()
            await stop.wait()
            await queue.cancel(tag)
            try:  # finish what was taken before stopping; what is left unacked the broker delivers again
                await asyncio.wait_for(self._inbox.join(), timeout=10)
            except TimeoutError:
                log.warning("consumer_stopped_with_messages_in_hand", consumer=self.name, held=self._held)
        finally:
            taker.cancel()
            await asyncio.gather(taker, return_exceptions=True)
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
                    quiet = quiet + 1 if not queue.declaration_result.message_count and not self._held else 0
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
        self._held += 1
        self._inbox.put_nowait(message)

    async def _take_batches(self) -> None:
        """One batch at a time, in arrival order: what the prefetch holds, up to `batch_size`."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._inbox.get()]
            deadline = loop.time() + self.batch_wait
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._inbox.get_nowait())
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(self._inbox.get(), remaining))
                    except TimeoutError:
                        break
            try:
                await self.handle(batch)
            except Exception as exc:  # noqa: BLE001 - the loop must go on; what is unacked comes back
                log.error("consumer_batch_failed", consumer=self.name, size=len(batch), error_type=type(exc).__name__)
            finally:
                self._held -= len(batch)
                for _ in batch:
                    self._inbox.task_done()

    async def handle(self, messages: Sequence[AbstractIncomingMessage]) -> None:
        """Decode, apply and settle a batch (each message acked, given back or rejected)."""
        deliveries: list[_Delivery] = []
        for message in messages:
            try:
                deliveries.append(_Delivery(message, self._decode(message)))
            except PoisonMessage as exc:
                log.error("message_rejected", consumer=self.name, reason=str(exc), message_type=message.type)
                self._count_failure(exc)
                try:
                    await message.reject(requeue=False)  # dead-lettered at once
                except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as reject_failed:
                    log.warning("message_not_rejected", consumer=self.name, error_type=type(reject_failed).__name__)
        if deliveries:
            await self._apply(deliveries)

    async def _apply(self, deliveries: list[_Delivery]) -> None:
        try:
            applied = await self._waiting_out_dependencies([d.event for d in deliveries])
        except Exception as exc:  # noqa: BLE001 - a defect of a message: which one is found one by one
            if len(deliveries) == 1:
                await self._give_back(deliveries[0].message, exc)
                return
            self._count_failure(exc)
            log.warning(
                "consumer_batch_retried_one_by_one",
                consumer=self.name,
                size=len(deliveries),
                error_type=type(exc).__name__,
            )
            for delivery in deliveries:
                await self._apply([delivery])
            return
        try:  # every delivery up to the last one: those before it in this batch were settled in order
            await deliveries[-1].message.ack(multiple=True)
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            # The channel went (a failover): the broker delivers them again, and their ids drop them.
            log.warning("batch_not_acked", consumer=self.name, size=len(deliveries), error_type=type(exc).__name__)
        for delivery in deliveries:
            if delivery.event.message_id not in applied:
                log.info("message_duplicate_dropped", consumer=self.name, message_id=delivery.event.message_id)

    async def _waiting_out_dependencies(self, events: list[IncomingEvent[Any]]) -> set[str]:
        delay = 0.5
        while True:
            try:
                return await self.process(events)
            except Exception as exc:
                if not (isinstance(exc, Unavailable) or is_database_unavailable(exc)):
                    raise
                # The consent service or the database is away: not the messages' fault, so it must not use
                # up their delivery limit. Wait it out here (they stay unacked, nothing is lost).
                log.warning(
                    "message_waits_for_dependency",
                    consumer=self.name,
                    batch_size=len(events),
                    error_type=type(exc).__name__,
                    retry_in_s=delay,
                )
                self._count_failure(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DEPENDENCY_WAIT_S)

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
        try:
            await message.nack(requeue=True)
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as nack_failed:
            # The channel went: the broker gives the message back by itself. The batch's others go on.
            log.warning("message_not_given_back", consumer=self.name, error_type=type(nack_failed).__name__)

    async def process(self, events: Sequence[IncomingEvent[Any]]) -> set[str]:
        """Apply each event once, all in one transaction. Returns the ids applied now (the others had
        been processed before, or came twice in this batch)."""
        events = await self._prepared(events)
        unique: dict[str, IncomingEvent[Any]] = {}
        for event in events:
            unique.setdefault(event.message_id, event)  # the first of two copies in one batch is applied
        if not unique:
            return set()
        async with self.unit_of_work() as uow:
            at = now()
            # First, so that a concurrent duplicate waits on these rows and then finds them taken. A type that
            # changes nothing when applied again (UNRECORDED_TYPES: heartbeats) is applied without its id kept.
            recorded = [message_id for message_id, event in unique.items() if event.type not in UNRECORDED_TYPES]
            new = set(unique) - set(recorded)
            if recorded:
                new |= await insert_new(
                    uow.session,
                    self.table,
                    [{"consumer": self.name, "message_id": message_id, "processed_at": at} for message_id in recorded],
                    returning=self.table.c.message_id,
                )
            for run in _runs([event for event in unique.values() if event.message_id in new]):
                await self._handle_run(uow, run)
            if new:
                await uow.commit()
        if new and self.after_commit is not None:
            self.after_commit()
        return new

    async def _handle_run(self, uow: U, run: list[IncomingEvent[Any]]) -> None:
        """Apply consecutive events of one type: all at once by a `Batched` handler, else one after another."""
        handler = self.handlers[run[0].type]  # _decode let only handled types through
        run = [replace(event, traced=partial(self._span, event)) for event in run]
        if isinstance(handler, Batched):
            await handler.handle(uow, run)
            return
        for event in run:
            with event.traced():
                await handler(uow, event)

    @contextlib.contextmanager
    def _span(self, event: IncomingEvent[Any]) -> Iterator[None]:
        """The event's consume span (a child of its producer's), with its request id on the log lines."""
        structlog.contextvars.bind_contextvars(request_id=event.request_id or event.correlation_id)
        try:
            with continued(self.tracer, f"consume {event.type}", event.headers, trace.SpanKind.CONSUMER):
                yield
        finally:
            structlog.contextvars.unbind_contextvars("request_id")

    async def _prepared(self, events: Sequence[IncomingEvent[Any]]) -> list[IncomingEvent[Any]]:
        """Run the types' `prepare` steps (outside the transaction, side by side). A redelivery was most
        likely processed already: one look for all of them first, so they skip the preparation (an HTTP
        call) and drop out. A first delivery skips the look; the insert in the transaction is what
        guarantees once, for every message."""
        to_prepare = [e for e in events if e.type in self.prepare]
        if not to_prepare:
            return list(events)
        looked_up = {e.message_id for e in to_prepare if e.redelivered}
        done = await self._already_processed(looked_up) if looked_up else set()
        results = await asyncio.gather(*(self.prepare[e.type](e) for e in to_prepare if e.message_id not in done))
        prepared = iter(results)
        kept: list[IncomingEvent[Any]] = []
        for event in events:
            if event.type not in self.prepare:
                kept.append(event)
            elif event.message_id not in done:
                kept.append(replace(event, prepared=next(prepared)))
        return kept

    async def _already_processed(self, message_ids: set[str]) -> set[str]:
        """A cheap look before any preparation; the insert in the transaction is what guarantees once."""
        async with self.unit_of_work() as uow:
            found = await uow.session.execute(
                select(self.table.c.message_id).where(
                    self.table.c.consumer == self.name, self.table.c.message_id.in_(message_ids)
                )
            )
            return set(found.scalars())

    def _decode(self, message: AbstractIncomingMessage) -> IncomingEvent[Any]:
        if not message.message_id:
            raise PoisonMessage("message without message_id")
        message_type = message.type or message.routing_key or ""
        decode = self.contracts.get(message_type)
        if decode is None or message_type not in self.handlers:
            raise PoisonMessage(f"no handler for message type {message_type!r}")
        try:
            body = json.loads(message.body)
        except ValueError as exc:
            raise PoisonMessage("body is not JSON") from exc
        if not isinstance(body, dict):
            raise PoisonMessage("body is not a JSON object")
        try:
            decoded = decode(body)
        except (ValidationError, ValueError, TypeError) as exc:
            # The error's type only: a validation error quotes the values, which may be personal data.
            raise PoisonMessage(f"body is not a valid {message_type} ({type(exc).__name__})") from None
        headers = dict(message.headers or {})
        request_id = headers.get("x-request-id")
        if isinstance(request_id, bytes):
            request_id = request_id.decode()
        return IncomingEvent(
            message_id=message.message_id,
            type=message_type,
            message=decoded,
            correlation_id=message.correlation_id,
            request_id=str(request_id) if request_id else None,
            headers=headers,
            redelivered=bool(message.redelivered),
        )


def _runs(events: list[IncomingEvent[Any]]) -> list[list[IncomingEvent[Any]]]:
    """The events in arrival order, cut into runs of one type (an event is never applied before one that
    came before it)."""
    runs: list[list[IncomingEvent[Any]]] = []
    for event in events:
        if runs and runs[-1][0].type == event.type:
            runs[-1].append(event)
        else:
            runs.append([event])
    return runs
