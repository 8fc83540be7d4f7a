"""Dependencies of the consent API, as `Annotated` aliases (tests swap them with dependency_overrides)."""

from typing import Annotated

from fastapi import Depends

from shared.api import DatabaseDep
from shared.auth import Principal, require_scope

__all__ = ["ConsentChecker", "ConsentReader", "ConsentWriter", "DatabaseDep"]

ConsentWriter = Annotated[Principal, Depends(require_scope("consent:write"))]
ConsentReader = Annotated[Principal, Depends(require_scope("consent:read"))]
ConsentChecker = Annotated[Principal, Depends(require_scope("consent:check"))]
