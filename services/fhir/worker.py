"""The FHIR facade's background work: the consumer of `melding.changed`, the notifier that takes what it
staged to the subscribers' endpoints, the outbox relay and housekeeping (it holds no personal data)."""

from __future__ import annotations

from datetime import timedelta

from services.fhir.adapters.orm import audit, notifications, outbox, processed_messages
from services.fhir.config import FhirSettings
from services.fhir.service_layer import handlers
from services.fhir.service_layer.notifier import Notifier
from services.fhir.service_layer.unit_of_work import FhirUnitOfWork
from shared.app import ServiceRuntime, Worker, event_consumer, housekeeping, outbox_relay, retention_rules
from shared.contracts.melding import MELDING_CHANGED
from shared.contracts.subscriptions import FHIR_EVENTS
from shared.messaging.consumer import Batched, IdempotentConsumer
from shared.retention import Retention
from shared.settings import ServiceSettings

Runtime = ServiceRuntime[FhirSettings, FhirUnitOfWork]


def rules(settings: ServiceSettings) -> list[Retention]:
    sent = Retention(notifications, notifications.c.sent_at, timedelta(hours=settings.outbox_retention_hours))
    return [*retention_rules(settings, outbox=outbox, audit=audit, processed=processed_messages), sent]


def consumer(runtime: Runtime, notifier: Notifier | None = None) -> IdempotentConsumer[FhirUnitOfWork]:
    """`melding.changed` into the notifications due; each commit wakes the notifier, which otherwise looks only
    every KANSRIJK_NOTIFICATION_POLL_SECONDS (for retries and heartbeats)."""
    return event_consumer(
        runtime,
        processed_messages,
        name="fhir",
        queue=FHIR_EVENTS,
        handlers={MELDING_CHANGED: Batched(handlers.on_meldingen_changed)},
        after_commit=notifier.wake if notifier is not None else None,
        keeps_a_view=True,
    )


def workers(runtime: Runtime) -> list[Worker]:
    notifier = Notifier(runtime.unit_of_work, runtime.settings)
    return [
        outbox_relay(runtime, outbox).run,
        consumer(runtime, notifier).run,
        notifier.run,
        housekeeping(runtime, rules(runtime.settings)),
    ]
