"""The melding service: takes meldingen from EHRs, checks consent, and shows senders where they stand."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.trace import TracerProvider

from services.melding.adapters.orm import audit, outbox
from services.melding.api.figures import router as figures_router
from services.melding.api.routes import patient_router, router
from services.melding.config import MeldingSettings
from services.melding.service_layer.intake import Intake
from services.melding.service_layer.unit_of_work import unit_of_work_factory
from services.melding.worker import workers
from shared.api import audit_router
from shared.app import attach_consent_client, build_runtime, create_service_app
from shared.patient_view import patient_audit_router

DESCRIPTION = """
An EHR sends a **melding** (`POST /v1/meldingen`) with the patient's consent id; the service checks the
consent with the consent service, stores the melding and hands it to routing, which delivers it to the
JGZ organisation and/or wijkteam serving the patient's address. The sender follows its status with
`GET /v1/meldingen/{id}`: `accepted` → `delivered` / `unroutable`, each recipient's `queued` →
`received` → `contact_made` → `closed`, or `withdrawn` when the consent is withdrawn.

`GET /v1/figures` (`figures:read`) counts what came of the meldingen per gemeente and period, for the
programme's monitoring, with every small number suppressed.

Bearer JWT with `melding:write` / `melding:read`; the sender is the token's organisation.
Errors are `application/problem+json` (RFC 9457).
"""


def create_app(
    settings: MeldingSettings | None = None, *, run_workers: bool = True, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    settings = settings or MeldingSettings()
    runtime = build_runtime(settings, unit_of_work_factory, tracer_provider=tracer_provider)
    attach_consent_client(runtime, settings)
    app = create_service_app(
        runtime,
        title="Kansrijke Start — melding service",
        description=DESCRIPTION,
        routers=[router, patient_router, figures_router, audit_router(audit), patient_audit_router(audit)],
        workers=workers,
        outbox=outbox,
        run_workers=run_workers,
    )
    app.state.intake = Intake(runtime.unit_of_work)  # meldingen sent together are stored together
    return app
