"""The consent service's background work: the outbox relay (it consumes nothing), the heartbeat behind its
events (shared.consent_feed) and housekeeping."""

from __future__ import annotations

from functools import partial

from services.consent.adapters.orm import audit, idempotency_keys, outbox
from services.consent.config import ConsentSettings
from services.consent.service_layer import retention
from services.consent.service_layer.unit_of_work import ConsentUnitOfWork
from shared.app import ServiceRuntime, Worker, housekeeping, outbox_relay, retention_rules
from shared.consent_feed import HeartbeatWorker
from shared.retention import Retention
from shared.settings import ServiceSettings


def rules(settings: ServiceSettings) -> list[Retention]:
    return retention_rules(settings, outbox=outbox, audit=audit, idempotency=idempotency_keys)


def workers(runtime: ServiceRuntime[ConsentSettings, ConsentUnitOfWork]) -> list[Worker]:
    return [
        outbox_relay(runtime, outbox).run,
        HeartbeatWorker(runtime.broker, every_seconds=runtime.settings.consent_heartbeat_seconds).run,
        housekeeping(
            runtime, rules(runtime.settings), purge=partial(retention.purge, runtime.unit_of_work, runtime.settings)
        ),
    ]
