"""Dependencies of the routing API, as `Annotated` aliases."""

from typing import Annotated

from fastapi import Depends, Request

from shared.auth import Principal, require_scope
from shared.clients.consent import ConsentClient
from shared.db import Database
from shared.messaging.broker import Broker


def database(request: Request) -> Database:
    return request.app.state.database


def consent_client(request: Request) -> ConsentClient:
    return request.app.state.runtime.extras["consent_client"]


def broker(request: Request) -> Broker:
    return request.app.state.broker


DatabaseDep = Annotated[Database, Depends(database)]
ConsentClientDep = Annotated[ConsentClient, Depends(consent_client)]
BrokerDep = Annotated[Broker, Depends(broker)]
Admin = Annotated[Principal, Depends(require_scope("routing:admin"))]
DeliveryReader = Annotated[Principal, Depends(require_scope("delivery:read"))]
DeliveryWriter = Annotated[Principal, Depends(require_scope("delivery:write"))]
