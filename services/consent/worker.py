"""The consent service's background work: the outbox relay (it consumes nothing)."""

from __future__ import annotations

from services.consent.adapters.orm import outbox
from shared.app import ServiceRuntime, Worker, outbox_relay


def workers(runtime: ServiceRuntime) -> list[Worker]:
    return [outbox_relay(runtime, outbox).run]
