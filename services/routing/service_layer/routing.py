"""Routing a melding: postcode -> gemeente -> its route map -> for each requested type the serving
organisation -> a delivery carrying that recipient's share. The decision is the domain's
(domain/planning.py::plan_routing); this module loads what it needs and carries the plan out.

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
from dataclasses import dataclass
from datetime import date, datetime

import structlog
from pydantic import BaseModel

from services.routing.domain.model import (
    Candidate,
    DeliveryRecord,
    RoutedMelding,
    RoutingStatus,
    WhenStopped,
    types_for_an_operator,
    when_stopped,
)
from services.routing.domain.planning import (
    MeldingToRoute,
    PlannedDelivery,
    RoutingPlan,
    Waiting,
    plan_routing,
    types_needing_candidates,
    why_waiting,
)
from services.routing.domain.route_map import in_force
from services.routing.service_layer.ports import RoutingTransaction
from shared.auth import Principal
from shared.clock import now, today_nl
from shared.contracts.consent import ConsentCheckResult
from shared.contracts.melding import (
    DELIVERY_OVERDUE,
    DELIVERY_STATUS_CHANGED,
    MELDING_DELIVERED,
    MELDING_NOT_DELIVERED,
    MELDING_REMINDER,
    MELDING_RETRACTED,
    MELDING_ROUTED,
    MELDING_UNROUTABLE,
    DeliveryOverdue,
    DeliverySender,
    DeliveryStatusChanged,
    Gemeente,
    MeldingAccepted,
    MeldingDelivered,
    MeldingDeliveredThin,
    MeldingNotDelivered,
    MeldingReminder,
    MeldingRetracted,
    MeldingRouted,
    MeldingUnroutable,
    RecipientRef,
    RoutedDelivery,
    SkippedType,
)
from shared.contracts.vocabulary import DeliveryStatus
from shared.db import is_database_unavailable
from shared.identifiers import postcode_area
from shared.messaging.topology import EVENTS_EXCHANGE
from shared.ports import ConsentPort

log = structlog.get_logger(__name__)

# Who acts when routing delivers or retracts on its own: the platform, not a person (NEN 7513 names it).
ROUTING = Principal(sub="routing-service", org_id="kansrijk-platform", org_type="service", scopes=frozenset())


async def check_consent(client: ConsentPort, accepted: MeldingAccepted, request_id: str | None) -> ConsentCheckResult:
    return await client.check(
        consent_id=accepted.consent.id,
        bsn=accepted.content.patient.bsn,
        org_id=accepted.sender.org_id,
        recipient_types=list(accepted.content.recipient_types),
        risk_domains=list(accepted.content.risk_domains),
        request_id=request_id,
    )


@dataclass(frozen=True)
class Routed:
    """What routing a melding now came to: its status and, while a type still waits, why (and where)."""

    status: RoutingStatus
    waiting: tuple[Waiting, ...] = ()
    gemeente: Gemeente | None = None

    @property
    def reason(self) -> str | None:
        """In words, for an operator: why it still waits (None unless it does)."""
        if self.status is not RoutingStatus.waiting:
            return None
        return why_waiting(self.waiting, (self.gemeente.code, self.gemeente.name) if self.gemeente else None)


async def route(
    uow: RoutingTransaction,
    melding_id: str,
    answer: ConsentCheckResult | None,
    *,
    request_id: str | None,
    new: MeldingAccepted | None = None,
    chosen: dict[str, Candidate] | None = None,
) -> RoutingStatus:
    """Route one melding now (see `route_explained`); returns its routing status."""
    routed = await route_explained(uow, melding_id, answer, request_id=request_id, new=new, chosen=chosen)
    return routed.status


async def route_explained(
    uow: RoutingTransaction,
    melding_id: str,
    answer: ConsentCheckResult | None,
    *,
    request_id: str | None,
    new: MeldingAccepted | None = None,
    chosen: dict[str, Candidate] | None = None,
) -> Routed:
    """Route one melding now, as far as the consent, the route map and the directory allow: load what the
    decision needs, let the domain plan it (domain/planning.py::plan_routing), persist the plan. Returns
    the melding's routing status and, if it still waits, why.

    `answer` is the consent service's, when it was asked (a melding that waited); routing's own record
    is consulted either way. `new`: the melding as this transaction just stored it (nothing to read back:
    status "new", no deliveries yet). `chosen`: an operator routes it again (after a return), naming the
    organisation per type or (empty) leaving it to the directory; without it, a type a recipient returned
    waits for the operator.
    """
    if new is None:
        consent_id = await uow.routing.consent_of(melding_id=melding_id)
        assert consent_id is not None
        # The lock first (also what a cancellation, a withdrawal and a return take), then the melding as the
        # lock leaves it: a return committed meanwhile is among its returns.
        consent = await uow.routing.lock_consent(consent_id)
        melding = await uow.routing.melding(melding_id)
        assert melding is not None
        if melding.accepted is None:  # withdrawn, not delivered, or purged by retention: it never goes out
            return Routed(melding.status)
        accepted, status, reported_unroutable = melding.accepted, melding.status, melding.unroutable_types
        returned, never_again = melding.returned, melding.never_again()
    else:
        consent = await uow.routing.lock_consent(new.consent.id)
        accepted, status, reported_unroutable, returned, never_again = new, RoutingStatus.new, (), (), {}
    if not status.routable:
        return Routed(status)
    cancelled = await uow.routing.cancellation(melding_id) is not None
    delivered = [] if new is not None else await uow.routing.deliveries_of(melding_id)
    live = [d for d in delivered if d.status is not DeliveryStatus.returned]
    today = today_nl()
    pc4 = postcode_area(accepted.content.patient.address.postcode)
    gemeente = await uow.directory.gemeente_for_pc4(pc4)
    versions = await uow.directory.route_maps_in_force(gemeente.code, today) if gemeente else []
    route_map = in_force(versions, today)
    melding_to_route = _to_route(accepted)
    delivered_types = {d.recipient_type for d in live}
    if chosen is None:  # a returned type waits for an operator
        delivered_types |= types_for_an_operator(returned)
    candidates = {
        recipient_type: await uow.directory.candidates(
            org_type=recipient_type, pc4=pc4, gemeente_code=gemeente.code if gemeente else None
        )
        for recipient_type in types_needing_candidates(melding_to_route, route_map, delivered_types)
    }
    plan = plan_routing(
        melding_to_route,
        withdrawn=consent.withdrawn_at is not None,
        consent_answer=answer.reason if answer is not None and not answer.allowed else None,
        route_map=route_map,
        candidates=candidates,
        delivered_types=delivered_types,
        today=today,
        cancelled=cancelled,
        never_again=never_again,
        chosen=chosen,
    )
    where = Gemeente(code=gemeente.code, name=gemeente.name) if gemeente else None
    await _carry_out(
        uow, plan, accepted, where, delivered=live, reported_unroutable=reported_unroutable, request_id=request_id
    )
    return Routed(plan.status, plan.waiting, where)


def _to_route(accepted: MeldingAccepted) -> MeldingToRoute:
    consent = accepted.consent
    return MeldingToRoute(
        recipient_types=tuple(accepted.content.recipient_types),
        risk_domains=tuple(accepted.content.risk_domains),
        urgency=accepted.content.urgency,
        consent_valid_until=consent.valid_until,
        consent_recipient_types=tuple(consent.recipient_types),
        consent_risk_domains=tuple(consent.risk_domains) if consent.risk_domains is not None else None,
    )


async def _carry_out(
    uow: RoutingTransaction,
    plan: RoutingPlan,
    accepted: MeldingAccepted,
    gemeente: Gemeente | None,
    *,
    delivered: list[DeliveryRecord],
    reported_unroutable: tuple[str, ...],
    request_id: str | None,
) -> None:
    """Persist a plan: the deliveries and their messages, the melding's new state, and what the sender is told."""
    melding_id, at = accepted.melding_id, now()
    skipped = [SkippedType(recipient_type=s.recipient_type, reason=s.reason.value) for s in plan.skipped]
    if plan.status in (RoutingStatus.withdrawn, RoutingStatus.cancelled):
        await uow.routing.close(melding_id, plan.status, at)
        return
    if plan.status is RoutingStatus.not_delivered:
        assert plan.not_delivered_reason is not None
        if plan.consent_refusal is not None:
            # The consent no longer allows it (expired since intake): nothing goes out.
            log.warning("routing_refused_by_consent", melding_id=melding_id, reason=plan.consent_refusal)
            uow.audit.record(
                ROUTING,
                "deliver",
                "melding",
                melding_id,
                patient_bsn=accepted.content.patient.bsn,
                request_id=request_id,
                outcome=f"refused:{plan.consent_refusal}",
                consent_checked=False,
            )
        await uow.routing.close(
            melding_id,
            RoutingStatus.not_delivered,
            at,
            reason=plan.not_delivered_reason,
            skipped=plan.skipped,
            gemeente_code=gemeente.code if gemeente else None,
        )
        not_delivered = MeldingNotDelivered(
            melding_id=melding_id, gemeente=gemeente, reason=plan.not_delivered_reason.value, skipped_types=skipped
        )
        await _announce(uow, MELDING_NOT_DELIVERED, not_delivered, melding_id, request_id)
        return

    made = [await _deliver(uow, planned, accepted, gemeente, at, request_id) for planned in plan.deliveries]
    await uow.routing.set_routed(
        melding_id,
        plan.status,
        unroutable_types=plan.unroutable,
        skipped=plan.skipped,
        gemeente_code=gemeente.code if gemeente else None,
        at=at,
    )
    if made:
        earlier = [_routed(d) for d in delivered]
        routed = MeldingRouted(
            melding_id=melding_id,
            gemeente=gemeente,
            deliveries=earlier + made,
            unroutable_types=list(plan.unroutable),
            skipped_types=skipped,
        )
        await _announce(uow, MELDING_ROUTED, routed, melding_id, request_id)
    elif not delivered and plan.unroutable != reported_unroutable:
        # Said once per outcome: a melding that keeps waiting is not announced again at every retry.
        waiting = MeldingUnroutable(
            melding_id=melding_id, gemeente=gemeente, unroutable_types=list(plan.unroutable), skipped_types=skipped
        )
        await _announce(uow, MELDING_UNROUTABLE, waiting, melding_id, request_id)


