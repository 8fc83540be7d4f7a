"""Who takes which events: each consuming service's queue on `kansrijk.events` and the event types bound to it.

This is part of the contract between the services, not knowledge of the messaging layer: the topology
(shared.messaging.topology) declares these queues from this list, and each service's consumer binds and
handles exactly its own entry (IdempotentConsumer refuses to start without a handler for a bound type).

All of them are declared by whichever service connects first, not each by its own service: an event must
never be published before every queue that must keep it exists. Were each service to declare only its own,
a withdrawal published while routing had never yet started would reach the melding service's queue and no
other, and routing would miss it for good.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from shared.contracts.events import (
    CONSENT_HEARTBEAT,
    CONSENT_RECORDED,
    CONSENT_WITHDRAWN,
    ConsentHeartbeat,
    ConsentRecorded,
    ConsentWithdrawn,
)
from shared.contracts.melding import (
    DELIVERY_OVERDUE,
    DELIVERY_STATUS_CHANGED,
    MELDING_ACCEPTED,
    MELDING_CANCELLED,
    MELDING_CHANGED,
    MELDING_NOT_DELIVERED,
    MELDING_ROUTED,
    MELDING_UNROUTABLE,
    DeliveryOverdue,
    DeliveryStatusChanged,
    MeldingAccepted,
    MeldingCancelled,
    MeldingChanged,
    MeldingNotDelivered,
    MeldingRouted,
    MeldingUnroutable,
)

# Each event type's body: the model a consumer decodes it into, once, at its edge (shared.messaging.consumer).
EVENT_CONTRACTS: dict[str, type[BaseModel]] = {
    CONSENT_RECORDED: ConsentRecorded,
    CONSENT_WITHDRAWN: ConsentWithdrawn,
    CONSENT_HEARTBEAT: ConsentHeartbeat,
    MELDING_ACCEPTED: MeldingAccepted,
    MELDING_ROUTED: MeldingRouted,
    MELDING_UNROUTABLE: MeldingUnroutable,
    MELDING_NOT_DELIVERED: MeldingNotDelivered,
    MELDING_CANCELLED: MeldingCancelled,
    DELIVERY_STATUS_CHANGED: DeliveryStatusChanged,
    DELIVERY_OVERDUE: DeliveryOverdue,
    MELDING_CHANGED: MeldingChanged,
}


# Types whose message ids are not kept (`processed_messages`): applying one again changes nothing, and there
# are many (a heartbeat a second per queue), so a record of them would only cost a statement each.
UNRECORDED_TYPES = frozenset({CONSENT_HEARTBEAT})


@dataclass(frozen=True)
class EventQueue:
    name: str
    event_types: tuple[str, ...]
    retired: tuple[str, ...] = ()  # bindings of earlier versions, removed when the queue is declared


MELDING_EVENTS = EventQueue(
    "kansrijk.melding.events",
    (
        MELDING_ROUTED,
        MELDING_UNROUTABLE,
        MELDING_NOT_DELIVERED,
        DELIVERY_STATUS_CHANGED,
        DELIVERY_OVERDUE,
    ),
    retired=(CONSENT_WITHDRAWN,),
)
# The melding service's record of consents, on a queue of its own so that no backlog of routing's events holds
# it back: intake decides on it while it is current (the heartbeats say so), and asks the consent service
# otherwise. Withdrawals were bound to kansrijk.melding.events before.
MELDING_CONSENTS = EventQueue("kansrijk.melding.consents", (CONSENT_RECORDED, CONSENT_WITHDRAWN, CONSENT_HEARTBEAT))
# Meldingen to route. Withdrawals were bound here before they got a queue of their own.
ROUTING_EVENTS = EventQueue("kansrijk.routing.events", (MELDING_ACCEPTED,), retired=(CONSENT_WITHDRAWN,))
# What stops meldingen — withdrawals and the sender's cancellations — on a queue of their own: a backlog of
# meldingen never holds one back, and routing applies every waiting one before it routes (its consent
# re-check is its own record of them).
# The heartbeats tell routing that its record of withdrawals is current however old the melding it routes.
ROUTING_WITHDRAWALS = EventQueue(
    "kansrijk.routing.withdrawals", (CONSENT_WITHDRAWN, MELDING_CANCELLED, CONSENT_HEARTBEAT)
)

SUBSCRIPTIONS = (MELDING_EVENTS, MELDING_CONSENTS, ROUTING_EVENTS, ROUTING_WITHDRAWALS)

# The FHIR facade's queue: what changed of which sender's meldingen, for its subscriptions. Declared by the
# facade alone, unlike those above: where no facade runs nothing must pile up. Nothing is missed by not
# declaring it sooner: the facade declares it before it makes a Subscription (and its consumer on start), so
# it exists before the first subscriber. The melding service publishes these without `mandatory`.
FHIR_EVENTS = EventQueue("kansrijk.fhir.events", (MELDING_CHANGED,))
