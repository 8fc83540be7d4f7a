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
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import structlog
from pydantic import BaseModel

from services.routing.domain.model import (
    Candidate,
    CandidateQuery,
    ConsentState,
    DeliveryRecord,
    PatientDelivery,
    Returned,
    RoutedMelding,
    RoutingOutcome,
    RoutingStatus,
    WhenStopped,
    related_deliveries,
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
from services.routing.domain.route_map import RouteMap, in_force
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


@dataclass(frozen=True)
class RouteRequest:
    """One melding to route now. `answer`: the consent service's, when it was asked (a melding that waited);
    routing's own record is consulted either way. `new`: the melding as this transaction just stored it
    (nothing to read back: status "new", no deliveries yet). `chosen`: an operator routes it again (after a
    return), naming the organisation per type or (empty) leaving it to the directory; without it, a type a
    recipient returned waits for the operator. `traced`: the span what it causes is staged in (the consumed
    message's)."""

    melding_id: str
    answer: ConsentCheckResult | None = None
    request_id: str | None = None
    new: MeldingAccepted | None = None
    chosen: dict[str, Candidate] | None = None
    traced: Callable[[], AbstractContextManager[None]] = nullcontext


@dataclass(frozen=True)
class _Routable:
    """A melding that may go out, with what its plan needs of its past."""

    request: RouteRequest
    accepted: MeldingAccepted
    consent: ConsentState
    reported_unroutable: tuple[str, ...] = ()
    returned: tuple[Returned, ...] = ()
    never_again: dict[str, set[str]] = field(default_factory=dict)
    delivered: tuple[DeliveryRecord, ...] = ()  # live ones: not returned


@dataclass(frozen=True)
class _Planned:
    routable: _Routable
    plan: RoutingPlan
    gemeente: Gemeente | None


async def route(uow: RoutingTransaction, requests: Sequence[RouteRequest]) -> list[Routed]:
    """Route meldingen now, each as far as the consent, the route map and the directory allow: load what the
    decisions need — for all of them at once, a statement per kind of record (`= ANY`), not per melding — let
    the domain plan each (domain/planning.py::plan_routing), persist the plans together. Returns, in the
    requests' order, each melding's routing status and, if it still waits, why. One melding is a batch of one.
    """
    routed: dict[str, Routed] = {}
    routable = await _routable(uow, requests, routed)
    planned = await _plan(uow, routable)
    await _carry_out(uow, planned)
    for p in planned:
        routed[p.routable.request.melding_id] = Routed(p.plan.status, p.plan.waiting, p.gemeente)
    return [routed[r.melding_id] for r in requests]


async def _routable(
    uow: RoutingTransaction, requests: Sequence[RouteRequest], routed: dict[str, Routed]
) -> list[_Routable]:
    """The requests' meldingen that may go out, under their consents' locks; the others' status in `routed`."""
    stored_ids = [r.melding_id for r in requests if r.new is None]
    consent_of = await uow.routing.consents_of(stored_ids)
    # The locks first (also what a cancellation, a withdrawal and a return take), then the meldingen as the
    # locks leave them: a return committed meanwhile is among their returns.
    consents = await uow.routing.lock_consents(
        {r.new.consent.id for r in requests if r.new is not None} | set(consent_of.values())
    )
    stored = await uow.routing.meldingen_by_id(stored_ids)
    delivered = await uow.routing.deliveries_of_meldingen(stored_ids)
    out: list[_Routable] = []
    for request in requests:
        if request.new is not None:
            out.append(_Routable(request, request.new, consents[request.new.consent.id]))
            continue
        melding = stored[request.melding_id]
        # None: withdrawn, not delivered, or purged by retention: it never goes out.
        if melding.accepted is None or not melding.status.routable:
            routed[request.melding_id] = Routed(melding.status)
            continue
        live = tuple(d for d in delivered.get(request.melding_id, []) if d.status is not DeliveryStatus.returned)
        out.append(
            _Routable(
                request,
                melding.accepted,
                consents[consent_of[request.melding_id]],
                melding.unroutable_types,
                melding.returned,
                melding.never_again(),
                live,
            )
        )
    return out


async def _plan(uow: RoutingTransaction, routable: list[_Routable]) -> list[_Planned]:
    if not routable:
        return []
    cancelled = await uow.routing.cancelled_among([r.request.melding_id for r in routable])
    today = today_nl()
    pc4 = {r.request.melding_id: postcode_area(r.accepted.content.patient.address.postcode) for r in routable}
    gemeenten = await uow.directory.gemeenten_for_pc4s(set(pc4.values()))
    route_maps = await uow.directory.route_maps_in_force_for({g.code for g in gemeenten.values()}, today)
    asked: dict[str, tuple[MeldingToRoute, RouteMap, set[str], list[CandidateQuery]]] = {}
    for r in routable:
        gemeente = gemeenten.get(pc4[r.request.melding_id])
        route_map = in_force(route_maps.get(gemeente.code, []) if gemeente else [], today)
        melding_to_route = _to_route(r.accepted)
        delivered_types = {d.recipient_type for d in r.delivered}
        if r.request.chosen is None:  # a returned type waits for an operator
            delivered_types |= types_for_an_operator(r.returned)
        queries = [
            (recipient_type, pc4[r.request.melding_id], gemeente.code if gemeente else None)
            for recipient_type in types_needing_candidates(melding_to_route, route_map, delivered_types)
        ]
        asked[r.request.melding_id] = (melding_to_route, route_map, delivered_types, queries)
    candidates = await uow.directory.candidates_for({q for *_, queries in asked.values() for q in queries})
    planned = []
    for r in routable:
        to_route, its_route_map, types_done, queries = asked[r.request.melding_id]
        answer = r.request.answer
        plan = plan_routing(
            to_route,
            withdrawn=r.consent.withdrawn_at is not None,
            consent_answer=answer.reason if answer is not None and not answer.allowed else None,
            route_map=its_route_map,
            candidates={q[0]: candidates[q] for q in queries},
            delivered_types=types_done,
            today=today,
            cancelled=r.request.melding_id in cancelled,
            never_again=r.never_again,
            chosen=r.request.chosen,
        )
        gemeente = gemeenten.get(pc4[r.request.melding_id])
        planned.append(_Planned(r, plan, Gemeente(code=gemeente.code, name=gemeente.name) if gemeente else None))
    return planned


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


async def _carry_out(uow: RoutingTransaction, planned: list[_Planned]) -> None:
    """Persist the plans: the deliveries and their messages, the meldingen's new states, and what the senders
    are told — the deliveries, the states and the announcements each in one statement for all of them."""
    at = now()
    going = [p for p in planned if p.plan.deliveries]
    earlier = await uow.routing.patient_deliveries(
        [p.routable.accepted for p in going], {d.org_id for p in going for d in p.plan.deliveries}
    )
    made_now: dict[str, list[PatientDelivery]] = {}  # by BSN: this batch's deliveries, not yet stored
    records: list[DeliveryRecord] = []
    outcomes: list[RoutingOutcome] = []
    announcements: list[dict[str, Any]] = []
    for p in planned:
        with p.routable.request.traced():
            if p.plan.status in (RoutingStatus.withdrawn, RoutingStatus.cancelled, RoutingStatus.not_delivered):
                await _close(uow, p, at)
                continue
            accepted, bsn = p.routable.accepted, p.routable.accepted.content.patient.bsn
            made = []
            for planned_delivery in p.plan.deliveries:
                patient = [*earlier.get(accepted.melding_id, []), *made_now.get(bsn, [])]
                related = related_deliveries(patient, accepted, planned_delivery.org_id)
                record, delivery = _deliver(uow, p, planned_delivery, related, at)
                records.append(record)
                made.append(delivery)
                made_now.setdefault(bsn, []).append(
                    PatientDelivery(
                        record.delivery_id,
                        record.org_id,
                        accepted.melding_id,
                        accepted.sender.org_id,
                        accepted.content.pregnancy.expected_due_date,
                    )
                )
            outcomes.append(
                RoutingOutcome(
                    accepted.melding_id,
                    p.plan.status,
                    p.plan.unroutable,
                    p.plan.skipped,
                    p.gemeente.code if p.gemeente else None,
                )
            )
            if (announced := _announcement(p, made)) is not None:
                message_type, event = announced
                announcements.append(
                    _event_row(uow, message_type, event, accepted.melding_id, p.routable.request.request_id)
                )
    await uow.routing.add_deliveries(records)
    await uow.routing.set_routed(outcomes, at)
    await uow.outbox.add_rows(announcements)


async def _close(uow: RoutingTransaction, p: _Planned, at: datetime) -> None:
    """A melding that goes nowhere (withdrawn, cancelled, not to be delivered): closed, and the sender told."""
    plan, accepted, request = p.plan, p.routable.accepted, p.routable.request
    melding_id, gemeente = accepted.melding_id, p.gemeente
    if plan.status is not RoutingStatus.not_delivered:
        await uow.routing.close(melding_id, plan.status, at)
        return
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
            request_id=request.request_id,
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
        melding_id=melding_id,
        gemeente=gemeente,
        reason=plan.not_delivered_reason.value,
        skipped_types=_skipped_types(plan),
    )
    await _announce(uow, MELDING_NOT_DELIVERED, not_delivered, melding_id, request.request_id)


