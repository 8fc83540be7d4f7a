"""What the facade's own routes (Subscriptions) depend on: the caller, checked here, and the unit of work."""

from typing import Annotated

from fastapi import Depends

from services.fhir.service_layer.unit_of_work import UnitOfWorkFactory
from shared.api import unit_of_work
from shared.auth import Principal, require_scope

# A Subscription tells its organisation about its own Tasks: what `melding:read` reads.
TaskFollower = Annotated[Principal, Depends(require_scope("melding:read"))]
UnitOfWorkDep = Annotated[UnitOfWorkFactory, Depends(unit_of_work)]
