"""Dependencies of the consent API, as `Annotated` aliases (tests swap them with dependency_overrides)."""

from typing import Annotated

from fastapi import Depends, Request

from shared.auth import Principal, require_scope
from shared.db import Database


def database(request: Request) -> Database:
    return request.app.state.database


DatabaseDep = Annotated[Database, Depends(database)]
ConsentWriter = Annotated[Principal, Depends(require_scope("consent:write"))]
ConsentReader = Annotated[Principal, Depends(require_scope("consent:read"))]
ConsentChecker = Annotated[Principal, Depends(require_scope("consent:check"))]
