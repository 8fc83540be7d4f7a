"""Routing a melding: postcode -> gemeente -> for each requested type the serving organisation -> delivery.

Consent is checked again just before delivery, inside the routing transaction, against routing's own
record: the withdrawals it has received (`consent.withdrawn`, row locked here, so a withdrawal is either
seen here and nothing is delivered, or comes after and retracts what was delivered) and the validity and
scope the melding carries from its intake check. A melding that waited (longer than
`consent_recheck_after_seconds` since intake: a backlog, an unroutable melding routed again) is checked
with the consent service as well, before the transaction (no lock held over HTTP). Deliveries and their
messages commit together.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import structlog

from services.routing.domain.model import DeliveryRecord, RoutingStatus, choose, consent_refusal
from services.routing.service_layer.unit_of_work import RoutingUnitOfWork
from shared.auth import Principal
from shared.clients.consent import ConsentClient
from shared.clock import now, today_nl
from shared.contracts.consent import ConsentCheckResult
from shared.contracts.melding import (
    DELIVERY_STATUS_CHANGED,
    MELDING_DELIVERED,
    MELDING_RETRACTED,
    MELDING_ROUTED,
    MELDING_UNROUTABLE,
    DeliverySender,
    DeliveryStatusChanged,
    Gemeente,
    MeldingAccepted,
    MeldingDelivered,
    MeldingRetracted,
    MeldingRouted,
    MeldingUnroutable,
    RecipientRef,
    RoutedDelivery,
)
from shared.contracts.vocabulary import DeliveryStatus
from shared.identifiers import postcode_area
from shared.messaging.topology import DELIVERIES_EXCHANGE, EVENTS_EXCHANGE

log = structlog.get_logger(__name__)

# Who acts when routing delivers or retracts on its own: the platform, not a person (NEN 7513 names it).
ROUTING = Principal(sub="routing-service", org_id="kansrijk-platform", org_type="service", scopes=frozenset())


async def check_consent(client: ConsentClient, accepted: MeldingAccepted, request_id: str | None) -> ConsentCheckResult:
    return await client.check(
        consent_id=accepted.consent.id,
        bsn=accepted.content.patient.bsn,
        org_id=accepted.sender.org_id,
        recipient_types=list(accepted.content.recipient_types),
        request_id=request_id,
    )


async def route(
    uow: RoutingUnitOfWork,
    melding_id: str,
    answer: ConsentCheckResult | None,
    *,
    request_id: str | None,
    new: MeldingAccepted | None = None,
) -> RoutingStatus:
    """Route one melding now, as far as the directory and the consent allow. Returns its routing status.

    `answer` is the consent service's, when it was asked (a melding that waited); routing's own record
    is consulted either way. `new`: the melding as this transaction just stored it (nothing to read back:
    status "new", no deliveries yet).
    """
    accepted = new
    if accepted is None:
        melding = await uow.routing.melding(melding_id)
        assert melding is not None
        status, consent_id, reported_unroutable = melding.status, melding.consent_id, melding.unroutable_types
        if melding.accepted is None:  # its personal data was purged (retention): it can never go out
            return status
        accepted = melding.accepted
    else:
        status, consent_id, reported_unroutable = RoutingStatus.new, accepted.consent.id, ()
    consent = await uow.routing.lock_consent(consent_id)
    if not status.routable:
        return status
    at = now()
    if consent.withdrawn_at is not None or (answer is not None and answer.reason == "withdrawn"):
        await uow.routing.close(melding_id, RoutingStatus.withdrawn, at)
        return RoutingStatus.withdrawn
    refusal = (
        (answer.reason or "refused")
        if answer is not None and not answer.allowed
        else consent_refusal(
            valid_until=accepted.consent.valid_until,
            consented_types=accepted.consent.recipient_types,
            requested_types=list(accepted.content.recipient_types),
            today=today_nl(),
        )
    )
    if refusal is not None:
        # The consent no longer allows it (expired since intake): nothing goes out.
        log.warning("routing_refused_by_consent", melding_id=melding_id, reason=refusal)
        uow.audit.record(
            ROUTING,
            "deliver",
            "melding",
            melding_id,
            patient_bsn=accepted.content.patient.bsn,
            request_id=request_id,
            outcome=f"refused:{refusal}",
            consent_checked=False,
        )
        await uow.routing.close(melding_id, RoutingStatus.refused, at)
        return RoutingStatus.refused

    pc4 = postcode_area(accepted.content.patient.address.postcode)
    found = await uow.directory.gemeente_for_pc4(pc4)
    gemeente = Gemeente(code=found.code, name=found.name) if found else None
    existing = {} if new is not None else {d.recipient_type: d for d in await uow.routing.deliveries_of(melding_id)}
    unroutable: list[str] = []
    made: list[RoutedDelivery] = []
    for recipient_type in accepted.content.recipient_types:
        if recipient_type in existing:
            continue
        chosen = choose(
            await uow.directory.candidates(
                org_type=recipient_type, pc4=pc4, gemeente_code=gemeente.code if gemeente else None
            )
        )
        if chosen is None:
            unroutable.append(recipient_type)
            continue
        delivery = RoutedDelivery(
            delivery_id=str(uuid.uuid4()), org_id=chosen.org_id, org_name=chosen.name, recipient_type=recipient_type
        )
        message = MeldingDelivered(
            delivery_id=delivery.delivery_id,
            melding_id=melding_id,
            sent_at=at,
            recipient=RecipientRef(org_id=chosen.org_id, type=recipient_type),
            gemeente=gemeente,
            patient=accepted.content.patient,
            pregnancy=accepted.content.pregnancy,
            risk_domains=list(accepted.content.risk_domains),
            urgency=accepted.content.urgency,
            note=accepted.content.note,
            sender=DeliverySender(
                org_id=accepted.sender.org_id, org_type=accepted.sender.org_type, contact=accepted.content.contact
            ),
            consent=accepted.consent,
        )
        await uow.routing.add_delivery(
            DeliveryRecord(
                delivery_id=delivery.delivery_id,
                melding_id=melding_id,
                org_id=chosen.org_id,
                org_name=chosen.name,
                recipient_type=recipient_type,
                status=DeliveryStatus.queued,
                message=message.model_dump(mode="json"),
                created_at=at,
                updated_at=at,
            )
        )
        # The organisation's queue exists from its PUT on; `mandatory` makes a missing one a retry, not a loss.
        await uow.outbox.add(
            exchange=DELIVERIES_EXCHANGE,
            routing_key=chosen.org_id,
            message_type=MELDING_DELIVERED,
            body=message,
            message_id=delivery.delivery_id,
            correlation_id=melding_id,
            request_id=request_id,
            mandatory=True,
        )
        uow.audit.record(
            ROUTING,
            "deliver",
            "delivery",
            delivery.delivery_id,
            patient_bsn=accepted.content.patient.bsn,
            request_id=request_id,
            consent_checked=True,
        )
        made.append(delivery)

    status = RoutingStatus.waiting if unroutable else RoutingStatus.routed
    await uow.routing.set_routed(
        melding_id, status, unroutable_types=unroutable, gemeente_code=gemeente.code if gemeente else None, at=at
    )
    all_deliveries = [
        RoutedDelivery(delivery_id=d.delivery_id, org_id=d.org_id, org_name=d.org_name, recipient_type=d.recipient_type)
        for d in existing.values()
    ] + made
    if made:
        routed = MeldingRouted(
            melding_id=melding_id, gemeente=gemeente, deliveries=all_deliveries, unroutable_types=unroutable
        )
        await uow.outbox.add(
            exchange=EVENTS_EXCHANGE,
            routing_key=MELDING_ROUTED,
            message_type=MELDING_ROUTED,
            body=routed,
            correlation_id=melding_id,
            request_id=request_id,
        )
    elif not existing and (new is not None or reported_unroutable != tuple(unroutable)):
        # Said once per outcome: a melding that keeps waiting is not announced again at every retry.
        event = MeldingUnroutable(melding_id=melding_id, gemeente=gemeente, unroutable_types=unroutable)
        await uow.outbox.add(
            exchange=EVENTS_EXCHANGE,
            routing_key=MELDING_UNROUTABLE,
            message_type=MELDING_UNROUTABLE,
            body=event,
            correlation_id=melding_id,
            request_id=request_id,
        )
    return status


async def withdraw_consent(uow: RoutingUnitOfWork, consent_id: str, *, request_id: str | None) -> int:
    """Nothing more goes out under this consent; every delivery made under it is retracted. Returns how many."""
    await uow.routing.lock_consent(consent_id)
    at = now()
    await uow.routing.mark_consent_withdrawn(consent_id, at)
    retracted = 0
    for melding in await uow.routing.meldingen_of_consent(consent_id):
        bsn = melding.accepted.content.patient.bsn if melding.accepted else None
        await uow.routing.close(melding.melding_id, RoutingStatus.withdrawn, at)
        for delivery in await uow.routing.deliveries_of(melding.melding_id):
            if delivery.status is DeliveryStatus.retracted:
                continue
            retraction = MeldingRetracted(
                delivery_id=delivery.delivery_id, melding_id=melding.melding_id, retracted_at=at
            )
            # The personal content goes: the recipient deletes it, and so do we.
            await uow.routing.retract_delivery(delivery.delivery_id, retraction.model_dump(mode="json"), at)
            await uow.outbox.add(
                exchange=DELIVERIES_EXCHANGE,
                routing_key=delivery.org_id,
                message_type=MELDING_RETRACTED,
                body=retraction,
                message_id=f"retract:{delivery.delivery_id}",
                correlation_id=melding.melding_id,
                request_id=request_id,
                mandatory=True,
            )
            await announce_status(uow, delivery, DeliveryStatus.retracted, at, request_id=request_id)
            uow.audit.record(
                ROUTING,
                "retract",
                "delivery",
                delivery.delivery_id,
                patient_bsn=bsn,
                request_id=request_id,
                outcome="consent-withdrawn",
            )
            retracted += 1
    return retracted


async def announce_status(
    uow: RoutingUnitOfWork, delivery: DeliveryRecord, status: DeliveryStatus, at: datetime, *, request_id: str | None
) -> None:
    """Tell the melding service (and so the sender) where a delivery stands now."""
    event = DeliveryStatusChanged(
        melding_id=delivery.melding_id,
        status=status,
        at=at,
        delivery=RoutedDelivery(
            delivery_id=delivery.delivery_id,
            org_id=delivery.org_id,
            org_name=delivery.org_name,
            recipient_type=delivery.recipient_type,
        ),
    )
    await uow.outbox.add(
        exchange=EVENTS_EXCHANGE,
        routing_key=DELIVERY_STATUS_CHANGED,
        message_type=DELIVERY_STATUS_CHANGED,
        body=event,
        correlation_id=delivery.melding_id,
        request_id=request_id,
    )
