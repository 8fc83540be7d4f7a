"""The melding service's background work: its outbox relay, the consumer of routing's events and that of the
consent service's (its record of consents)."""

from __future__ import annotations

from functools import partial

from services.melding.adapters.orm import audit, idempotency_keys, outbox, processed_messages
from services.melding.config import MeldingSettings
from services.melding.service_layer import handlers, retention
from services.melding.service_layer.unit_of_work import MeldingUnitOfWork
from shared.app import ServiceRuntime, Worker, event_consumer, housekeeping, outbox_relay, retention_rules
from shared.contracts.events import CONSENT_HEARTBEAT, CONSENT_RECORDED, CONSENT_WITHDRAWN
from shared.contracts.melding import (
    DELIVERY_OVERDUE,
    DELIVERY_STATUS_CHANGED,
    MELDING_NOT_DELIVERED,
    MELDING_ROUTED,
    MELDING_UNROUTABLE,
)
from shared.contracts.subscriptions import MELDING_CONSENTS, MELDING_EVENTS
from shared.messaging.consumer import Batched, IdempotentConsumer
from shared.retention import Retention
from shared.settings import ServiceSettings

Runtime = ServiceRuntime[MeldingSettings, MeldingUnitOfWork]


def consumer(runtime: Runtime) -> IdempotentConsumer[MeldingUnitOfWork]:
    return event_consumer(
        runtime,
        processed_messages,
        name="melding",
        queue=MELDING_EVENTS,
        handlers={
            MELDING_ROUTED: Batched(handlers.on_meldingen_routed),
            MELDING_UNROUTABLE: handlers.on_melding_unroutable,
            MELDING_NOT_DELIVERED: handlers.on_melding_not_delivered,
            DELIVERY_OVERDUE: handlers.on_delivery_overdue,
            DELIVERY_STATUS_CHANGED: Batched(handlers.on_delivery_statuses_changed),
            # Left on this queue by a version that bound withdrawals here.
            CONSENT_WITHDRAWN: handlers.on_consent_withdrawn,
        },
        keeps_a_view=True,  # what became of the meldingen, for their senders
    )


def consents_consumer(runtime: Runtime) -> IdempotentConsumer[MeldingUnitOfWork]:
    """This service's record of consents (decision 6), on its own queue: never behind routing's events."""
    return event_consumer(
        runtime,
        processed_messages,
        name="melding-consents",
        queue=MELDING_CONSENTS,
        handlers={
            CONSENT_RECORDED: Batched(handlers.on_consents_recorded),
            CONSENT_WITHDRAWN: handlers.on_consent_withdrawn,
            CONSENT_HEARTBEAT: Batched(handlers.on_consent_heartbeats),
        },
    )


def rules(settings: ServiceSettings) -> list[Retention]:
    return retention_rules(
        settings, outbox=outbox, audit=audit, processed=processed_messages, idempotency=idempotency_keys
    )


def workers(runtime: Runtime) -> list[Worker]:
    return [
        outbox_relay(runtime, outbox).run,
        consents_consumer(runtime).run,
        consumer(runtime).run,
        housekeeping(
            runtime, rules(runtime.settings), purge=partial(retention.purge, runtime.unit_of_work, runtime.settings)
        ),
    ]
