"""The consent service: records, reads, searches, withdraws and checks patients' consents."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.trace import TracerProvider

from services.consent.adapters.orm import audit, outbox
from services.consent.api.routes import patient_router, router
from services.consent.config import ConsentSettings
from services.consent.service_layer.unit_of_work import unit_of_work_factory
from services.consent.worker import workers
from shared.api import audit_router
from shared.app import build_runtime, create_service_app
from shared.patient_view import patient_audit_router

DESCRIPTION = """
Records a patient's consent (toestemming) for a Kansrijke Start melding: for which recipient types
(JGZ, wijkteam), for which purpose, until when — and its withdrawal, which stops and retracts
meldingen sent under it.

Every `/v1/` endpoint needs `Authorization: Bearer <JWT>` (RS256/ES256) whose claims name the
organisation (`org_id`, `org_type`) and grant scopes (`consent:write`, `consent:read`, `consent:check`,
`audit:read`). Errors are `application/problem+json` (RFC 9457).
"""


def create_app(
    settings: ConsentSettings | None = None, *, run_workers: bool = True, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    runtime = build_runtime(settings or ConsentSettings(), unit_of_work_factory, tracer_provider=tracer_provider)
    return create_service_app(
        runtime,
        title="Kansrijke Start — consent service",
        description=DESCRIPTION,
        routers=[router, patient_router, audit_router(audit), patient_audit_router(audit)],
        workers=workers,
        outbox=outbox,
        run_workers=run_workers,
    )