async def _deliver(
    uow: RoutingTransaction,
    planned: PlannedDelivery,
    accepted: MeldingAccepted,
    gemeente: Gemeente | None,
    at: datetime,
    request_id: str | None,
) -> RoutedDelivery:
    """One delivery: its message carries only the recipient's share (the admitted risk domains, the note only
    where allowed), and so does routing's stored copy. Staged on the organisation's queue, audited."""
    content, melding_id = accepted.content, accepted.melding_id
    delivery = RoutedDelivery(
        delivery_id=str(uuid.uuid4()),
        org_id=planned.org_id,
        org_name=planned.org_name,
        recipient_type=planned.recipient_type,
        risk_domains=list(planned.risk_domains),
        contact_due_at=at + planned.contact_deadline,
    )
    message = MeldingDelivered(
        delivery_id=delivery.delivery_id,
        melding_id=melding_id,
        sent_at=at,
        recipient=RecipientRef(org_id=planned.org_id, type=planned.recipient_type),
        gemeente=gemeente,
        patient=content.patient,
        pregnancy=content.pregnancy,
        risk_domains=list(planned.risk_domains),
        urgency=content.urgency,
        note=content.note if planned.note else None,
        sender=DeliverySender(
            org_id=accepted.sender.org_id, org_type=accepted.sender.org_type, contact=content.contact
        ),
        consent=accepted.consent,
        related_deliveries=await uow.routing.related_deliveries(accepted, planned.org_id),
    )
    thin = MeldingDeliveredThin(
        delivery_id=delivery.delivery_id,
        melding_id=melding_id,
        sent_at=at,
        recipient=message.recipient,
        gemeente_code=gemeente.code if gemeente else None,
        urgency=content.urgency,
        href=f"/v1/deliveries/{delivery.delivery_id}",
    )
    await uow.routing.add_delivery(
        DeliveryRecord(
            delivery_id=delivery.delivery_id,
            melding_id=melding_id,
            org_id=planned.org_id,
            org_name=planned.org_name,
            recipient_type=planned.recipient_type,
            status=DeliveryStatus.queued,
            message=message.model_dump(mode="json"),
            created_at=at,
            updated_at=at,
            contact_due_at=delivery.contact_due_at,
        )
    )
    # A thin organisation's queue carries no personal data; the log keeps the thin form either way.
    queued = thin if planned.delivery_mode == "thin" else message
    _to_recipient(uow, planned.org_id, MELDING_DELIVERED, queued, delivery.delivery_id, request_id, kept=thin)
    uow.audit.record(
        ROUTING,
        "deliver",
        "delivery",
        delivery.delivery_id,
        patient_bsn=content.patient.bsn,
        request_id=request_id,
        consent_checked=True,
    )
    return delivery