def _skipped_types(plan: RoutingPlan) -> list[SkippedType]:
    return [SkippedType(recipient_type=s.recipient_type, reason=s.reason.value) for s in plan.skipped]


def _announcement(p: _Planned, made: list[RoutedDelivery]) -> tuple[str, BaseModel] | None:
    """What the sender is told of a routing attempt that went on: where it went, or (once per outcome: a
    melding that keeps waiting is not announced again at every retry) that it waits."""
    plan, melding_id, delivered = p.plan, p.routable.accepted.melding_id, p.routable.delivered
    if made:
        return MELDING_ROUTED, MeldingRouted(
            melding_id=melding_id,
            gemeente=p.gemeente,
            deliveries=[_routed(d) for d in delivered] + made,
            unroutable_types=list(plan.unroutable),
            skipped_types=_skipped_types(plan),
        )
    if not delivered and plan.unroutable != p.routable.reported_unroutable:
        return MELDING_UNROUTABLE, MeldingUnroutable(
            melding_id=melding_id,
            gemeente=p.gemeente,
            unroutable_types=list(plan.unroutable),
            skipped_types=_skipped_types(plan),
        )
    return None


def _deliver(
    uow: RoutingTransaction, p: _Planned, planned: PlannedDelivery, related: list[str], at: datetime
) -> tuple[DeliveryRecord, RoutedDelivery]:
    """One delivery: its message carries only the recipient's share (the admitted risk domains, the note only
    where allowed), and so does routing's stored copy. Staged on the organisation's queue, audited; the
    caller stores the record."""
    accepted, gemeente, request_id = p.routable.accepted, p.gemeente, p.routable.request.request_id
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
        related_deliveries=related,
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
    record = DeliveryRecord(
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
    return record, delivery


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
    await uow.outbox.add_rows([_event_row(uow, message_type, event, melding_id, request_id)])


def _event_row(
    uow: RoutingTransaction, message_type: str, event: BaseModel, melding_id: str, request_id: str | None
) -> dict[str, Any]:
    """An event for the events exchange as the outbox keeps it (`_announce`; a batch adds its rows at once)."""
    return uow.outbox.row(
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
