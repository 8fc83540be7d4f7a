"""The consent service's background work: the outbox relay (it consumes nothing)."""

from __future__ import annotations

from services.consent.adapters.orm import outbox
from shared.app import ServiceRuntime, Worker
from shared.messaging.outbox import OutboxRelay


def workers(runtime: ServiceRuntime) -> list[Worker]:
    settings = runtime.settings
    relay = OutboxRelay(
        runtime.database, runtime.broker, outbox, service=settings.service_name, metrics=runtime.metrics,
        batch_size=settings.outbox_batch_size, poll_seconds=settings.outbox_poll_seconds,
        publish_timeout=settings.publish_timeout_seconds, lease_seconds=settings.outbox_lease_seconds,
    )
    return [relay.run]
