"""Dependencies of the melding API, as `Annotated` aliases."""

from typing import Annotated

from fastapi import Depends

from services.melding.service_layer.unit_of_work import UnitOfWorkFactory
from shared.api import ConsentClientDep, unit_of_work
from shared.auth import Principal, current_patient, require_scope

__all__ = ["ConsentClientDep", "MeldingReader", "MeldingWriter", "Patient", "UnitOfWorkDep"]

UnitOfWorkDep = Annotated[UnitOfWorkFactory, Depends(unit_of_work)]
MeldingWriter = Annotated[Principal, Depends(require_scope("melding:write"))]
MeldingReader = Annotated[Principal, Depends(require_scope("melding:read"))]
Patient = Annotated[Principal, Depends(current_patient)]  # the woman herself (`patient:self`)
