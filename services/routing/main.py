"""The routing service: the directory of recipients, routing of meldingen to their queues, status back."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from opentelemetry.trace import TracerProvider

from services.routing.adapters.orm import audit, outbox
from services.routing.api import asyncapi
from services.routing.api.routes import router
from services.routing.config import RoutingSettings
from services.routing.service_layer import queries
from services.routing.service_layer.unit_of_work import unit_of_work_factory
from services.routing.worker import workers
from shared.api import audit_router
from shared.app import attach_consent_client, build_runtime, create_service_app
from shared.patient_view import patient_audit_router

DESCRIPTION = """
Finds the JGZ organisation and/or wijkteam that serves a patient's address (postcode → gemeente →
the organisation serving it; a postcode range beats a whole gemeente) and delivers the melding on that
organisation's own quorum queue `kansrijk.deliveries.<org_id>`. Recipients report back here.

Operators (`routing:admin`) keep the directory and handle unroutable meldingen and dead letters;
recipients (`delivery:read`, `delivery:write`) read and report on their deliveries.
Errors are `application/problem+json` (RFC 9457).
"""


def create_app(
    settings: RoutingSettings | None = None, *, run_workers: bool = True, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    settings = settings or RoutingSettings()
    runtime = build_runtime(settings, unit_of_work_factory, tracer_provider=tracer_provider)
    attach_consent_client(runtime, settings)
    runtime.metrics.scrapers.append(partial(queries.report_gauges, runtime.unit_of_work, runtime.metrics))
    return create_service_app(
        runtime,
        title="Kansrijke Start — routing service",
        description=DESCRIPTION,
        routers=[router, asyncapi.router, audit_router(audit), patient_audit_router(audit)],
        workers=workers,
        outbox=outbox,
        run_workers=run_workers,
    )