@dataclass(frozen=True)
class Answer:
    """What a recipient says with its status: the day contact was made, what came of it, why it sent it back."""

    contact_at: date | None = None
    outcome: str | None = None
    returned_reason: str | None = None


def _routed(delivery: DeliveryRecord) -> RoutedDelivery:
    return RoutedDelivery(
        delivery_id=delivery.delivery_id,
        org_id=delivery.org_id,
        org_name=delivery.org_name,
        recipient_type=delivery.recipient_type,
        risk_domains=list(delivery.message.get("risk_domains") or []),
        contact_due_at=delivery.contact_due_at,
    )


async def mark_overdue(uow: RoutingTransaction, at: datetime, *, limit: int = 100) -> int:
    """Deliveries past their contact deadline without contact become overdue: a `melding.reminder` on the
    recipient's queue (message id `reminder-<delivery_id>`), `delivery.overdue` to the sender. Marked in the
    same transaction, so each delivery is reminded once, whichever replica runs this. Returns how many."""
    due = await uow.routing.lock_newly_overdue(at, limit)
    for delivery in due:
        assert delivery.contact_due_at is not None
        await uow.routing.mark_overdue(delivery.delivery_id, at)
        reminder = MeldingReminder(
            delivery_id=delivery.delivery_id, melding_id=delivery.melding_id, contact_due_at=delivery.contact_due_at
        )
        _to_recipient(uow, delivery.org_id, MELDING_REMINDER, reminder, f"reminder-{delivery.delivery_id}", None)
        overdue = DeliveryOverdue(
            melding_id=delivery.melding_id, delivery=_routed(delivery), contact_due_at=delivery.contact_due_at, at=at
        )
        await _announce(uow, DELIVERY_OVERDUE, overdue, delivery.melding_id, None)
    return len(due)


