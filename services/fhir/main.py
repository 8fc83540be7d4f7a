"""The FHIR R4 facade: Consent, the melding as a transaction Bundle and its Task, for EHR vendors that speak
FHIR — by calling the consent and melding services' v1 APIs with the caller's own token."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from opentelemetry.trace import TracerProvider

from services.fhir.adapters.orm import audit, outbox
from services.fhir.adapters.v1 import V1Api
from services.fhir.api.outcomes import install_fhir_errors
from services.fhir.api.routes import router
from services.fhir.config import FhirSettings
from services.fhir.service_layer import handlers
from services.fhir.service_layer.unit_of_work import unit_of_work_factory
from services.fhir.worker import workers
from shared.api import audit_router
from shared.app import build_runtime, create_service_app

DESCRIPTION = """
FHIR R4 (4.0.1) JSON at `/fhir` for EHR vendors (docs/fhir.md): record, read, withdraw and search a
patient's Consent; send a melding as a transaction Bundle (Patient, ServiceRequest, Observation, Task);
follow it as its Task, and cancel it with `$cancel`. Every call is made to the v1 APIs with your own
token: the same scopes, the same rules, the same audit. Errors are `OperationOutcome`.
"""


def create_app(
    settings: FhirSettings | None = None, *, run_workers: bool = True, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    settings = settings or FhirSettings()
    runtime = build_runtime(settings, unit_of_work_factory, tracer_provider=tracer_provider)
    timeout = settings.v1_timeout_seconds
    apis = {
        name: V1Api(name, url, timeout=timeout)
        for name, url in (("consent", settings.consent_url), ("melding", settings.melding_url))
    }
    for api in apis.values():
        runtime.closers.append(api.aclose)
    app = create_service_app(
        runtime,
        title="Kansrijke Start — FHIR R4 facade",
        description=DESCRIPTION,
        routers=[router, audit_router(audit)],
        workers=workers,
        outbox=outbox,
        run_workers=run_workers,
    )
    app.state.consent_api, app.state.melding_api = apis["consent"], apis["melding"]
    gauges = handlers.NotificationGauges(runtime.metrics)
    runtime.metrics.scrapers.append(partial(gauges.refresh, runtime.unit_of_work))
    install_fhir_errors(app, router.prefix)
    return app
