"""Use cases of the melding service: intake, the sender's reads, and the events that keep its view current.

Each takes the service's unit of work (`unit_of_work.py`): its repository, outbox and audit log on one
transaction. The status rules are the domain's (`domain/model.py::Melding`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NoReturn

import structlog

from services.melding.domain.model import (
    AskConsentService,
    Delivery,
    GemeenteRef,
    HistoryEntry,
    Melding,
    MeldingStatus,
    RoutingReport,
    SkippedRef,
    bsn_in,
)
from services.melding.domain.patient_view import MeldingSeen, what_she_sees
from services.melding.service_layer.intake import CONSENT_REFUSALS, Intake, NewRequest, Sent, read_melding
from services.melding.service_layer.ports import FullTransactionFactory, MeldingTransaction, TransactionFactory
from services.melding.service_layer.views import MeldingView, MeldingViewPage
from shared.auth import PLATFORM, Principal
from shared.clock import now
from shared.contracts.events import ConsentHeartbeat, ConsentRecorded, ConsentWithdrawn
from shared.contracts.melding import (
    MELDING_CANCELLED,
    DeliveryOverdue,
    DeliveryStatusChanged,
    Gemeente,
    MeldingCancelled,
    MeldingContent,
    MeldingNotDelivered,
    MeldingRouted,
    MeldingUnroutable,
    RoutedDelivery,
    SkippedType,
)
from shared.contracts.vocabulary import DeliveryStatus
from shared.errors import ConsentRequired, NotFound
from shared.idempotency import IdempotentRequest
from shared.messaging.consumer import IncomingEvent
from shared.messaging.topology import EVENTS_EXCHANGE
from shared.pagination import encode_cursor
from shared.ports import ConsentPort

log = structlog.get_logger(__name__)


async def send_melding(
    intake: Intake,
    consent_client: ConsentPort,
    *,
    principal: Principal,
    consent_id: str,
    content: MeldingContent,
    idempotency_key: str | None,
    request_fingerprint: str,
    request_id: str | None,
    consent_max_lag: timedelta = timedelta(0),
) -> Sent:
    """Check consent, then store the melding and its `melding.accepted` event (`intake.py`: with the meldingen
    sent beside it, in one transaction).

    The check is this service's own, on its record of consents (decision 6), in the transaction that stores the
    melding, holding the consent's lock: while that record is current (its consent feed heard within
    `consent_max_lag`). A consent it has not heard of, or a yes on a record that is not current, is asked of the
    consent service instead, over HTTP and outside any transaction, and the melding is stored on its answer."""
    new = NewRequest(
        principal=principal,
        consent_id=consent_id,
        content=content,
        request=None
        if idempotency_key is None
        else IdempotentRequest(principal.org_id, idempotency_key, request_fingerprint, status_code=202),
        request_id=request_id,
        max_lag=consent_max_lag,
    )
    unit_of_work = intake.unit_of_work
    # A retry with its Idempotency-Key is answered with its first melding before anything is checked.
    stored = await intake.store(new)
    if isinstance(stored, AskConsentService):
        log.info("consent_asked", why=stored.why)  # nothing of the patient: why the record could not decide
        answer = await consent_client.check(
            consent_id=consent_id,
            bsn=content.patient.bsn,
            org_id=principal.org_id,
            recipient_types=list(content.recipient_types),
            risk_domains=list(content.risk_domains),
            request_id=request_id,
        )
        if not answer.allowed or answer.consent is None:
            await _refuse(unit_of_work, principal, content, request_id, reason=answer.reason or "refused")
        stored = await intake.store(replace(new, answer=answer.consent))
    if stored is None or isinstance(stored, AskConsentService):  # the latter never: with an answer none is asked
        await _refuse(unit_of_work, principal, content, request_id, reason="withdrawn")
    return stored


async def _refuse(
    unit_of_work: TransactionFactory,
    principal: Principal,
    content: MeldingContent,
    request_id: str | None,
    *,
    reason: str,
) -> NoReturn:
    """Audit a melding refused for its consent (nothing of it is stored), then raise 403 consent-required."""
    async with unit_of_work() as uow:
        uow.audit.refuse(
            principal,
            "create",
            "melding",
            None,
            patient_bsn=content.patient.bsn,
            request_id=request_id,
            outcome=f"refused:{reason}",
            consent_checked=False,
        )
    raise ConsentRequired(CONSENT_REFUSALS.get(reason, "the consent does not allow this melding"))


async def get_melding(
    unit_of_work: TransactionFactory, *, principal: Principal, melding_id: str, request_id: str | None
) -> MeldingView:
    """One melding of the caller's organisation, with its deliveries and history."""
    async with unit_of_work() as uow:
        record = await uow.meldingen.get(melding_id)
        # Another organisation's melding is answered exactly like a missing one.
        if record is None or record.sender.org_id != principal.org_id:
            # Audited on its own (this transaction rolls back): probing for others' meldingen is traceable.
            uow.audit.refuse(principal, "read", "melding", melding_id, request_id=request_id, outcome="not-found")
            raise NotFound("no melding with this id for your organisation")
        view = await read_melding(uow, melding_id)
        uow.audit.record(principal, "read", "melding", melding_id, patient_bsn=view.bsn, request_id=request_id)
        await uow.commit()
        return view


