"""The FHIR facade's background work: its outbox relay and housekeeping (it holds no personal data to purge)."""

from __future__ import annotations

from services.fhir.adapters.orm import audit, outbox
from services.fhir.config import FhirSettings
from services.fhir.service_layer.unit_of_work import FhirUnitOfWork
from shared.app import ServiceRuntime, Worker, housekeeping, outbox_relay, retention_rules
from shared.retention import Retention
from shared.settings import ServiceSettings


def rules(settings: ServiceSettings) -> list[Retention]:
    return retention_rules(settings, outbox=outbox, audit=audit)


def workers(runtime: ServiceRuntime[FhirSettings, FhirUnitOfWork]) -> list[Worker]:
    return [outbox_relay(runtime, outbox).run, housekeeping(runtime, rules(runtime.settings))]
