"""The consent service's background work: the outbox relay (it consumes nothing) and housekeeping."""

from __future__ import annotations

from services.consent.adapters.orm import idempotency_keys, outbox
from shared.app import ServiceRuntime, Worker, housekeeping, outbox_relay


def workers(runtime: ServiceRuntime) -> list[Worker]:
    return [outbox_relay(runtime, outbox).run,
            housekeeping(runtime, outbox=outbox, idempotency=idempotency_keys)]