async def list_meldingen(
    unit_of_work: TransactionFactory,
    *,
    principal: Principal,
    statuses: frozenset[MeldingStatus] = frozenset(),
    updated_since: datetime | None = None,
    cursor: str | None,
    limit: int,
    request_id: str | None,
) -> MeldingViewPage:
    """The caller's organisation's meldingen, newest first: in one of `statuses` (any when empty), changed at
    or after `updated_since`."""
    async with unit_of_work() as uow:
        records = await uow.meldingen.page_for_sender(
            org_id=principal.org_id, statuses=statuses, updated_since=updated_since, cursor=cursor, limit=limit
        )
        more = len(records) > limit
        records = records[:limit]
        ids = [r.id for r in records]
        deliveries, history = await uow.meldingen.deliveries(ids), await uow.meldingen.history(ids)
        items = [MeldingView(r, deliveries[r.id], history[r.id]) for r in records]
        for item in items:
            uow.audit.record(principal, "read", "melding", item.record.id, patient_bsn=item.bsn, request_id=request_id)
        await uow.commit()
    next_cursor = encode_cursor(records[-1].created_at, records[-1].id) if more and records else None
    return MeldingViewPage(items, next_cursor)


# --- events from routing and consent -----------------------------------------------------------------


def _delivery(
    d: RoutedDelivery, status: DeliveryStatus, at: datetime, changed: DeliveryStatusChanged | None = None
) -> Delivery:
    return Delivery(
        delivery_id=d.delivery_id,
        org_id=d.org_id,
        org_name=d.org_name,
        recipient_type=d.recipient_type,
        status=status,
        updated_at=at,
        risk_domains=tuple(d.risk_domains),
        contact_due_at=d.contact_due_at,
        contact_at=changed.contact_at if changed else None,
        outcome=changed.outcome if changed else None,
        returned_reason=changed.returned_reason if changed else None,
    )


def _gemeente(gemeente: Gemeente | None) -> GemeenteRef | None:
    return GemeenteRef(code=gemeente.code, name=gemeente.name) if gemeente else None


def _skipped(skipped: list[SkippedType]) -> list[SkippedRef]:
    return [SkippedRef(recipient_type=s.recipient_type, reason=s.reason) for s in skipped]


async def on_meldingen_routed(uow: MeldingTransaction, events: Sequence[IncomingEvent[MeldingRouted]]) -> None:
    """Where routing sent a batch of meldingen, as their senders see it — set-based: the meldingen locked and
    read in one go, their new deliveries, history, routing reports and states written in a statement each."""
    meldingen = await uow.meldingen.lock_all({event.message.melding_id for event in events})
    at = now()
    new: list[tuple[str, Delivery]] = []
    known: list[Delivery] = []  # routed again after a return: a delivery seen before keeps its row
    history: list[tuple[str, HistoryEntry]] = []
    reports: list[RoutingReport] = []
    for event in events:
        routed = event.message
        melding = meldingen.get(routed.melding_id)
        if melding is None:
            continue  # not ours (cannot happen unless the databases were reset): nothing to update
        with event.traced():
            for d in routed.deliveries:
                seen = d.delivery_id in melding.deliveries
                if (status := melding.report_delivery(d.delivery_id, DeliveryStatus.queued)) is not None:
                    delivery = _delivery(d, status, at)
                    if seen:
                        known.append(delivery)
                    else:
                        new.append((melding.id, delivery))
            names = ", ".join(f"{d.recipient_type}: {d.org_name}" for d in routed.deliveries)
            history.append((melding.id, HistoryEntry(at, "routed", names[:200] or None)))
            reports.append(_report(melding, routed.gemeente, routed.unroutable_types, routed.skipped_types))
    await uow.meldingen.add_deliveries(new)
    await uow.meldingen.update_deliveries(known)
    await uow.meldingen.add_histories(history)
    await uow.meldingen.set_routing(reports, at)
    await uow.save_all([(meldingen[r.melding_id], at) for r in reports])


