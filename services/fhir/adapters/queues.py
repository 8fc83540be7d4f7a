"""The facade's queue on the broker: declared before a Subscription is made, so that no change of the
subscriber's meldingen is published where no queue keeps it (`melding.changed` is not `mandatory`)."""

from __future__ import annotations

import aio_pika

from services.fhir.domain.outcome import FhirError
from shared.contracts.subscriptions import FHIR_EVENTS
from shared.messaging.broker import Broker
from shared.messaging.topology import declare_event_queue


async def declare_events_queue(broker: Broker) -> None:
    """Declare `kansrijk.fhir.events` (idempotent); 503 if RabbitMQ cannot be reached just now — an API
    process without workers has not declared it, and a Subscription without its queue would miss events."""
    try:
        await broker.connect(attempts=2)
        channel = await broker.channel()
        await declare_event_queue(channel, FHIR_EVENTS)
    except (TimeoutError, OSError, aio_pika.exceptions.AMQPError):
        raise FhirError(503, "transient", "the platform's message broker cannot be reached just now: retry") from None
