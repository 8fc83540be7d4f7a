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

import json
import uuid
from datetime import datetime
from typing import Any

import structlog

from services.routing.adapters.orm import audit, outbox
from services.routing.adapters.repository import DirectoryRepository, RoutingRepository
from services.routing.domain.model import choose, consent_refusal
from shared.audit import record_access
from shared.auth import Principal
from shared.clients.consent import ConsentCheckAnswer, ConsentClient
from shared.clock import now, today_nl
from shared.contracts.melding import (
    DELIVERY_STATUS_CHANGED,
    MELDING_DELIVERED,
    MELDING_RETRACTED,
    MELDING_ROUTED,
    MELDING_UNROUTABLE,
    STORED,
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
from shared.db import UnitOfWork
from shared.messaging.outbox import add_message
from shared.messaging.topology import DELIVERIES_EXCHANGE, EVENTS_EXCHANGE

log = structlog.get_logger(__name__)

# Who acts when routing delivers or retracts on its own: the platform, not a person (NEN 7513 names it).
ROUTING = Principal(sub="routing-service", org_id="kansrijk-platform", org_type="service", scopes=frozenset())


def _audit(
    uow: UnitOfWork,
    action: str,
    resource_id: str,
    bsn: str | None,
    request_id: str | None,
    *,
    outcome: str = "success",
    consent_checked: bool | None = None,
) -> None:
    record_access(
        uow,
        audit,
        service="routing",
        principal=ROUTING,
        action=action,
        resource_type="delivery",
        resource_id=resource_id,
        patient_bsn=bsn,
        request_id=request_id,
        outcome=outcome,
        consent_checked=consent_checked,
    )


async def check_consent(client: ConsentClient, accepted: MeldingAccepted, request_id: str | None) -> ConsentCheckAnswer:
    return await client.check(
        consent_id=accepted.consent.id,
        bsn=accepted.content.patient.bsn,
        org_id=accepted.sender.org_id,
        recipient_types=list(accepted.content.recipient_types),
        request_id=request_id,
    )


def parse_accepted(text: str) -> MeldingAccepted:
    return MeldingAccepted.model_validate(json.loads(text), context=STORED)


async def route(
    uow: UnitOfWork,
    melding_id: str,
    answer: ConsentCheckAnswer | None,
    *,
    request_id: str | None,
    new: MeldingAccepted | None = None,
) -> str:
    """Route one melding now, as far as the directory and the consent allow. Returns its routing status.

    `answer` is the consent service's, when it was asked (a melding that waited); routing's own record
    is consulted either way. `new`: the melding as this transaction just stored it (nothing to read back:
    status "new", no deliveries yet).
    """
    repository = RoutingRepository(uow)
    row: Any = None
    if new is None:
        row = await repository.melding(melding_id)
        assert row is not None
        status, consent_id, reported_unroutable = str(row.status), row.consent_id, row.unroutable_types
        if row.accepted is None:  # its personal data was purged (retention): it can never go out
            return status
    else:
        status, consent_id, reported_unroutable = "new", new.consent.id, ""
    consent = await repository.lock_consent(consent_id)
    if status in ("withdrawn", "refused", "routed"):  # "new" and "waiting" are routed
        return status
    at = now()
    if consent.withdrawn_at is not None or (answer is not None and answer.reason == "withdrawn"):
        await repository.update_melding(melding_id, status="withdrawn", accepted=None, updated_at=at)
        return "withdrawn"
    accepted = new or parse_accepted(row.accepted)  # row: read above whenever `new` is None
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
        record_access(
            uow,
            audit,
            service="routing",
            principal=ROUTING,
            action="deliver",
            resource_type="melding",
            resource_id=melding_id,
            patient_bsn=accepted.content.patient.bsn,
            request_id=request_id,
            outcome=f"refused:{refusal}",
            consent_checked=False,
        )
        await repository.update_melding(melding_id, status="refused", accepted=None, updated_at=at)
        return "refused"

    directory = DirectoryRepository(uow)
    pc4 = accepted.content.patient.address.postcode[:4]
    gemeente_row = await directory.gemeente_for_pc4(pc4)
    gemeente = Gemeente(code=gemeente_row.code, name=gemeente_row.name) if gemeente_row else None
    existing = {} if new is not None else {d.recipient_type: d for d in await repository.deliveries_of(melding_id)}
    unroutable: list[str] = []
    made: list[RoutedDelivery] = []
    for recipient_type in accepted.content.recipient_types:
        if recipient_type in existing:
            continue
        chosen = choose(
            await directory.candidates(
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
        await repository.add_delivery(
            delivery_id=delivery.delivery_id,
            melding_id=melding_id,
            org_id=chosen.org_id,
            org_name=chosen.name,
            recipient_type=recipient_type,
            status="queued",
            message=message.model_dump_json(),
            created_at=at,
            updated_at=at,
        )
        # The organisation's queue exists from its PUT on; `mandatory` makes a missing one a retry, not a loss.
        await add_message(
            uow,
            outbox,
            exchange=DELIVERIES_EXCHANGE,
            routing_key=chosen.org_id,
            message_type=MELDING_DELIVERED,
            body=message,
            message_id=delivery.delivery_id,
            correlation_id=melding_id,
            request_id=request_id,
            mandatory=True,
        )
        _audit(uow, "deliver", delivery.delivery_id, accepted.content.patient.bsn, request_id, consent_checked=True)
        made.append(delivery)

    status = "waiting" if unroutable else "routed"
    await repository.update_melding(
        melding_id,
        status=status,
        unroutable_types=",".join(unroutable),
        gemeente_code=gemeente.code if gemeente else None,
        updated_at=at,
    )
    all_deliveries = [
        RoutedDelivery(delivery_id=d.delivery_id, org_id=d.org_id, org_name=d.org_name, recipient_type=d.recipient_type)
        for d in existing.values()
    ] + made
    if made:
        event: Any = MeldingRouted(
            melding_id=melding_id, gemeente=gemeente, deliveries=all_deliveries, unroutable_types=unroutable
        )
        await add_message(
            uow,
            outbox,
            exchange=EVENTS_EXCHANGE,
            routing_key=MELDING_ROUTED,
            message_type=MELDING_ROUTED,
            body=event,
            correlation_id=melding_id,
            request_id=request_id,
        )
    elif not existing and (status == "new" or reported_unroutable != ",".join(unroutable)):
        # Said once per outcome: a melding that keeps waiting is not announced again at every retry.
        event = MeldingUnroutable(melding_id=melding_id, gemeente=gemeente, unroutable_types=unroutable)
        await add_message(
            uow,
            outbox,
            exchange=EVENTS_EXCHANGE,
            routing_key=MELDING_UNROUTABLE,
            message_type=MELDING_UNROUTABLE,
            body=event,
            correlation_id=melding_id,
            request_id=request_id,
        )
    return status


async def withdraw_consent(uow: UnitOfWork, consent_id: str, *, request_id: str | None) -> int:
    """Nothing more goes out under this consent; every delivery made under it is retracted. Returns how many."""
    repository = RoutingRepository(uow)
    await repository.lock_consent(consent_id)
    at = now()
    await repository.mark_consent_withdrawn(consent_id, at)
    retracted = 0
    for melding in await repository.meldingen_of_consent(consent_id):
        bsn = parse_accepted(melding.accepted).content.patient.bsn if melding.accepted else None
        await repository.update_melding(melding.melding_id, status="withdrawn", accepted=None, updated_at=at)
        for delivery in await repository.deliveries_of(melding.melding_id):
            if delivery.status == "retracted":
                continue
            retraction = MeldingRetracted(
                delivery_id=delivery.delivery_id, melding_id=melding.melding_id, retracted_at=at
            )
            # The personal content goes: the recipient deletes it, and so do we.
            await repository.update_delivery(
                delivery.delivery_id,
                status="retracted",
                updated_at=at,
                message=retraction.model_dump_json(),
                status_note=None,
            )
            await add_message(
                uow,
                outbox,
                exchange=DELIVERIES_EXCHANGE,
                routing_key=delivery.org_id,
                message_type=MELDING_RETRACTED,
                body=retraction,
                message_id=f"retract:{delivery.delivery_id}",
                correlation_id=melding.melding_id,
                request_id=request_id,
                mandatory=True,
            )
            await announce_status(uow, delivery, "retracted", at, request_id=request_id)
            _audit(uow, "retract", delivery.delivery_id, bsn, request_id, outcome="consent-withdrawn")
            retracted += 1
    return retracted


async def announce_status(uow: UnitOfWork, delivery: Any, status: str, at: datetime, *, request_id: str | None) -> None:
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
    await add_message(
        uow,
        outbox,
        exchange=EVENTS_EXCHANGE,
        routing_key=DELIVERY_STATUS_CHANGED,
        message_type=DELIVERY_STATUS_CHANGED,
        body=event,
        correlation_id=delivery.melding_id,
        request_id=request_id,
    )