async def on_melding_unroutable(uow: MeldingTransaction, event: IncomingEvent[MeldingUnroutable]) -> None:
    unroutable = event.message
    melding = await uow.meldingen.lock(unroutable.melding_id)
    if melding is None:
        return
    at = now()
    melding.routing_found_no_recipient()
    detail = "no recipient yet for " + ", ".join(unroutable.unroutable_types)
    report = _report(melding, unroutable.gemeente, unroutable.unroutable_types, unroutable.skipped_types)
    await _record_routing(uow, melding, at, "unroutable", detail, report)


async def on_melding_not_delivered(uow: MeldingTransaction, event: IncomingEvent[MeldingNotDelivered]) -> None:
    """Routing sends it to no one: the route map skipped every type, or the consent had expired."""
    not_delivered = event.message
    melding = await uow.meldingen.lock(not_delivered.melding_id)
    if melding is None:
        return
    at = now()
    melding.routing_delivered_to_no_one(not_delivered.reason)
    report = _report(melding, not_delivered.gemeente, [], not_delivered.skipped_types)
    await _record_routing(uow, melding, at, "not_delivered", not_delivered.reason, report)


def _report(
    melding: Melding, gemeente: Gemeente | None, unroutable_types: list[str], skipped: list[SkippedType]
) -> RoutingReport:
    return RoutingReport(melding.id, _gemeente(gemeente), unroutable_types, _skipped(skipped))


async def _record_routing(
    uow: MeldingTransaction, melding: Melding, at: datetime, event: str, detail: str | None, report: RoutingReport
) -> None:
    """What routing reported, as the sender sees it: a history entry, the gemeente and the types waiting or
    skipped, and the melding's status as its rules have moved it."""
    await uow.meldingen.add_history(melding.id, at, event, detail)
    await uow.meldingen.set_routing([report], at)
    await uow.save(melding, at)


async def on_delivery_statuses_changed(
    uow: MeldingTransaction, events: Sequence[IncomingEvent[DeliveryStatusChanged]]
) -> None:
    """What recipients reported of a batch of deliveries, as the senders see it — set-based: the meldingen
    locked and read in one go, the deliveries moved, the history and the meldingen's states written in a
    statement each. An older or repeated report changes nothing (the delivery is further along already)."""
    meldingen = await uow.meldingen.lock_all({event.message.melding_id for event in events})
    new: list[tuple[str, Delivery]] = []
    known: list[Delivery] = []
    history: list[tuple[str, HistoryEntry]] = []
    saved: dict[str, tuple[Melding, datetime]] = {}
    for event in events:
        changed = event.message
        melding = meldingen.get(changed.melding_id)
        if melding is None:
            continue
        with event.traced():
            seen = changed.delivery.delivery_id in melding.deliveries
            status = melding.report_delivery(changed.delivery.delivery_id, changed.status)
            if status is None:
                continue
            delivery = _delivery(changed.delivery, status, changed.at, changed)
            if seen:
                known.append(delivery)
            else:  # a status that overtook its melding.routed (another queue)
                new.append((melding.id, delivery))
            said = changed.outcome or changed.returned_reason
            detail = f"{changed.delivery.recipient_type}: {changed.delivery.org_name}" + (f" ({said})" if said else "")
            history.append((melding.id, HistoryEntry(changed.at, f"delivery_{status.value}", detail[:200])))
            saved[melding.id] = (melding, changed.at)
    await uow.meldingen.add_deliveries(new)
    await uow.meldingen.update_deliveries(known)
    await uow.meldingen.add_histories(history)
    await uow.save_all(list(saved.values()))


async def on_delivery_overdue(uow: MeldingTransaction, event: IncomingEvent[DeliveryOverdue]) -> None:
    """A delivery passed its contact deadline without contact: the sender sees `overdue`."""
    overdue = event.message
    if await uow.meldingen.lock(overdue.melding_id) is None:
        return
    if await uow.meldingen.mark_overdue(overdue.delivery.delivery_id, overdue.at):
        detail = f"{overdue.delivery.recipient_type}: {overdue.delivery.org_name}"[:200]
        await uow.meldingen.add_history(overdue.melding_id, overdue.at, "overdue", detail)


