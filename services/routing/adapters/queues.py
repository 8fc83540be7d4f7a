"""Routing's declarations on the broker that are not one consumer's: each recipient organisation's queue."""

from __future__ import annotations

import structlog

from shared.messaging.broker import Broker
from shared.messaging.topology import DELIVERIES_EXCHANGE, declare_quorum_queue, organisation_queue

log = structlog.get_logger(__name__)


async def declare_organisation_queue(broker: Broker, org_id: str) -> bool:
    """Declare an organisation's queue now, so nothing sent before its consumer connects is lost.

    With the broker away this waits for nobody: deliveries are published `mandatory`, so one that
    finds no queue is retried by the relay, and the worker declares every active queue on start.
    """
    if not broker.is_connected:
        # Never wait for the broker in a request: the worker declares it within one round once it is back.
        log.warning("organisation_queue_not_declared_yet", org_id=org_id)
        return False
    channel = await broker.channel()
    await declare_quorum_queue(channel, organisation_queue(org_id), exchange=DELIVERIES_EXCHANGE, routing_keys=[org_id])
    return True
