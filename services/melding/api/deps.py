"""Dependencies of the melding API, as `Annotated` aliases."""

from datetime import timedelta
from typing import Annotated, cast

from fastapi import Depends, Request

from services.melding.service_layer.intake import Intake
from services.melding.service_layer.unit_of_work import UnitOfWorkFactory
from shared.api import ConsentClientDep, unit_of_work
from shared.auth import Principal, current_patient, require_scope

__all__ = [
    "ConsentClientDep",
    "ConsentMaxLag",
    "IntakeDep",
    "MeldingReader",
    "MeldingWriter",
    "Patient",
    "UnitOfWorkDep",
]


async def consent_max_lag(request: Request) -> timedelta:
    """How old the consent feed's last heartbeat may be for intake to decide on its own record of consents."""
    return timedelta(seconds=request.app.state.runtime.settings.consent_feed_max_lag_seconds)


UnitOfWorkDep = Annotated[UnitOfWorkFactory, Depends(unit_of_work)]
MeldingWriter = Annotated[Principal, Depends(require_scope("melding:write"))]
MeldingReader = Annotated[Principal, Depends(require_scope("melding:read"))]
Patient = Annotated[Principal, Depends(current_patient)]  # the woman herself (`patient:self`)
ConsentMaxLag = Annotated[timedelta, Depends(consent_max_lag)]


async def intake(request: Request) -> Intake:
    """The service's intake queue (built once in `create_app()`): meldingen sent together are stored together."""
    return cast(Intake, request.app.state.intake)


IntakeDep = Annotated[Intake, Depends(intake)]