async def cancel_melding(
    unit_of_work: TransactionFactory, *, principal: Principal, melding_id: str, reason: str, request_id: str | None
) -> MeldingView:
    """The sender cancels its melding (the pregnancy ended, sent in error, …): nothing more is delivered,
    every recipient gets a retraction with the reason, and its personal data goes at once. Cancelling
    again changes nothing."""
    async with unit_of_work() as uow:
        melding = await uow.meldingen.lock(melding_id)
        record = await uow.meldingen.get(melding_id) if melding is not None else None
        if melding is None or record is None or record.sender.org_id != principal.org_id:
            uow.audit.refuse(principal, "update", "melding", melding_id, request_id=request_id, outcome="not-found")
            raise NotFound("no melding with this id for your organisation")
        at = now()
        if melding.cancel(at, reason):
            uow.audit.record(
                principal,
                "update",
                "melding",
                melding_id,
                patient_bsn=bsn_in(record.content),
                request_id=request_id,
                outcome="cancelled",
            )
            await uow.meldingen.add_history(melding_id, at, "cancelled", reason)
            await remove_personal_data(
                uow, melding_id, at, why="cancelled by the sender", outcome="purged:cancelled", request_id=request_id
            )
            await uow.save(melding, at)
            cancelled = MeldingCancelled(
                melding_id=melding_id, consent_id=record.consent_id, reason=reason, cancelled_at=at
            )
            await uow.outbox.add(
                exchange=EVENTS_EXCHANGE,
                routing_key=MELDING_CANCELLED,
                message_type=MELDING_CANCELLED,
                body=cancelled,
                correlation_id=melding_id,
                request_id=request_id,
                message_id=f"cancelled:{melding_id}",
            )
        view = await read_melding(uow, melding_id)
        await uow.commit()
        return view


async def on_consents_recorded(uow: MeldingTransaction, events: Sequence[IncomingEvent[ConsentRecorded]]) -> None:
    """Keep what each new consent allows: intake checks meldingen under it on this record (decision 6)."""
    await uow.meldingen.record_consents([event.message for event in events])


async def on_consent_heartbeats(uow: MeldingTransaction, events: Sequence[IncomingEvent[ConsentHeartbeat]]) -> None:
    """The consent feed was heard: every consent event published before the latest of these has been applied."""
    await uow.meldingen.record_heartbeat(max(event.message.at for event in events))


async def on_consent_withdrawn(uow: MeldingTransaction, event: IncomingEvent[ConsentWithdrawn]) -> None:
    """Withdraw the consent's meldingen and remove their personal data in this same transaction
    (the contract: "Withdrawal removes personal data at once"); intake refuses the consent from now on."""
    withdrawn = event.message
    at = now()
    # Holding the consent's lock: a melding whose intake commits after this sees the withdrawal and is refused.
    await uow.meldingen.record_withdrawal(withdrawn.consent_id, at)
    for melding in await uow.meldingen.lock_not_withdrawn(withdrawn.consent_id):
        melding.withdraw(at)
        await uow.meldingen.add_history(melding.id, at, "withdrawn", "consent withdrawn")
        await remove_personal_data(
            uow,
            melding.id,
            at,
            why="consent withdrawn",
            outcome="purged:consent-withdrawn",
            request_id=event.request_id,
        )
        await uow.save(melding, at)


async def remove_personal_data(
    uow: MeldingTransaction, melding_id: str, at: datetime, *, why: str, outcome: str, request_id: str | None
) -> None:
    """Remove a melding's personal data (its anonymous skeleton stays), noted in its history and audited."""
    content = await uow.meldingen.remove_personal_data(melding_id, at)
    if content is None:
        return  # removed before
    await uow.meldingen.add_history(melding_id, at, "purged", f"personal data removed ({why})")
    uow.audit.record(
        PLATFORM,
        "update",
        "melding",
        melding_id,
        patient_bsn=bsn_in(content),
        request_id=request_id,
        outcome=outcome,
    )


# --- her own view ---------------------------------------------------------------------------------------------


async def list_patient_meldingen(
    unit_of_work: FullTransactionFactory, consent_client: ConsentPort, *, patient: Principal, request_id: str | None
) -> list[MeldingSeen]:
    """The meldingen about the woman herself, as she sees them. Which consents are hers the consent service says,
    asked with her own token; her read is audited with her as the actor."""
    consent_ids = await consent_client.patient_consent_ids(patient.token, request_id=request_id)
    async with unit_of_work() as uow:
        records = await uow.meldingen.of_patient(consent_ids=consent_ids, bsn_ref=patient.sub)
        deliveries = await uow.meldingen.deliveries([r.id for r in records])
        for record in records:
            uow.audit.record(
                patient, "read", "melding", record.id, patient_bsn=None, patient_ref=patient.sub, request_id=request_id
            )
        if not records:
            uow.audit.record(
                patient, "search", "melding", None, patient_bsn=None, patient_ref=patient.sub, request_id=request_id
            )
        await uow.commit()
        return [what_she_sees(r, deliveries[r.id]) for r in records]
