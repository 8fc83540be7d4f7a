"""Dependencies of the melding API, as `Annotated` aliases."""

from typing import Annotated

from fastapi import Depends, Request

from shared.auth import Principal, require_scope
from shared.clients.consent import ConsentClient
from shared.db import Database


def database(request: Request) -> Database:
    return request.app.state.database


def consent_client(request: Request) -> ConsentClient:
    return request.app.state.runtime.extras["consent_client"]


DatabaseDep = Annotated[Database, Depends(database)]
ConsentClientDep = Annotated[ConsentClient, Depends(consent_client)]
MeldingWriter = Annotated[Principal, Depends(require_scope("melding:write"))]
MeldingReader = Annotated[Principal, Depends(require_scope("melding:read"))]
