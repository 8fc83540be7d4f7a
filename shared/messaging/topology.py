"""The RabbitMQ topology every service relies on, declared idempotently by whoever starts first."""

from __future__ import annotations

from typing import Any

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from shared.contracts.subscriptions import SUBSCRIPTIONS, EventQueue

EVENTS_EXCHANGE = "kansrijk.events"  # topic: facts other services act on, routing key = event type
DELIVERIES_EXCHANGE = "kansrijk.deliveries"  # direct: meldingen to recipients, routing key = org id
DEAD_LETTER_EXCHANGE = "kansrijk.dead-letter"  # fanout: what failed processing DELIVERY_LIMIT times
DEAD_LETTER_QUEUE = "kansrijk.dead-letters"
DELIVERY_LIMIT = 5


def organisation_queue(org_id: str) -> str:
    """The quorum queue a recipient organisation's deliveries wait on (the contract, the recipient's queue)."""
    return f"{DELIVERIES_EXCHANGE}.{org_id}"


def quorum_queue_arguments() -> dict[str, Any]:
    """Quorum queue with a delivery limit and at-least-once dead-lettering (nothing dropped on the way)."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        # at-least-once dead-lettering needs reject-publish overflow; without it the broker falls
        # back to at-most-once and a dead letter can vanish in a leader change.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare_topology(
    channel: AbstractChannel, queues: tuple[EventQueue, ...] = SUBSCRIPTIONS
) -> dict[str, AbstractExchange]:
    """Exchanges, the dead-letter queue and every service's event queue (shared.contracts.subscriptions),
    idempotently."""
    events = await channel.declare_exchange(EVENTS_EXCHANGE, ExchangeType.TOPIC, durable=True)
    deliveries = await channel.declare_exchange(DELIVERIES_EXCHANGE, ExchangeType.DIRECT, durable=True)
    dead = await channel.declare_exchange(DEAD_LETTER_EXCHANGE, ExchangeType.FANOUT, durable=True)
    dead_letters = await channel.declare_queue(DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    await dead_letters.bind(dead)
    for spec in queues:
        await declare_event_queue(channel, spec)
    return {EVENTS_EXCHANGE: events, DELIVERIES_EXCHANGE: deliveries, DEAD_LETTER_EXCHANGE: dead}


async def declare_event_queue(channel: AbstractChannel, spec: EventQueue) -> AbstractQueue:
    """One service's queue on kansrijk.events, bound to its event types; retired bindings removed (unbinding
    an absent binding is no error)."""
    queue = await declare_quorum_queue(
        channel, spec.name, exchange=EVENTS_EXCHANGE, routing_keys=list(spec.event_types)
    )
    for key in spec.retired:
        await queue.unbind(EVENTS_EXCHANGE, routing_key=key)
    return queue


async def declare_quorum_queue(
    channel: AbstractChannel, name: str, *, exchange: str, routing_keys: list[str]
) -> AbstractQueue:
    """A durable quorum queue with dead-lettering, bound to `exchange` with each routing key."""
    queue = await channel.declare_queue(name, durable=True, arguments=quorum_queue_arguments())
    for key in routing_keys:
        await queue.bind(exchange, routing_key=key)
    return queue
