"""The routing service's background work: relay, event consumer, dead-letter keeper, and the reroute loop."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

import structlog
from aio_pika.abc import AbstractIncomingMessage

from services.routing.adapters.orm import audit, consent_feed, outbox, processed_messages
from services.routing.adapters.queues import declare_organisation_queue
from services.routing.config import RoutingSettings
from services.routing.domain.commands import KeepDeadLetter
from services.routing.service_layer import events, retention
from services.routing.service_layer.unit_of_work import RoutingUnitOfWork
from shared.app import ServiceRuntime, Worker, event_consumer, housekeeping, outbox_relay, retention_rules
from shared.consent_feed import FeedClock
from shared.contracts.events import CONSENT_HEARTBEAT, CONSENT_WITHDRAWN
from shared.contracts.melding import MELDING_ACCEPTED, MELDING_CANCELLED
from shared.contracts.subscriptions import ROUTING_EVENTS, ROUTING_WITHDRAWALS
from shared.messaging.consumer import Batched, IdempotentConsumer
from shared.messaging.topology import DEAD_LETTER_QUEUE
from shared.retention import Retention
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)


Runtime = ServiceRuntime[RoutingSettings, RoutingUnitOfWork]


def consumer(runtime: Runtime) -> IdempotentConsumer[RoutingUnitOfWork]:
    """Meldingen to route (and withdrawals left on this queue by a version that bound them here)."""
    return event_consumer(
        runtime,
        processed_messages,
        name="routing",
        queue=ROUTING_EVENTS,
        handlers={
            MELDING_ACCEPTED: Batched(events.on_meldingen_accepted),
            CONSENT_WITHDRAWN: events.on_consent_withdrawn,
        },
        prepare={
            MELDING_ACCEPTED: partial(
                events.prepare_accepted,
                runtime.consent,
                recheck_after=timedelta(seconds=runtime.settings.consent_recheck_after_seconds),
                feed_is_current=FeedClock(
                    runtime.database,
                    consent_feed,
                    max_lag=timedelta(seconds=runtime.settings.consent_feed_max_lag_seconds),
                ).current,
            )
        },
    )


def withdrawals_consumer(runtime: Runtime) -> IdempotentConsumer[RoutingUnitOfWork]:
    """Withdrawals, on their own queue: what routing's consent re-check relies on is never behind meldingen."""
    return event_consumer(
        runtime,
        processed_messages,
        name="routing-withdrawals",
        queue=ROUTING_WITHDRAWALS,
        handlers={
            CONSENT_WITHDRAWN: events.on_consent_withdrawn,
            MELDING_CANCELLED: events.on_melding_cancelled,
            CONSENT_HEARTBEAT: Batched(events.on_consent_heartbeats),
        },
    )


def consumers(runtime: Runtime) -> list[Worker]:
    """Both consumers; meldingen start only once the withdrawals waiting on the broker are applied."""
    withdrawals, meldingen = withdrawals_consumer(runtime), consumer(runtime)

    async def route_meldingen(stop: asyncio.Event) -> None:
        # Bounded: with the broker or database away, meldingen that wait long enough are checked with
        # the consent service anyway (consent_recheck_after_seconds).
        recheck_after = runtime.settings.consent_recheck_after_seconds
        if recheck_after > 0:  # 0: every melding is checked with the consent service, nothing to wait for
            await withdrawals.caught_up(timeout=recheck_after)
        await meldingen.run(stop)

    return [withdrawals.run, route_meldingen]


def workers(runtime: Runtime) -> list[Worker]:
    declared: set[str] = set()

    async def ensure_organisation_queues() -> None:
        """Every active organisation's queue exists (again, after a PUT made while the broker was away)."""
        async with runtime.unit_of_work() as uow:
            org_ids = await uow.directory.active_org_ids()
        for org_id in org_ids:
            if org_id not in declared and await declare_organisation_queue(runtime.broker, org_id):
                declared.add(org_id)

    async def keep_dead_letters(stop: asyncio.Event) -> None:
        connection = await runtime.broker.connect()
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=10)
        queue = await channel.declare_queue(DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})

        async def on_message(message: AbstractIncomingMessage) -> None:
            if message.type == CONSENT_HEARTBEAT:
                # A heartbeat that expired unheard (its consumer was down): nothing was lost, nothing to replay.
                await message.ack()
                return
            try:
                await events.store_dead_letter(runtime.unit_of_work, dead_letter(message))
            except Exception as exc:  # noqa: BLE001 - the database is away: keep it on the queue, without a hot loop
                log.error("dead_letter_not_stored", error_type=type(exc).__name__)
                await asyncio.sleep(1.0)
                await message.nack(requeue=True)
                return
            await message.ack()

        tag = await queue.consume(on_message)
        await stop.wait()
        await queue.cancel(tag)
        await channel.close()

    async def reroute_loop(stop: asyncio.Event) -> None:
        interval = runtime.settings.reroute_interval_seconds
        await runtime.broker.connect()
        while not stop.is_set():
            try:
                await ensure_organisation_queues()
                routed = await events.reroute_waiting(runtime.unit_of_work, runtime.consent)
                if routed:
                    log.info("waiting_meldingen_routed", count=routed)
            except Exception as exc:  # noqa: BLE001 - consent service or database away: try again next round
                log.warning("reroute_failed", error_type=type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass

    async def overdue_loop(stop: asyncio.Event) -> None:
        """Deliveries past their contact deadline become overdue, with one reminder each. On the database:
        it survives restarts, and several replicas running it remind once (see routing.mark_overdue)."""
        while not stop.is_set():
            try:
                marked = await events.mark_overdue_deliveries(runtime.unit_of_work)
                if marked:
                    log.info("deliveries_overdue", count=marked)
            except Exception as exc:  # noqa: BLE001 - the database is away: try again next round
                log.warning("overdue_check_failed", error_type=type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), timeout=runtime.settings.overdue_interval_seconds)
            except TimeoutError:
                pass

    return [
        outbox_relay(runtime, outbox).run,
        *consumers(runtime),
        keep_dead_letters,
        reroute_loop,
        overdue_loop,
        housekeeping(
            runtime, rules(runtime.settings), purge=partial(retention.purge, runtime.unit_of_work, runtime.settings)
        ),
    ]


def dead_letter(message: AbstractIncomingMessage) -> KeepDeadLetter:
    """The edge: a message from the dead-letter queue becomes the service layer's command."""
    return KeepDeadLetter.from_headers(
        message.headers or {},
        message_id=message.message_id,
        message_type=message.type,
        correlation_id=message.correlation_id,
        body=message.body,
    )


def rules(settings: ServiceSettings) -> list[Retention]:
    return retention_rules(settings, outbox=outbox, audit=audit, processed=processed_messages)
