"""Dependencies of the melding API, as `Annotated` aliases."""

from typing import Annotated

from fastapi import Depends

from shared.api import ConsentClientDep, DatabaseDep
from shared.auth import Principal, require_scope

__all__ = ["ConsentClientDep", "DatabaseDep", "MeldingReader", "MeldingWriter"]

MeldingWriter = Annotated[Principal, Depends(require_scope("melding:write"))]
MeldingReader = Annotated[Principal, Depends(require_scope("melding:read"))]
