"""Routing's queries: what recipients and operators read — their deliveries and queue, the dead letters, the
gauges operators alert on. Reading personal data is audited. (The directory's are directory.py's, the
operators' lists operations.py's.)"""

from __future__ import annotations

import json
from typing import Any

from services.routing.config import PublicBroker
from services.routing.domain.model import (
    DeadLetter,
    DeliveryRecord,
    Organisation,
    check_acting_as,
    message_again,
)
from services.routing.service_layer.ports import FullTransactionFactory, RoutingTransaction
from services.routing.service_layer.views import Page, RecipientMessagesView, RecipientQueueView
from shared.auth import Principal
from shared.contracts.vocabulary import DeliveryStatus
from shared.errors import Forbidden, NotFound
from shared.messaging.topology import DELIVERIES_EXCHANGE, organisation_queue
from shared.observability import Metrics
from shared.pagination import encode_cursor


async def list_deliveries(
    unit_of_work: FullTransactionFactory,
    *,
    principal: Principal,
    status: DeliveryStatus | None,
    cursor: str | None,
    limit: int,
    request_id: str | None,
) -> Page[dict[str, Any]]:
    """The organisation's deliveries, newest first, each as its queue message (its stored document)."""
    async with unit_of_work() as uow:
        await acting_as_registered(uow, principal, "read", request_id)
        found = await uow.routing.deliveries_page(org_id=principal.org_id, status=status, cursor=cursor, limit=limit)
        more = len(found) > limit
        found = found[:limit]
        for d in found:
            uow.audit.record(principal, "read", "delivery", d.delivery_id, patient_bsn=d.bsn, request_id=request_id)
        await uow.commit()
    next_cursor = encode_cursor(found[-1].created_at, found[-1].delivery_id) if more and found else None
    return Page([d.document() for d in found], next_cursor)


async def acting_as_registered(
    uow: RoutingTransaction,
    principal: Principal,
    action: str,
    request_id: str | None,
    delivery_id: str | None = None,
) -> Organisation | None:
    """The caller's organisation as the directory has it, if it acts as that kind of organisation (403
    otherwise, audited: a token with another's type is a probe worth tracing)."""
    organisation = await uow.directory.organisation(principal.org_id)
    try:
        check_acting_as(organisation.type if organisation else None, principal.org_type)
    except Forbidden:
        uow.audit.refuse(principal, action, "delivery", delivery_id, request_id=request_id, outcome="wrong-org-type")
        raise
    return organisation


async def own_delivery(
    uow: RoutingTransaction,
    principal: Principal,
    delivery_id: str,
    action: str,
    request_id: str | None,
    *,
    for_update: bool = False,
) -> DeliveryRecord:
    delivery = await uow.routing.delivery(delivery_id, for_update=for_update)
    if delivery is None or delivery.org_id != principal.org_id:
        # Audited on its own (this transaction rolls back): probing for others' deliveries is traceable.
        uow.audit.refuse(principal, action, "delivery", delivery_id, request_id=request_id, outcome="not-found")
        raise NotFound("no delivery with this id for your organisation")
    return delivery


async def recipient_queue(
    unit_of_work: FullTransactionFactory, *, principal: Principal, broker: PublicBroker, request_id: str | None = None
) -> RecipientQueueView:
    """The caller's organisation as the directory knows it, and the queue its deliveries wait on (on `broker`)."""
    async with unit_of_work() as uow:
        organisation = await acting_as_registered(uow, principal, "read", request_id)
    if organisation is None:
        raise NotFound(
            "your organisation is not in the platform's directory: ask the coalition's functional "
            "administrator to register it (PUT /v1/organisations/{org_id})"
        )
    return RecipientQueueView(
        org_id=organisation.org_id,
        name=organisation.name,
        type=organisation.type,
        active=organisation.active,
        queue=organisation_queue(organisation.org_id),
        exchange=DELIVERIES_EXCHANGE,
        routing_key=organisation.org_id,
        broker=broker,
    )


async def recipient_messages(
    unit_of_work: FullTransactionFactory,
    *,
    principal: Principal,
    after_sequence: int,
    limit: int,
    request_id: str | None,
) -> RecipientMessagesView:
    """The caller's queue again from `after_sequence` on, each read audited as a delivery's."""
    async with unit_of_work() as uow:
        await acting_as_registered(uow, principal, "read", request_id)
        found = await uow.routing.recipient_messages_after(principal.org_id, after_sequence, limit)
        items = []
        for logged, delivery in found:
            item = message_again(logged, delivery)
            bsn = (item.get("patient") or {}).get("bsn")
            uow.audit.record(principal, "read", "delivery", logged.delivery_id, patient_bsn=bsn, request_id=request_id)
            items.append(item)
        await uow.commit()
    return RecipientMessagesView(items, found[-1][0].sequence if found else after_sequence)


async def get_delivery(
    unit_of_work: FullTransactionFactory, *, principal: Principal, delivery_id: str, request_id: str | None
) -> dict[str, Any]:
    async with unit_of_work() as uow:
        await acting_as_registered(uow, principal, "read", request_id, delivery_id)
        delivery = await own_delivery(uow, principal, delivery_id, "read", request_id)
        uow.audit.record(principal, "read", "delivery", delivery_id, patient_bsn=delivery.bsn, request_id=request_id)
        await uow.commit()
        return delivery.document()


async def list_dead_letters(
    unit_of_work: FullTransactionFactory,
    *,
    principal: Principal,
    include_replayed: bool,
    limit: int,
    request_id: str | None,
) -> list[DeadLetter]:
    """Dead letters carry whole messages (personal data among them): handing them out is an audited export."""
    async with unit_of_work() as uow:
        letters = await uow.routing.dead_letters(include_replayed=include_replayed, limit=limit)
        for letter in letters:
            uow.audit.record(
                principal, "export", "dead_letter", letter.id, patient_bsn=_bsn_in(letter.body), request_id=request_id
            )
        await uow.commit()
        return letters


def _bsn_in(body: str) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    patient = document.get("patient") or (document.get("content") or {}).get("patient") or {}
    bsn = patient.get("bsn") if isinstance(patient, dict) else None
    return bsn if isinstance(bsn, str) and len(bsn) == 9 and bsn.isdigit() else None


async def report_gauges(unit_of_work: FullTransactionFactory, metrics: Metrics) -> None:
    """Set routing's gauges for /metrics: meldingen waiting for a recipient, dead letters not replayed,
    deliveries past their contact deadline."""
    async with unit_of_work() as uow:
        waiting, dead = await uow.routing.count_waiting(), await uow.routing.count_dead_letters()
        overdue = await uow.routing.count_overdue()
    metrics.unroutable.labels(metrics.service).set(waiting)
    metrics.dead_letters.labels(metrics.service).set(dead)
    metrics.overdue.labels(metrics.service).set(overdue)