def _to_recipient(
    uow: RoutingTransaction,
    org_id: str,
    message_type: str,
    message: MeldingDelivered | MeldingDeliveredThin | MeldingRetracted | MeldingReminder,
    message_id: str,
    request_id: str | None,
    *,
    kept: MeldingDeliveredThin | None = None,
) -> None:
    """Stage a message for an organisation's queue under a stable id (recipients drop duplicates by it); it
    is numbered when the transaction commits (service_layer/recipient_queue.py)."""
    uow.recipients.stage(
        org_id,
        message_type,
        message,
        message_id=message_id,
        delivery_id=message.delivery_id,
        correlation_id=message.melding_id,
        request_id=request_id,
        kept=kept,
    )


async def _announce(
    uow: RoutingTransaction, message_type: str, event: BaseModel, melding_id: str, request_id: str | None
) -> None:
    """Stage an event on the events exchange, published with the transaction (the outbox): the one way routing
    tells the others what happened to a melding."""
    await uow.outbox.add(
        exchange=EVENTS_EXCHANGE,
        routing_key=message_type,
        message_type=message_type,
        body=event,
        correlation_id=melding_id,
        request_id=request_id,
    )


@dataclass(frozen=True)
class Withdrawal:
    """What a withdrawal did: how many deliveries it retracted, and the meldingen it could not stop."""

    retracted: int
    not_stopped: tuple[str, ...] = ()


