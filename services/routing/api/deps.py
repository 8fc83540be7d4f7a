"""Dependencies of the routing API, as `Annotated` aliases."""

from typing import Annotated, cast

from fastapi import Depends, Request

from services.routing.config import PublicBroker, RoutingSettings
from services.routing.service_layer.unit_of_work import UnitOfWorkFactory
from shared.api import ConsentClientDep, unit_of_work
from shared.auth import Principal, require_scope
from shared.messaging.broker import Broker

__all__ = [
    "Admin",
    "BrokerDep",
    "ConsentClientDep",
    "DeliveryReader",
    "DeliveryWriter",
    "PublicBrokerDep",
    "UnitOfWorkDep",
]


async def broker(request: Request) -> Broker:
    return cast(Broker, request.app.state.broker)


async def public_broker(request: Request) -> PublicBroker:
    """Where recipients connect (the service's settings), without user or password."""
    return cast(RoutingSettings, request.app.state.settings).public_broker()


BrokerDep = Annotated[Broker, Depends(broker)]
PublicBrokerDep = Annotated[PublicBroker, Depends(public_broker)]
UnitOfWorkDep = Annotated[UnitOfWorkFactory, Depends(unit_of_work)]
Admin = Annotated[Principal, Depends(require_scope("routing:admin"))]
DeliveryReader = Annotated[Principal, Depends(require_scope("delivery:read"))]
DeliveryWriter = Annotated[Principal, Depends(require_scope("delivery:write"))]
