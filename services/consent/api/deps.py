"""Dependencies of the consent API, as `Annotated` aliases (tests swap them with dependency_overrides)."""

from typing import Annotated

from fastapi import Depends

from services.consent.service_layer.unit_of_work import UnitOfWorkFactory
from shared.api import unit_of_work
from shared.auth import Principal, current_patient, require_scope

__all__ = ["ConsentChecker", "ConsentReader", "ConsentWriter", "Patient", "UnitOfWorkDep"]

UnitOfWorkDep = Annotated[UnitOfWorkFactory, Depends(unit_of_work)]
ConsentWriter = Annotated[Principal, Depends(require_scope("consent:write"))]
ConsentReader = Annotated[Principal, Depends(require_scope("consent:read"))]
ConsentChecker = Annotated[Principal, Depends(require_scope("consent:check"))]
Patient = Annotated[Principal, Depends(current_patient)]  # the woman herself (`patient:self`)