async def withdraw_consent(uow: RoutingTransaction, consent_id: str, *, request_id: str | None) -> Withdrawal:
    """Nothing more goes out under this consent; every live delivery made under it is retracted.

    Each melding is stopped in a savepoint of its own: one that cannot be stopped (a defect) is rolled back
    alone, logged and returned, and never holds up the others of the withdrawal."""
    await uow.routing.lock_consent(consent_id)
    at = now()
    await uow.routing.mark_consent_withdrawn(consent_id, at)
    retracted, not_stopped = 0, []
    for melding in await uow.routing.meldingen_of_consent(consent_id):
        try:
            async with uow.savepoint():
                stopped = await _stop(uow, melding, RoutingStatus.withdrawn, at, request_id=request_id)
        except Exception as exc:  # isolated: the others of this withdrawal go on
            if is_database_unavailable(exc):
                raise  # not this melding's fault: the whole withdrawal waits and is tried again
            log.error("melding_not_stopped", melding_id=melding.melding_id, error_type=type(exc).__name__)
            not_stopped.append(melding.melding_id)
            continue
        retracted += stopped
    return Withdrawal(retracted, tuple(not_stopped))


async def cancel_melding(
    uow: RoutingTransaction, melding_id: str, consent_id: str, reason: str, *, request_id: str | None
) -> int:
    """The sender cancelled the melding: nothing more goes out, and what went out is retracted with its
    reason. It may arrive before the melding (another queue): then routing finds it when the melding comes."""
    await uow.routing.lock_consent(consent_id)  # what routing of this melding locks too
    at = now()
    if not await uow.routing.record_cancellation(melding_id, reason, at):
        return 0
    melding = await uow.routing.melding(melding_id)
    if melding is None:
        return 0
    return await _stop(uow, melding, RoutingStatus.cancelled, at, request_id=request_id, cancel_reason=reason)


async def _stop(
    uow: RoutingTransaction,
    melding: RoutedMelding,
    status: RoutingStatus,
    at: datetime,
    *,
    request_id: str | None,
    cancel_reason: str | None = None,
) -> int:
    """Close the melding (its personal data goes) and retract every live delivery made of it; a returned one
    stays returned and loses its content (domain/model.py::when_stopped). Returns how many were retracted.

    What is written comes first, what is staged for the commit (queue messages, audit records) last: a
    failure half-way, rolled back to the caller's savepoint, leaves nothing of this melding staged."""
    bsn = melding.accepted.content.patient.bsn if melding.accepted else None
    await uow.routing.close(melding.melding_id, status, at)
    retracted: list[tuple[DeliveryRecord, MeldingRetracted]] = []
    for delivery in await uow.routing.deliveries_of(melding.melding_id):
        action = when_stopped(delivery.status)
        if action is WhenStopped.clear:
            await uow.routing.clear_delivery(delivery, at)
        if action is not WhenStopped.retract:
            continue
        retraction = MeldingRetracted(
            delivery_id=delivery.delivery_id,
            melding_id=melding.melding_id,
            retracted_at=at,
            reason="cancelled-by-sender" if cancel_reason else "consent-withdrawn",
            cancel_reason=cancel_reason,
        )
        # The personal content goes: the recipient deletes it, and so do we.
        await uow.routing.retract_delivery(delivery.delivery_id, retraction.model_dump(mode="json"), at)
        await announce_status(uow, delivery, DeliveryStatus.retracted, at, request_id=request_id)
        retracted.append((delivery, retraction))
    for delivery, retraction in retracted:
        _to_recipient(
            uow, delivery.org_id, MELDING_RETRACTED, retraction, f"retract:{delivery.delivery_id}", request_id
        )
        uow.audit.record(
            ROUTING,
            "retract",
            "delivery",
            delivery.delivery_id,
            patient_bsn=bsn,
            request_id=request_id,
            outcome=retraction.reason,
        )
    return len(retracted)


async def announce_status(
    uow: RoutingTransaction,
    delivery: DeliveryRecord,
    status: DeliveryStatus,
    at: datetime,
    *,
    request_id: str | None,
    answer: Answer | None = None,
) -> None:
    """Tell the melding service (and so the sender) where a delivery stands now, with the recipient's answer
    so far (a retraction too: it may be handled before the contact it follows)."""
    answer = answer or Answer(
        contact_at=delivery.contact_at, outcome=delivery.outcome, returned_reason=delivery.returned_reason
    )
    event = DeliveryStatusChanged(
        melding_id=delivery.melding_id,
        status=status,
        at=at,
        delivery=_routed(delivery),
        contact_at=answer.contact_at,
        outcome=answer.outcome,
        returned_reason=answer.returned_reason,
    )
    await _announce(uow, DELIVERY_STATUS_CHANGED, event, delivery.melding_id, request_id)
